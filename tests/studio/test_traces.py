"""SpanCollector: spans grouped by trace with their parents, bounded, next to any exporter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider

from servers.studio.traces import MAX_ATTRIBUTE_CHARS, SpanCollector
from tests.conftest import ROOT


def provider_with(collector: SpanCollector) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(collector)
    return provider


def test_spans_are_kept_by_trace_with_their_parents() -> None:
    collector = SpanCollector()
    tracer = provider_with(collector).get_tracer("t")
    with tracer.start_as_current_span("tools/call agents__executor") as root:
        with tracer.start_as_current_span("execute_tool sandbox__run_python"):
            with tracer.start_as_current_span("sandbox.run python", attributes={"code": "x" * 5000}):
                pass
    trace_id = format(root.get_span_context().trace_id, "032x")
    found = collector.trace(trace_id)
    assert found is not None
    spans = {s["name"]: s for s in found["spans"]}
    assert spans["tools/call agents__executor"]["parent_id"] is None
    assert spans["sandbox.run python"]["parent_id"] == spans["execute_tool sandbox__run_python"]["span_id"]
    assert spans["execute_tool sandbox__run_python"]["parent_id"] == spans["tools/call agents__executor"]["span_id"]
    assert len(spans["sandbox.run python"]["attributes"]["code"]) == MAX_ATTRIBUTE_CHARS + 1  # cut, marked
    [summary] = collector.recent()
    assert summary["trace_id"] == trace_id and summary["name"] == "tools/call agents__executor"
    assert summary["spans"] == 3 and summary["errors"] == 0


def test_a_callers_traceparent_makes_the_trace_id_and_a_remote_parent() -> None:
    collector = SpanCollector()
    tracer = provider_with(collector).get_tracer("t")
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = propagate.extract({"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"})
    with tracer.start_as_current_span("tools/call demo__add", context=parent):
        pass
    found = collector.trace(caller_trace)
    assert found is not None
    [span] = found["spans"]
    assert span["parent_id"] == "00f067aa0ba902b7" and span["remote_parent"] is True
    assert collector.recent()[0]["name"] == "tools/call demo__add"  # a remote parent still makes it the root


def test_the_buffer_keeps_the_newest_traces_and_caps_spans_per_trace() -> None:
    collector = SpanCollector(max_traces=3, max_spans_per_trace=2)
    tracer = provider_with(collector).get_tracer("t")
    ids = []
    for i in range(5):
        with tracer.start_as_current_span(f"root {i}") as root:
            for j in range(4):
                with tracer.start_as_current_span(f"child {j}"):
                    pass
        ids.append(format(root.get_span_context().trace_id, "032x"))
    assert collector.trace(ids[0]) is None and collector.trace(ids[1]) is None
    kept = collector.trace(ids[4])
    assert kept is not None and len(kept["spans"]) == 2 and kept["dropped_spans"] == 3
    assert len(collector.recent(100)) == 3


def test_an_oversized_span_from_a_caller_is_cut_when_it_ends() -> None:
    collector = SpanCollector()
    tracer = provider_with(collector).get_tracer("t")
    huge = "n" * 1_000_000  # what a client can put in a tool name
    with tracer.start_as_current_span(f"tools/call {huge}", attributes={"gen_ai.tool.name": huge}) as s:
        pass
    trace_id = format(s.get_span_context().trace_id, "032x")
    [kept] = collector._traces[s.get_span_context().trace_id]
    assert isinstance(kept, dict)  # not the SDK span holding the megabyte
    assert len(kept["name"]) <= MAX_ATTRIBUTE_CHARS + 1 and len(kept["attributes"]["gen_ai.tool.name"]) <= MAX_ATTRIBUTE_CHARS + 1
    assert collector.trace(trace_id)["spans"][0]["name"].startswith("tools/call n")  # type: ignore[index]


def test_errors_are_counted() -> None:
    collector = SpanCollector()
    tracer = provider_with(collector).get_tracer("t")
    try:
        with tracer.start_as_current_span("boom"):
            raise ValueError("no")
    except ValueError:
        pass
    assert collector.recent()[0]["errors"] == 1
    assert collector.trace(collector.recent()[0]["trace_id"])["spans"][0]["status"] == "error"  # type: ignore[index]


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


EXPORTER = """
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from servers.studio.traces import install_collector
    from workbench.agents.telemetry import configure_tracing
    exported = InMemorySpanExporter()
"""


def test_installed_after_an_exporter_export_goes_on() -> None:
    out = _run(EXPORTER + """
    configure_tracing(exported)
    collector = install_collector()
    with trace.get_tracer("t").start_as_current_span("s") as s:
        pass
    trace.get_tracer_provider().force_flush()
    print(len(exported.get_finished_spans()), collector.trace(format(s.get_span_context().trace_id, "032x")) is not None)
    """)
    assert out == "1 True"


def test_an_exporter_configured_after_the_collector_exports_too() -> None:
    out = _run(EXPORTER + """
    collector = install_collector()
    assert install_collector() is collector  # once per process
    configure_tracing(exported)
    with trace.get_tracer("t").start_as_current_span("s") as s:
        pass
    trace.get_tracer_provider().force_flush()
    print(len(exported.get_finished_spans()), collector.trace(format(s.get_span_context().trace_id, "032x")) is not None)
    """)
    assert out == "1 True"


# ---- in a real browser, against a real `workbench serve` on examples/workbench.toml -----------------

EXECUTOR_TASK = "```python\nopen('hello.txt', 'w').write('written by the executor')\nprint(6 * 7)\n```"


def run_executor(page, studio_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{studio_server.base}/ui/playground")
    page.get_by_label("Agent or team").select_option("executor")
    page.get_by_label("Task").fill(EXECUTOR_TASK)
    page.get_by_role("button", name="Run").click()
    page.locator(".run-end").wait_for(timeout=90_000)


@pytest.mark.parametrize("color_scheme", ["light", "dark"], indirect=True)
def test_the_executor_streams_in_the_playground_and_its_trace_nests_the_sandbox_run(page, studio_server, shot, color_scheme) -> None:  # type: ignore[no-untyped-def]
    run_executor(page, studio_server)
    transcript = page.locator(".transcript")
    assert "done" in page.locator(".run-end").inner_text()
    assert transcript.locator(".event.tool-calls .tool-name").first.inner_text() == "sandbox__run_python"
    assert "42" in transcript.locator(".event.tool-results pre").first.inner_text()
    assert transcript.locator(".event.from-user").count() == 1
    shot(page, f"playground-executor-{color_scheme}")

    page.get_by_role("link", name="open run").click()
    page.locator("ol.timeline").wait_for()
    assert page.locator("h1").inner_text() == "executor"
    assert page.locator("ol.timeline > li").count() == 4  # task, tool call, tool result, answer
    shot(page, f"run-detail-{color_scheme}")

    page.get_by_role("link", name="Open trace").click()
    rows = page.locator("button.span-row")
    rows.first.wait_for()
    names = rows.evaluate_all("rows => rows.map(r => [r.dataset.span, Number(r.dataset.depth)])")
    tool = next(i for i, (n, _) in enumerate(names) if n == "execute_tool sandbox__run_python")
    sandbox = next(i for i, (n, _) in enumerate(names) if n == "sandbox.run python")
    assert names[0][0] == "studio.run executor"
    # the sandbox span is under the tool span: after it, one level deeper, before the tool's next sibling
    assert sandbox > tool and names[sandbox][1] > names[tool][1]
    assert all(depth > names[tool][1] for _, depth in names[tool + 1:sandbox + 1])
    rows.nth(sandbox).click()
    assert "workbench.sandbox.language" in page.locator(".span-panel").inner_text()
    shot(page, f"trace-waterfall-{color_scheme}")

    page.get_by_role("link", name="Traces", exact=True).click()  # the site navigation
    page.locator("table tbody tr", has_text="studio.run executor").first.wait_for()
    shot(page, f"traces-list-{color_scheme}")


def test_an_agent_called_over_mcp_is_one_trace_from_the_callers_span_to_the_sandbox(studio_server) -> None:  # type: ignore[no-untyped-def]
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from opentelemetry import trace

    from servers.studio.traces import install_collector, traced

    install_collector()  # an instrumented caller: its SDK client sends its span's context as _meta.traceparent

    async def call() -> str:
        async with httpx2.AsyncClient(headers=studio_server.auth(), timeout=90) as http, \
                Client(streamable_http_client(f"{studio_server.base}/mcp", http_client=http)) as client:
            # A caller that samples this trace (this process's provider is Studio's, at a ratio).
            with traced(), trace.get_tracer("caller").start_as_current_span("caller's work") as caller:
                result = await client.call_tool("executor", {"task": "```python\nprint(6 * 7)\n```"})
            assert "42" in result.content[0].text
            return format(caller.get_span_context().trace_id, "032x")

    # Playwright's sync API may hold an event loop in this thread: the MCP client runs in its own.
    done: list[str | BaseException] = []

    def worker() -> None:
        try:
            done.append(anyio.run(call))
        except BaseException as e:  # handed back to the test's thread
            done.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=120)
    assert done and isinstance(done[0], str), done
    trace_id = done[0]
    with httpx2.Client(base_url=studio_server.base, headers=studio_server.auth(), timeout=30) as http:
        found = http.get(f"/ui/api/traces/{trace_id}").json()
        runs = http.get("/ui/api/runs", params={"q": "executor", "kind": "tool"}).json()["runs"]
    spans = {s["name"]: s for s in found["spans"]}
    request = spans["tools/call executor"]
    assert request["kind"] == "server" and request["remote_parent"]  # the caller's span is the parent
    agent = spans["invoke_agent executor"]
    tool = spans["execute_tool sandbox__run_python"]
    sandbox = spans["sandbox.run python"]
    assert agent["parent_id"] == request["span_id"]
    assert tool["parent_id"] == agent["span_id"]
    assert sandbox["parent_id"] == tool["span_id"]
    assert any(r["trace_id"] == trace_id for r in runs) and found["runs"][0]["name"] == "executor"
