"""A caller's W3C trace context reaches the workbench when the server records spans too — as
`workbench serve` does whenever Studio is on (it installs a tracer provider for its Traces page).

The server then answers in the caller's trace: its `tools/call` span is a child of the caller's
span, and the workbench (and so every upstream it calls) sees that span as its parent — same trace
id, the caller's tracestate kept. Run in a fresh interpreter: a tracer provider, once installed,
stays for the life of the process, and the other tests of this process must not depend on whether
one is (tests/servers/test_serve_http.py checks the same path in-process, either way).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from serving import HERE, script_env

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"

SCRIPT = f"""
    import json
    import anyio, httpx2
    from opentelemetry import propagate, trace
    from serve_toolkit import ServeBench
    from serving import http_client, serving
    from servers.studio.traces import install_collector

    collector = install_collector()
    carrier = {{"traceparent": "00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "k=v"}}
    seen = {{}}

    async def main() -> None:
        async with serving(ServeBench()) as served:
            # A caller in another process, speaking plain HTTP: nothing on its side adds a span.
            body = {{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {{
                "name": "whoami", "arguments": {{}}, "_meta": {{
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {{}}, **carrier}}}}}}
            async with httpx2.AsyncClient(timeout=30) as http:
                answer = await http.post(served.url, json=body, headers={{
                    "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "whoami",
                    "Accept": "application/json, text/event-stream"}})
            seen["raw"] = answer.json()["result"]["structuredContent"]["trace"]
            # An instrumented SDK client in each era, its caller's span current: the client's own
            # span joins the caller's trace, and the server's joins that.
            for mode in ("legacy", "auto"):
                async with http_client(served.url, mode=mode) as client:
                    with trace.use_span(trace.get_current_span(propagate.extract(carrier))):
                        result = await client.call_tool("whoami", {{}}, meta=dict(carrier))
                seen[mode] = result.structured_content["trace"]

    anyio.run(main)
    found = collector.trace("{CALLER_TRACE}") or {{"spans": []}}
    seen["server_spans"] = [s["span_id"] for s in found["spans"] if s["name"] == "tools/call whoami"
                            and s["kind"] == "server"]
    print(json.dumps(seen))
"""


def test_the_callers_trace_reaches_the_workbench_through_a_server_that_records_spans() -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT)], cwd=HERE, env=script_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    server_spans = set(seen.pop("server_spans"))
    assert len(server_spans) == 3, server_spans  # one per call, each in the caller's trace
    for how, context in seen.items():
        version, trace_id, parent, flags = context["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", CALLER_TRACE, "01"), how
        assert context["tracestate"] == "k=v", how
        assert parent in server_spans, how  # the server's span, not a new root: the trace stays whole
    assert seen["raw"]["traceparent"] != f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"  # the server's span came between
