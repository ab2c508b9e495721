"""The served-calls recorder: every tool call a real MCP client makes over real HTTP becomes a run
(identity, session, tool, arguments masked, outcome, duration) inside an MCP request span."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from opentelemetry import trace

from servers import ServeSettings
from servers.studio.recording import RecordingWorkbench, masked
from servers.studio.runs import RunStore
from servers.studio.traces import install_collector, traced
from tests.conftest import ROOT
from workbench import CallContext, StaticWorkbench
from workbench.static import FunctionTool

sys.path.insert(0, str(ROOT / "tests" / "servers"))
from serving import http_client, serving  # noqa: E402

pytestmark = pytest.mark.anyio
TOKEN = "recording-test-token"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def login(user: str, password: str, options: dict[str, str] | None = None) -> str:
    """Pretend to log in."""
    return f"hello {user}"


def fail() -> str:
    """Always fails."""
    raise RuntimeError("the disk is on fire")


async def slow(seconds: float, ctx: CallContext) -> str:
    """Report progress, then sleep."""
    await ctx.report_progress(1, 2, "halfway")
    await anyio.sleep(seconds)
    return "late"


def bench() -> StaticWorkbench:
    return StaticWorkbench([FunctionTool(f) for f in (add, login, fail, slow)])


def settings(tmp_path: Path) -> ServeSettings:
    return ServeSettings(transport="http", auth_token=TOKEN, runs_path=str(tmp_path / "runs.sqlite"))


async def finished(store: RunStore, name: str) -> dict:  # type: ignore[type-arg]
    """The newest run of `name` once it is no longer running (the server records as the call ends)."""
    with anyio.fail_after(10):
        while True:
            runs = [r for r in store.list_runs(query=name) if r["name"] == name and r["status"] != "running"]
            if runs:
                found = store.get_run(runs[0]["id"])
                assert found is not None
                return found
            await anyio.sleep(0.02)


@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
async def test_a_served_call_is_a_run_in_the_callers_trace(tmp_path: Path, mode: str) -> None:
    collector = install_collector()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(bench(), settings(tmp_path)) as served, http_client(served.url, mode=mode,
                                                                            headers=headers) as client:
        # An instrumented caller that samples this trace: the SDK's client sends its span's context
        # as `_meta.traceparent`, flagged sampled (this process's provider is Studio's, at a ratio).
        with traced(), trace.get_tracer("caller").start_as_current_span("caller's work") as caller:
            result = await client.call_tool("add", {"a": 2, "b": 40})
        caller_trace = format(caller.get_span_context().trace_id, "032x")
        assert result.structured_content == {"result": 42}
        store = served.server.recorder.store
        assert store is not None
        run = await finished(store, "add")
    assert (run["kind"], run["status"]) == ("tool", "ok")
    assert run["identity"].startswith("token-") and TOKEN not in run["identity"]
    assert run["session"] and run["duration_ms"] >= 0
    assert run["input"]["arguments"] == {"a": 2, "b": 40}
    assert run["output"]["content"] == [{"type": "text", "text": "42"}]
    assert run["trace_id"] == caller_trace  # the caller's trace id, since it sent one
    spans = collector.trace(caller_trace)
    assert spans is not None
    [span] = [s for s in spans["spans"] if s["name"] == "tools/call add"]  # one request span, not two
    assert span["kind"] == "server" and span["remote_parent"]
    assert span["attributes"]["gen_ai.tool.name"] == "add" and span["attributes"]["enduser.id"] == run["identity"]


async def test_a_call_that_did_not_come_over_mcp_gets_its_own_request_span(tmp_path: Path) -> None:
    collector = install_collector()
    store = RunStore(tmp_path / "runs.sqlite")
    recorder = RecordingWorkbench(bench(), store)
    result = await recorder.call_tool("add", {"a": 1, "b": 2},
                                      CallContext(session_id="studio-1", trace_context={"traceparent": TRACEPARENT}))
    assert result.structured == {"result": 3}
    [summary] = store.list_runs()
    assert summary["trace_id"] == CALLER_TRACE and summary["session"] == "studio-1"
    [span] = collector.trace(CALLER_TRACE)["spans"]  # type: ignore[index]
    assert span["name"] == "tools/call add" and span["parent_id"] == "00f067aa0ba902b7"


async def test_without_a_tracer_the_run_is_in_the_callers_trace_and_the_context_passes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracer provider installed (stdio, no Studio): no span is made, yet the run carries the
    caller's trace id and the tool gets the caller's trace context, as if a span had been made."""
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    seen: list[dict[str, str]] = []

    async def where(ctx: CallContext) -> str:
        """Tell the trace context the tool got."""
        seen.append(ctx.trace_context)
        return "here"

    store = RunStore(tmp_path / "runs.sqlite")
    recorder = RecordingWorkbench(StaticWorkbench([FunctionTool(where)]), store)
    caller = CallContext(trace_context={"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
    assert (await recorder.call_tool("where", {}, caller)).text == "here"
    assert seen == [{"traceparent": TRACEPARENT, "tracestate": "vendor=1"}]
    assert store.list_runs()[0]["trace_id"] == CALLER_TRACE

    await recorder.call_tool("where", {}, CallContext())  # no caller context: none made up
    assert seen[-1] == {} and store.list_runs()[0]["trace_id"] is None


async def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(bench(), settings(tmp_path)) as served, http_client(served.url, headers=headers) as client:
        await client.call_tool("login", {"user": "bob", "password": "hunter2-secret",
                                         "options": {"api_key": "sk-live-abcdef", "region": "eu"}})
        store = served.server.recorder.store
        assert store is not None
        run = await finished(store, "login")
        assert run["input"]["arguments"] == {"user": "bob", "password": "***",
                                             "options": {"api_key": "***", "region": "eu"}}
        store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("runs.sqlite"))
    assert b"bob" in raw and b"hunter2-secret" not in raw and b"sk-live-abcdef" not in raw and TOKEN.encode() not in raw


async def test_failures_unknown_tools_and_cancellations_are_recorded(tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    progress: list[str | None] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async with serving(bench(), settings(tmp_path)) as served, http_client(served.url, mode="legacy",
                                                                            headers=headers) as client:
        store = served.server.recorder.store
        assert store is not None
        assert (await client.call_tool("fail", {})).is_error
        failed = await finished(store, "fail")
        assert failed["status"] == "error" and "the disk is on fire" in failed["error"]

        with pytest.raises(MCPError):
            await client.call_tool("nope", {})
        unknown = await finished(store, "nope")
        assert unknown["status"] == "error" and "unknown tool" in unknown["error"]

        with anyio.move_on_after(1.5):
            await client.call_tool("slow", {"seconds": 30}, progress_callback=on_progress)
        cancelled = await finished(store, "slow")
        assert cancelled["status"] == "cancelled"
        assert [e["data"]["message"] for e in cancelled["events"] if e["type"] == "progress"] == ["halfway"]
        assert progress == ["halfway"]  # the client still got its progress through the recorder


async def test_recording_off_still_serves(tmp_path: Path) -> None:
    off = ServeSettings(transport="http", auth_token=TOKEN, runs_path="")
    async with serving(bench(), off) as served, http_client(served.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert served.server.recorder.store is None
        assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}


def test_masking_is_bounded_at_every_depth() -> None:
    deep: dict = {}  # type: ignore[type-arg]
    node = deep
    for _ in range(50):
        node["next"] = {}
        node = node["next"]
    assert "…" in repr(masked(deep))
    assert len(masked({"items": list(range(10_000))})["items"]) == 100
    assert masked({"Authorization": "Bearer x", "client_secret": "y", "note": "z" * 10_000})["note"].endswith("chars)")
    assert masked({"Authorization": "Bearer x"}) == {"Authorization": "***"}
