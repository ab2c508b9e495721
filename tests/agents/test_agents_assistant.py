"""AssistantAgent against the scripted model over HTTP, calling real tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from model_server import ModelServer

from adapters.mcp import McpWorkbench
from workbench import CallContext, StaticWorkbench
from workbench.agents.assistant import AssistantAgent
from workbench.agents.messages import TextChunk, ToolCallEvent, ToolResultEvent
from workbench.agents.replay import ReplayChatClient

pytestmark = pytest.mark.anyio
DEMO = str(Path(__file__).resolve().parents[2] / "examples" / "servers" / "demo_server.py")


def demo_server() -> McpWorkbench:
    return McpWorkbench.stdio(sys.executable, [DEMO], name="demo")


async def test_calls_an_mcp_tool_over_stdio_and_answers(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 40}}]}, {"content": "It is 42."}])
    async with demo_server() as tools:
        agent = AssistantAgent("coder", make_client(model_name), workbench=tools, system_message="Be exact.")
        events = [e async for e in agent.run_stream("What is 2 + 40?")]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["TextMessage", "ToolCallEvent", "ToolResultEvent", "TextMessage", "TaskResult"]
    result = events[-1]
    assert result.text == "It is 42." and result.usage.total_tokens > 0
    assert json.loads(events[2].results[0].content) == {"total": 42}
    first, second = model_server.requests(model_name)
    assert first["messages"][0] == {"role": "system", "content": "Be exact."}
    assert {t["function"]["name"] for t in first["tools"]} >= {"add", "echo", "countdown"}
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"]) == {"total": 42}
    assert tool_message["tool_call_id"] == second["messages"][-2]["tool_calls"][0]["id"]


async def test_parallel_tool_calls_run_concurrently(model_server: ModelServer, model_name: str, make_client) -> None:
    running, peak = 0, 0
    both_started = anyio.Event()

    async def slow(tag: str) -> str:
        """Wait until two calls run at once (a sequential loop would hang here)."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 2:
            both_started.set()
        with anyio.fail_after(5):
            await both_started.wait()
        running -= 1
        return f"slow {tag}"

    model_server.script(model_name, [{"tool_calls": [{"name": "slow", "arguments": {"tag": "a"}},
                                                     {"name": "slow", "arguments": {"tag": "b"}}]},
                                     {"content": "both done"}])
    agent = AssistantAgent("a", make_client(model_name), workbench=StaticWorkbench([slow]))
    result = await agent.run("go")
    assert peak == 2 and result.text == "both done"
    tool_results = [e for e in result.messages if isinstance(e, ToolResultEvent)][0].results
    assert [r.content for r in tool_results] == ["slow a", "slow b"]  # in the order of the calls


async def test_tool_errors_go_back_to_the_model(model_server: ModelServer, model_name: str, make_client) -> None:
    def divide(a: float, b: float) -> float:
        return a / b

    model_server.script(model_name, [
        {"tool_calls": [{"name": "divide", "arguments": "{\"a\": 1, "},
                        {"name": "nope", "arguments": {}},
                        {"name": "divide", "arguments": {"a": 1, "b": 0}},
                        {"name": "divide", "arguments": "[1, 2]"}]},
        {"content": "recovered"}])
    agent = AssistantAgent("a", make_client(model_name), workbench=StaticWorkbench([divide]))
    result = await agent.run("divide")
    assert result.text == "recovered"
    results = [e for e in result.messages if isinstance(e, ToolResultEvent)][0].results
    assert all(r.is_error for r in results)
    assert "not valid JSON" in results[0].content
    assert "unknown tool 'nope'" in results[1].content and "divide" in results[1].content
    assert "ZeroDivisionError" in results[2].content
    assert "must be a JSON object" in results[3].content
    fed_back = [m for m in model_server.requests(model_name)[1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in fed_back] == [r.content for r in results]


async def test_iteration_bound_with_and_without_reflection(model_server: ModelServer, model_name: str, make_client) -> None:
    def ping() -> str:
        return "pong"

    call = {"tool_calls": [{"name": "ping", "arguments": {}}]}
    model_server.script(model_name, [call, call])
    agent = AssistantAgent("a", make_client(model_name), workbench=StaticWorkbench([ping]), max_tool_iterations=2)
    result = await agent.run("loop")
    assert result.text == "pong" and len(model_server.requests(model_name)) == 2

    model_server.script(model_name, [call, {"content": "I pinged: pong"}])
    agent = AssistantAgent("a", make_client(model_name), workbench=StaticWorkbench([ping]), max_tool_iterations=1,
                           reflect_on_tool_use=True)
    result = await agent.run("loop")
    assert result.text == "I pinged: pong"
    reflection = model_server.requests(model_name)[1]
    assert "tools" not in reflection and reflection["messages"][-1]["role"] == "tool"


async def test_tool_globs_and_streaming(model_server: ModelServer, model_name: str, make_client) -> None:
    def alpha() -> str:
        return "a"

    def beta() -> str:
        return "b"

    model_server.script(model_name, [{"tool_calls": [{"name": "alpha", "arguments": {}}]}, {"content": "streamed final answer"}])
    agent = AssistantAgent("a", make_client(model_name), workbench=[StaticWorkbench([alpha]), StaticWorkbench([beta])],
                           tools=["al*"], model_client_stream=True)
    events = [e async for e in agent.run_stream("x")]
    assert [t["function"]["name"] for t in model_server.requests(model_name)[0]["tools"]] == ["alpha"]
    chunks = [e.content for e in events if isinstance(e, TextChunk)]
    assert len(chunks) > 1 and "".join(chunks) == "streamed final answer"
    assert isinstance(events[1], ToolCallEvent) and events[-1].text == "streamed final answer"
    assert not any(isinstance(e, TextChunk) for e in events[-1].messages)  # chunks are not kept in the result


async def test_state_round_trips_through_json(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"content": "Noted: 7."}, {"content": "It was 7."}])
    first = AssistantAgent("a", make_client(model_name))
    await first.run("Remember 7.")
    state = json.loads(json.dumps(await first.save_state()))
    second = AssistantAgent("a", make_client(model_name))
    await second.load_state(state)
    assert (await second.run("What was it?")).text == "It was 7."
    sent = [m["content"] for m in model_server.requests(model_name)[1]["messages"]]
    assert sent == ["You are a helpful assistant.", "Remember 7.", "Noted: 7.", "What was it?"]
    with pytest.raises(Exception, match="cannot load state"):
        await second.load_state({"type": "RoundRobinGroupChat"})


async def test_cancelling_mid_tool_call_stops_the_mcp_call_and_commits_nothing(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"tool_calls": [{"name": "countdown", "arguments": {"seconds": 30}}]}])
    async with demo_server() as tools:
        agent = AssistantAgent("a", make_client(model_name), workbench=tools, tools=["countdown"])
        with anyio.move_on_after(1.5) as scope:
            await agent.run("wait")
        assert scope.cancelled_caught
        assert (await agent.save_state())["context"] == []  # the cut turn left no half conversation
        assert (await tools.call_tool("echo", {"message": "alive"})).text == "alive"  # connection still usable


async def test_tool_timeout_is_reported_to_the_model(model_server: ModelServer, model_name: str, make_client) -> None:
    async def sleepy() -> str:
        await anyio.sleep(10)
        return "never"

    model_server.script(model_name, [{"tool_calls": [{"name": "sleepy", "arguments": {}}]}, {"content": "gave up"}])
    agent = AssistantAgent("a", make_client(model_name), workbench=StaticWorkbench([sleepy]), tool_timeout=0.2)
    result = await agent.run("x", ctx=CallContext(session_id="s1"))
    assert result.text == "gave up"
    assert "timed out after 0.2 s" in model_server.requests(model_name)[1]["messages"][-1]["content"]


def test_names_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid agent name"):
        AssistantAgent("has space", ReplayChatClient([]))


async def test_tool_list_follows_changes_and_survives_a_broken_workbench(model_server: ModelServer, model_name: str,
                                                                        make_client) -> None:
    class Broken(StaticWorkbench):
        async def list_tools(self):  # type: ignore[no-untyped-def]
            raise ConnectionError("server down")

    def first() -> str:
        return "1"

    def second() -> str:
        return "2"

    tools = StaticWorkbench([first])
    model_server.script(model_name, [{"content": "a"}, {"content": "b"}])
    agent = AssistantAgent("a", make_client(model_name), workbench=[Broken(name="broken"), tools])
    await agent.run("x")
    tools.add(second)
    await tools.notify_tools_changed()
    await agent.run("y")
    offered = [[t["function"]["name"] for t in r["tools"]] for r in model_server.requests(model_name)]
    assert offered == [["first"], ["first", "second"]]
    assert len(tools._event_listeners) == 1  # one subscription however many runs


async def test_context_window_and_long_tool_results(model_server: ModelServer, model_name: str, make_client) -> None:
    def dump() -> str:
        return "x" * 500

    model_server.script(model_name, [{"content": "one"}, {"tool_calls": [{"name": "dump", "arguments": {}}]},
                                     {"content": "two"}, {"content": "three"}])
    agent = AssistantAgent("a", make_client(model_name), workbench=StaticWorkbench([dump]), max_context_messages=3,
                           max_tool_result_chars=100)
    await agent.run("first")
    await agent.run("second")
    await agent.run("third")
    sent = model_server.requests(model_name)
    tool_result = sent[2]["messages"][-1]
    assert tool_result["role"] == "tool" and tool_result["content"] == "x" * 100 + "\n[… 400 more characters cut]"
    # The last 3 entries would start on a tool result whose call was cut off: it is skipped too.
    assert [(m["role"], m["content"]) for m in sent[3]["messages"]] == [
        ("system", "You are a helpful assistant."), ("assistant", "two"), ("user", "third")]
    assert len((await agent.save_state())["context"]) == 8  # the whole conversation is kept
