"""A library caller's trace survives an installed tracer.

With an OpenTelemetry tracer provider installed (an OTLP exporter, Studio's collector), the SDK client
opens a span per request and injects *its* context into `_meta`, replacing the traceparent the caller
handed over in `CallContext.trace_context`. Unless the caller's trace is made current around the call,
the upstream sees a brand-new trace. A tracer provider is process-wide and can be set only once, so
each check runs in a fresh process."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from mcp_peers import PYTHON, TOOLBOX, free_port, start_toolbox, stop

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CARRIER = {"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01", "tracestate": "vendor=kept"}

SCRIPT = textwrap.dedent("""
    import sys, anyio
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from adapters.mcp import McpWorkbench
    from workbench.core import CallContext

    trace.set_tracer_provider(TracerProvider())

    async def main() -> None:
        transport, where = sys.argv[1], sys.argv[2]
        wb = McpWorkbench.http(where, name="up") if transport == "http" else McpWorkbench.stdio(sys.executable, [where], name="up")
        async with wb:
            result = await wb.call_tool("traceparent", {}, CallContext(trace_context=%r))
            print(result.text)

    anyio.run(main)
""") % CARRIER


def received_traceparent(transport: str, where: str) -> str:
    done = subprocess.run([PYTHON, "-c", SCRIPT, transport, where], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_callers_trace_reaches_the_upstream_with_a_tracer_installed(transport: str) -> None:
    if transport == "stdio":
        received = received_traceparent("stdio", TOOLBOX)
    else:  # the upstream lane (aiohttp), not the SDK client
        port = free_port()
        proc = start_toolbox("http", port)
        try:
            received = received_traceparent("http", f"http://127.0.0.1:{port}/mcp")
        finally:
            stop(proc)
    version, trace_id, parent, flags = received.split("-")
    assert trace_id == TRACE_ID, received  # the caller's trace, continued (parent: the client's own span)
    assert parent != "b7ad6b7169203331"  # the SDK client's span sits between, as it is recorded
