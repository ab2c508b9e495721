"""Which traces Studio records: the ones its own pages start, the ones a caller's sampled
`traceparent` asks for, and `[serve] trace_sample` of the rest; a user's exporter and
`OTEL_TRACES_SAMPLER` get every span their own sampler keeps. A sampled-out call is still a run,
whose page says why it has no waterfall."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from studio_harness import StudioHttp, studio_http

import servers.studio.traces as traces
from servers.studio.traces import DEFAULT_TRACE_SAMPLE, install_collector
from tests.conftest import ROOT
from workbench import CallContext, StaticWorkbench
from workbench.agents import telemetry

pytestmark = pytest.mark.anyio
# Trace ids of this module alone: the process's collector holds every other test's spans too.
SAMPLED = f"00-{secrets.token_hex(16)}-00f067aa0ba902b7-01"
NOT_SAMPLED = f"00-{secrets.token_hex(16)}-00f067aa0ba902b7-00"

# ---- the sampler's decisions, each in a fresh process (a tracer provider stays for the process's life) ----

DECISIONS = """
    import json
    from opentelemetry import propagate, trace
    from servers.studio.traces import install_collector, traced
    from workbench.agents.telemetry import configure_tracing

    collector = install_collector({ratio})
    tracer = trace.get_tracer("t")
    seen = {{}}

    def root(label, parent=None):
        with tracer.start_as_current_span(label, context=parent) as span:
            with tracer.start_as_current_span(label + " child"):
                recording = span.is_recording()
        found = collector.trace(format(span.get_span_context().trace_id, "032x"))
        seen[label] = {{"recording": recording, "kept": len(found["spans"]) if found else 0}}

    root("plain")
    with traced():
        root("asked")
    root("sampled parent", propagate.extract({{"traceparent": "{sampled}"}}))
    root("unsampled parent", propagate.extract({{"traceparent": "{not_sampled}"}}))
    install_collector(1.0)  # the server's `trace_sample`, set when Studio is mounted
    root("plain at 1.0")
"""


def decisions(ratio: float, *, then: str = "", **env: str) -> dict[str, dict[str, Any]]:
    code = (textwrap.dedent(DECISIONS).format(ratio=ratio, sampled=SAMPLED, not_sampled=NOT_SAMPLED)
            + textwrap.dedent(then) + "\nprint(json.dumps(seen))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_studio_records_what_asks_for_a_trace_and_its_ratio_of_the_rest() -> None:
    seen = decisions(0.0)
    assert seen["plain"] == {"recording": False, "kept": 0}  # sampled out: the SDK's non-recording span
    assert seen["asked"] == {"recording": True, "kept": 2}  # started from Studio: recorded, child and all
    assert seen["sampled parent"] == {"recording": True, "kept": 2}  # the caller asked for it
    assert seen["unsampled parent"] == {"recording": False, "kept": 0}  # the caller said no
    assert seen["plain at 1.0"] == {"recording": True, "kept": 2}


def test_an_exporter_configured_after_studio_gets_every_span_its_sampler_keeps() -> None:
    """Studio samples at 0 for its memory; once the user exports, their sampler (the SDK's default:
    every trace) decides, for the export and for Studio alike."""
    then = """
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exported = InMemorySpanExporter()
    install_collector(0.0)
    configure_tracing(exported)
    root("after export")
    trace.get_tracer_provider().force_flush()
    seen["exported"] = sorted(s.name for s in exported.get_finished_spans())
    """
    seen = decisions(0.0, then=then)
    assert seen["after export"] == {"recording": True, "kept": 2}
    assert seen["exported"] == ["after export", "after export child"]


def test_otel_traces_sampler_when_set_decides_over_studio() -> None:
    everything = decisions(0.0, OTEL_TRACES_SAMPLER="always_on")
    assert everything["plain"]["kept"] == 2 and everything["unsampled parent"]["kept"] == 2
    nothing = decisions(1.0, OTEL_TRACES_SAMPLER="always_off")
    assert all(d == {"recording": False, "kept": 0} for d in nothing.values()), nothing


# ---- served for real: the run, its page, over MCP and from Studio's Tools page -----------------------------

def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def nested(ctx: CallContext) -> dict[str, Any]:
    """Start a span below the call, as an agent served as a tool does, and tell what it was."""
    with telemetry.span("below", {}, carrier=ctx.trace_context) as below:
        return {"recording": below.is_recording(), "handed": sorted(ctx.trace_context)}


@pytest.fixture
async def sampling_none(tmp_path: Path) -> AsyncIterator[StudioHttp]:
    """A server whose Studio records no trace by ratio (`trace_sample = 0`)."""
    install_collector()
    assert traces._sampler is not None, "another tracer provider was installed in this test process"
    try:
        async with studio_http(StaticWorkbench([add, nested]), trace_sample=0.0,
                               runs_path=str(tmp_path / "runs.sqlite")) as studio:
            yield studio
    finally:
        install_collector(DEFAULT_TRACE_SAMPLE)  # the process's sampler outlives this server


async def mcp_call(studio: StudioHttp, traceparent: str | None, tool: str = "add") -> dict[str, Any]:
    meta = {"traceparent": traceparent} if traceparent else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": {"a": 1, "b": 2} if tool == "add" else {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}, **meta}}}
    response = await studio.http.post("/mcp", json=body, headers={
        **studio.auth(), "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool,
        "Accept": "application/json, text/event-stream"})
    assert response.status_code == 200, response.text
    return await newest_run(studio)


async def newest_run(studio: StudioHttp) -> dict[str, Any]:
    [listed] = (await studio.http.get("/ui/api/runs", params={"limit": 1}, headers=studio.auth())).json()["runs"]
    run = (await studio.http.get(f"/ui/api/runs/{listed['id']}", headers=studio.auth())).json()
    assert run["status"] == "ok"
    return run  # type: ignore[no-any-return]


async def test_a_sampled_out_call_is_a_run_whose_page_says_why_it_has_no_trace(sampling_none: StudioHttp) -> None:
    studio = sampling_none
    run = await mcp_call(studio, None)
    assert run["trace_id"] and run["traced"] is False
    assert "trace_sample" in run["trace_note"] and "1.0" in run["trace_note"]  # why, and how to turn it on
    assert install_collector().trace(run["trace_id"]) is None
    exported = (await studio.http.get(f"/ui/api/runs/{run['id']}/export", headers=studio.auth())).json()
    assert exported["trace"] is None and exported["run"]["id"] == run["id"]
    # nor is it offered on the Traces page, where it would be an empty waterfall
    page = (await studio.http.get("/ui/api/traces", headers=studio.auth())).json()
    assert run["trace_id"] not in {t["trace_id"] for t in page["traces"]}
    assert "0% of the other served calls" in page["sampling"] and "trace_sample" in page["sampling"]
    missing = await studio.http.get(f"/ui/api/traces/{run['trace_id']}", headers=studio.auth())
    assert missing.status_code == 404


async def test_a_call_whose_caller_samples_its_trace_is_recorded_with_its_spans(sampling_none: StudioHttp) -> None:
    studio = sampling_none
    run = await mcp_call(studio, SAMPLED)
    assert run["trace_id"] == SAMPLED.split("-")[1] and run["traced"] is True and "trace_note" not in run
    found = (await studio.http.get(f"/ui/api/traces/{run['trace_id']}", headers=studio.auth())).json()
    assert [s["name"] for s in found["spans"]] == ["tools/call add"] and found["runs"][0]["id"] == run["id"]
    unsampled = await mcp_call(studio, NOT_SAMPLED)  # a caller that said no is not overruled
    assert unsampled["traced"] is False and "trace_note" in unsampled


async def test_a_call_from_studios_tools_page_is_recorded_whatever_the_ratio(sampling_none: StudioHttp) -> None:
    studio = sampling_none
    response = await studio.http.post("/ui/api/tools/add/call", headers=studio.auth(),
                                      json={"arguments": {"a": 2, "b": 3}})
    assert '"result"' in response.text
    run = await newest_run(studio)
    assert run["traced"] is True and "trace_note" not in run
    found = (await studio.http.get(f"/ui/api/traces/{run['trace_id']}", headers=studio.auth())).json()
    assert [s["name"] for s in found["spans"]] == ["tools/call add"]


def test_the_key_defaults_to_the_samplers_default_and_refuses_a_share_outside_0_to_1() -> None:
    from pydantic import ValidationError

    from servers.settings import ServeConfig

    assert ServeConfig().trace_sample == DEFAULT_TRACE_SAMPLE
    for wrong in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="trace_sample"):
            ServeConfig(trace_sample=wrong)


async def test_a_trace_is_whole_or_absent_below_the_call(sampling_none: StudioHttp) -> None:
    """A span the tool starts (an agent served as a tool) follows the call's decision: none recorded under
    a sampled-out call, which hands no trace context down; recorded, and handed down, under a sampled one."""
    studio = sampling_none
    out = await mcp_call(studio, None, "nested")
    assert out["traced"] is False
    assert out["output"]["structured"] == {"recording": False, "handed": []}
    into = await mcp_call(studio, f"00-{secrets.token_hex(16)}-00f067aa0ba902b7-01", "nested")
    assert into["traced"] is True and into["output"]["structured"]["recording"] is True
    assert "traceparent" in into["output"]["structured"]["handed"]
    found = (await studio.http.get(f"/ui/api/traces/{into['trace_id']}", headers=studio.auth())).json()
    assert sorted(s["name"] for s in found["spans"]) == ["below", "tools/call nested"]
