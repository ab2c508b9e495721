"""The Playground and runs/traces API over real HTTP: a run streams its steps as SSE, is recorded
with its events under one trace, can be stopped, continued, saved and loaded; every id and body
is checked before it reaches the store."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from studio_harness import StudioHttp, studio_http

from servers.studio.traces import install_collector
from tests.conftest import ROOT
from workbench import StaticWorkbench
from workbench.agents import AssistantAgent, CodeExecutorAgent, OpenAIChatClient, RoundRobinGroupChat
from workbench.agents.termination import MaxMessages
from workbench.static import FunctionTool

sys.path.insert(0, str(ROOT / "tests" / "agents"))
from model_server import ModelServer  # noqa: E402

pytestmark = pytest.mark.anyio
running: set[str] = set()


async def run_python(code: str) -> str:
    """Runs Python (a stand-in for the sandbox: `sleep N` in the code makes it slow)."""
    running.add(code)
    try:
        if code.startswith("sleep"):
            await anyio.sleep(float(code.split()[1]))
        return f"ran {len(code)} chars"
    finally:
        running.discard(code)


@pytest.fixture(scope="module")
def model_server() -> Any:
    with ModelServer() as server:
        yield server


def runners(model_server: Any) -> dict[str, Any]:
    tools = StaticWorkbench([FunctionTool(run_python)])
    executor = CodeExecutorAgent("executor", tools, description="Runs code blocks.")
    model = model_server.script("pg-answer", [{"content": "the answer is 42",
                                               "usage": {"prompt_tokens": 11, "completion_tokens": 5}}], repeat=True)
    coder = AssistantAgent("coder", OpenAIChatClient(model, base_url=model_server.base_url, api_key="k"), tools,
                           description="Answers.")
    team = RoundRobinGroupChat([executor.clone(), coder.clone()], termination=MaxMessages(3), name="duo")
    return {"executor": executor, "coder": coder, "duo": team}


async def events(studio: StudioHttp, body: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
    async with studio.http.stream("POST", "/ui/api/playground/run", json=body, headers=studio.auth()) as response:
        assert response.status_code == 200, await response.aread()
        event = "message"
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                yield event, json.loads(line[5:])


async def collect(studio: StudioHttp, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with anyio.fail_after(30):
        return [item async for item in events(studio, body)]


@pytest.fixture
async def studio(tmp_path: Path, model_server: Any) -> AsyncIterator[StudioHttp]:
    install_collector()
    agents = runners(model_server)
    async with studio_http(StaticWorkbench([FunctionTool(run_python)]), context={"runners": agents},
                           runs_path=str(tmp_path / "runs.sqlite")) as served:
        yield served
    await agents["coder"].model.close()  # in this test's event loop, not when collected in a later one


async def test_agents_are_listed_with_their_kind(studio: StudioHttp) -> None:
    listed = (await studio.http.get("/ui/api/playground/agents", headers=studio.auth())).json()["agents"]
    assert [(a["name"], a["kind"]) for a in listed] == [("coder", "agent"), ("duo", "team"), ("executor", "agent")]
    assert listed[1]["members"] == ["executor", "coder"]


async def test_a_run_streams_its_steps_and_is_recorded_under_one_trace(studio: StudioHttp) -> None:
    got = await collect(studio, {"agent": "executor", "task": "```python\nprint(6 * 7)\n```"})
    kinds = [(e, d.get("type")) for e, d in got]
    assert kinds == [("run", None), ("event", "text"), ("event", "tool_calls"), ("event", "tool_results"),
                     ("event", "text"), ("result", None)]
    start, result = got[0][1], got[-1][1]
    assert got[2][1]["calls"][0]["name"] == "run_python"
    assert got[3][1]["results"][0]["content"] == "ran 13 chars"
    assert result["text"] == "ran 13 chars"

    run = (await studio.http.get(f"/ui/api/runs/{start['run_id']}", headers=studio.auth())).json()
    assert (run["kind"], run["name"], run["status"]) == ("agent", "executor", "ok")
    assert [e["type"] for e in run["events"]] == ["text", "tool_calls", "tool_results", "text"]
    assert run["trace_id"] == start["trace_id"]

    trace = (await studio.http.get(f"/ui/api/traces/{start['trace_id']}", headers=studio.auth())).json()
    spans = {s["name"]: s for s in trace["spans"]}
    assert spans["execute_tool run_python"]["parent_id"] == spans["studio.run executor"]["span_id"]
    assert trace["runs"][0]["id"] == start["run_id"]

    listed = (await studio.http.get("/ui/api/runs?kind=agent", headers=studio.auth())).json()["runs"]
    assert [r["id"] for r in listed] == [start["run_id"]]
    exported = await studio.http.get(f"/ui/api/runs/{start['run_id']}/export", headers=studio.auth())
    assert "attachment" in exported.headers["content-disposition"]
    assert exported.json()["trace"]["spans"] and exported.json()["run"]["id"] == start["run_id"]


async def test_a_model_agent_reports_usage_and_a_conversation_continues(studio: StudioHttp) -> None:
    first = await collect(studio, {"agent": "coder", "task": "what is 6 * 7?"})
    result = first[-1][1]
    assert first[-1][0] == "result" and result["text"] == "the answer is 42"
    assert result["usage"] == {"input_tokens": 11, "output_tokens": 5}
    conversation = first[0][1]["conversation"]
    second = await collect(studio, {"conversation": conversation, "task": "and 6 * 8?"})
    assert second[0][1]["conversation"] == conversation and second[-1][0] == "result"
    run = (await studio.http.get(f"/ui/api/runs/{second[0][1]['run_id']}", headers=studio.auth())).json()
    assert run["input"]["continues"] == 1


async def test_a_team_runs_and_is_recorded_as_a_team(studio: StudioHttp) -> None:
    got = await collect(studio, {"agent": "duo", "task": "```python\n1\n```"})
    assert got[-1][0] == "result" and got[0][1]["kind"] == "team"
    sources = [d["source"] for e, d in got if e == "event" and d["type"] == "text"]
    assert sources[:3] == ["user", "executor", "coder"]


async def test_stop_ends_the_run_and_records_it_cancelled(studio: StudioHttp) -> None:
    seen: list[tuple[str, Any]] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            async def consume() -> None:
                async for item in events(studio, {"agent": "executor", "task": "```python\nsleep 30\n```"}):
                    seen.append(item)

            tg.start_soon(consume)
            while not running:
                await anyio.sleep(0.02)
            conversation = seen[0][1]["conversation"]
            stopped = await studio.http.post(f"/ui/api/playground/conversations/{conversation}/stop",
                                             headers=studio.auth())
            assert stopped.json() == {"stopped": True}
    assert seen[-1][0] == "stopped" and not running
    run = (await studio.http.get(f"/ui/api/runs/{seen[0][1]['run_id']}", headers=studio.auth())).json()
    assert run["status"] == "cancelled"


async def test_closing_the_stream_cancels_the_run(studio: StudioHttp) -> None:
    run_id = None
    with anyio.fail_after(30):
        async for event, data in events(studio, {"agent": "executor", "task": "```python\nsleep 31\n```"}):
            run_id = run_id or data["run_id"]
            if event == "event" and data["type"] == "tool_calls":
                break  # leaves the stream: the client hangs up
        while running:
            await anyio.sleep(0.02)
        while (await studio.http.get(f"/ui/api/runs/{run_id}", headers=studio.auth())).json()["status"] == "running":
            await anyio.sleep(0.02)
    run = (await studio.http.get(f"/ui/api/runs/{run_id}", headers=studio.auth())).json()
    assert run["status"] == "cancelled"


async def test_state_saves_and_loads_into_a_new_conversation(studio: StudioHttp) -> None:
    first = await collect(studio, {"agent": "coder", "task": "remember 42"})
    conversation = first[0][1]["conversation"]
    saved = await studio.http.get(f"/ui/api/playground/conversations/{conversation}/state", headers=studio.auth())
    assert saved.status_code == 200 and "attachment" in saved.headers["content-disposition"]
    state = saved.json()
    assert state["format"] == "mcp-workbench.playground/1" and state["agent"] == "coder"
    loaded = await studio.http.post("/ui/api/playground/conversations", json=state, headers=studio.auth())
    assert loaded.status_code == 201
    new = loaded.json()["id"]
    assert new != conversation
    again = await collect(studio, {"conversation": new, "task": "what did I say?"})
    assert again[-1][0] == "result"

    wrong = await studio.http.post("/ui/api/playground/conversations", json={**state, "agent": "executor"},
                                   headers=studio.auth())
    assert wrong.status_code == 400 and "cannot load" in wrong.json()["error_description"]
    junk = await studio.http.post("/ui/api/playground/conversations", json={"hello": 1}, headers=studio.auth())
    assert junk.status_code == 400 and "format" in junk.json()["error_description"]


async def test_bad_input_gets_a_clear_refusal(studio: StudioHttp) -> None:
    auth = studio.auth()
    assert (await studio.http.get("/ui/api/runs")).status_code == 401  # no token, no runs
    assert (await studio.http.get("/ui/api/runs/ABCDEF0123456789", headers=auth)).status_code == 404  # not our shape
    assert (await studio.http.get("/ui/api/runs/' OR 1=1 --", headers=auth)).status_code == 404
    assert (await studio.http.get("/ui/api/traces/zz", headers=auth)).status_code == 404
    assert (await studio.http.get("/ui/api/runs?kind=bogus", headers=auth)).status_code == 400
    unknown = await studio.http.post("/ui/api/playground/run", json={"agent": "nobody", "task": "x"}, headers=auth)
    assert unknown.status_code == 404 and "executor" in unknown.json()["error_description"]
    gone = await studio.http.post("/ui/api/playground/run", json={"conversation": "nope", "task": "x"}, headers=auth)
    assert gone.status_code == 404
    big = await studio.http.post("/ui/api/playground/run", content=b"{" + b" " * 300_000 + b"}",
                                 headers={**auth, "Content-Type": "application/json"})
    assert big.status_code == 413
    long_task = await collect(studio, {"agent": "executor", "task": "x" * 40_000})
    assert long_task == [("error", {"message": "the task is 40000 characters; the limit is 32000"})]


async def test_another_identitys_runs_and_traces_stay_hidden(studio: StudioHttp) -> None:
    from opentelemetry import trace

    store = studio.server.recorder.store
    assert store is not None
    with trace.get_tracer("t").start_as_current_span("someone else's call") as span:
        pass
    theirs_trace = format(span.get_span_context().trace_id, "032x")
    theirs = store.start_run("tool", "secret_tool", identity="token-someoneelse00", session="s", input={"x": 1},
                             trace_id=theirs_trace)
    store.finish_run(theirs, "ok")
    mine = await collect(studio, {"agent": "executor", "task": "```python\n1\n```"})
    auth = studio.auth()

    listed = (await studio.http.get("/ui/api/runs", headers=auth)).json()["runs"]
    assert [r["id"] for r in listed] == [mine[0][1]["run_id"]]
    assert (await studio.http.get("/ui/api/runs?q=secret", headers=auth)).json()["runs"] == []
    assert (await studio.http.get(f"/ui/api/runs/{theirs}", headers=auth)).status_code == 404
    assert (await studio.http.get(f"/ui/api/runs/{theirs}/export", headers=auth)).status_code == 404
    assert (await studio.http.get(f"/ui/api/traces/{theirs_trace}", headers=auth)).status_code == 404
    traces = (await studio.http.get("/ui/api/traces", headers=auth)).json()["traces"]
    assert [t["trace_id"] for t in traces] == [mine[0][1]["trace_id"]]
    assert (await studio.http.get(f"/ui/api/traces/{mine[0][1]['trace_id']}", headers=auth)).status_code == 200


# ---- in a real browser, against a real `workbench serve` on examples/workbench.toml -----------------

def test_playground_continues_stops_saves_and_loads_in_the_browser(page, studio_server, shot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{studio_server.base}/ui/playground")
    page.get_by_label("Agent or team").select_option("executor")
    task = page.get_by_label("Task")
    task.fill("```python\nx = 6 * 7\nprint('set')\n```")
    task.press("Control+Enter")  # the keyboard runs it too
    page.locator(".run-end").first.wait_for(timeout=90_000)
    conversation = page.locator(".conversation-line").inner_text()
    # the next task continues the conversation: same agent copy, same sandbox session, so x is still there
    task.fill("```python\nprint(x)\n```")
    page.get_by_role("button", name="Run").click()
    page.locator(".run-end").nth(1).wait_for(timeout=90_000)
    assert page.locator(".event.tool-results pre").nth(1).inner_text() == "42"
    assert page.locator(".conversation-line").inner_text() == conversation
    shot(page, "playground-continued")

    with page.expect_download() as download:
        page.get_by_role("button", name="Save state").click()
    saved = tmp_path / "conversation.json"
    download.value.save_as(saved)
    assert '"format": "mcp-workbench.playground/1"' in saved.read_text()
    page.locator("#pg-load").set_input_files(str(saved))
    page.get_by_text("Loaded: type a task to continue").wait_for()
    assert page.locator(".conversation-line").inner_text() != conversation

    task.fill("```python\nimport time\ntime.sleep(25)\n```")
    page.get_by_role("button", name="Run").click()
    page.locator(".event.tool-calls").last.wait_for()
    page.get_by_role("button", name="Stop").click()
    page.locator(".run-end .badge.warn").wait_for(timeout=30_000)
    assert page.get_by_role("status").first.inner_text() == "Stopped."
    shot(page, "playground-stopped")
