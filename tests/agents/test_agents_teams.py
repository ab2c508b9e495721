"""Teams over the scripted model: turn order, selection, termination, state, cancellation."""

from __future__ import annotations

import asyncio
import json
import time

import anyio
import pytest
from model_server import ModelServer

from workbench.agents.assistant import AssistantAgent
from workbench.agents.messages import TextMessage, Usage
from workbench.agents.replay import ReplayChatClient
from workbench.agents.teams import RoundRobinGroupChat, SelectorGroupChat
from workbench.agents.termination import ExternalStop, MaxMessages, TextMention, Timeout, TokenBudget

pytestmark = pytest.mark.anyio


def pair(model_server: ModelServer, make_client, base: str, coder: list, reviewer: list) -> tuple[AssistantAgent, AssistantAgent]:
    model_server.script(f"{base}-coder", coder)
    model_server.script(f"{base}-reviewer", reviewer)
    return (AssistantAgent("coder", make_client(f"{base}-coder"), description="writes code"),
            AssistantAgent("reviewer", make_client(f"{base}-reviewer"), description="reviews code"))


async def test_round_robin_until_text_mention(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name,
                           [{"content": "draft 1"}, {"content": "draft 2"}], [{"content": "needs work"}, {"content": "APPROVE"}])
    team = RoundRobinGroupChat([coder, reviewer], termination=MaxMessages(8) | TextMention("APPROVE"))
    result = await team.run("Write fib.")
    assert [(m.source, m.content) for m in result.messages] == [
        ("user", "Write fib."), ("coder", "draft 1"), ("reviewer", "needs work"), ("coder", "draft 2"), ("reviewer", "APPROVE")]
    assert result.stop_reason == "reviewer mentioned 'APPROVE'"
    # Each speaker got exactly what it had not seen, attributed to its author.
    second_coder_turn = model_server.requests(f"{model_name}-coder")[1]["messages"]
    assert second_coder_turn[-1] == {"role": "user", "content": "needs work", "name": "reviewer"}
    assert [m["content"] for m in second_coder_turn[1:]] == ["Write fib.", "draft 1", "needs work"]


async def test_max_messages_and_continuing_a_stopped_run(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name,
                           [{"content": "c1"}, {"content": "c2"}, {"content": "c3"}], [{"content": "r1"}, {"content": "r2"}])
    team = RoundRobinGroupChat([coder, reviewer], termination=MaxMessages(3))
    first = await team.run("go")
    assert [m.content for m in first.messages] == ["go", "c1", "r1"] and "3 messages" in first.stop_reason
    second = await team.run()  # no task: continue; the condition was reset
    assert [m.content for m in second.messages] == ["c2", "r2", "c3"]  # the coder speaks next, as the turn order says


async def test_state_resumes_in_a_new_process_shape(model_server: ModelServer, model_name: str, make_client, tmp_path) -> None:
    steps_c = [{"content": "c1"}, {"content": "c2", "delay": 30}]
    steps_r = [{"content": "r1"}, {"content": "APPROVE"}]
    coder, reviewer = pair(model_server, make_client, model_name, steps_c, steps_r)
    checkpoint = tmp_path / "team.json"
    team = RoundRobinGroupChat([coder, reviewer], termination=TextMention("APPROVE") | MaxMessages(10), checkpoint=checkpoint)
    with anyio.move_on_after(2):  # the coder's second turn hangs: the run is cut between turns 2 and 3
        await team.run("go")
    saved = json.loads(checkpoint.read_text())  # what a crashed process would have left
    assert [m["content"] for m in saved["thread"]] == ["go", "c1", "r1"]
    assert saved == json.loads(json.dumps(await team.save_state()))

    # A fresh team (as after a restart) loads it and finishes the conversation.
    coder2, reviewer2 = pair(model_server, make_client, model_name + "-b", [{"content": "c2"}], [{"content": "APPROVE"}])
    team2 = RoundRobinGroupChat([coder2, reviewer2], termination=TextMention("APPROVE") | MaxMessages(10))
    await team2.load_state(saved)
    result = await team2.run()
    assert [(m.source, m.content) for m in result.messages] == [("coder", "c2"), ("reviewer", "APPROVE")]
    resumed = model_server.requests(f"{model_name}-b-coder")[0]["messages"]
    assert [m["content"] for m in resumed[1:]] == ["go", "c1", "r1"]  # the coder kept its memory


async def test_cancelled_team_run_stops_fast_and_leaves_no_task(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name, [{"content": "c1"}], [{"content": "slow", "delay": 60}])
    team = RoundRobinGroupChat([coder, reviewer], termination=MaxMessages(10))
    before = asyncio.all_tasks()
    seen: list[str] = []

    async def consume() -> None:
        async for event in team.run_stream("go"):
            if isinstance(event, TextMessage):
                seen.append(event.content)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        with anyio.fail_after(5):
            while len(model_server.requests(f"{model_name}-reviewer")) == 0:
                await anyio.sleep(0.01)
        started = time.monotonic()
        tg.cancel_scope.cancel()
    assert time.monotonic() - started < 1.0
    await anyio.sleep(0.05)
    assert asyncio.all_tasks() - before == set()
    assert seen == ["go", "c1"]
    assert [m["content"] for m in (await team.save_state())["thread"]] == ["go", "c1"]


async def test_timeout_stops_mid_turn(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name, [{"content": "c1"}], [{"content": "late", "delay": 30}])
    team = RoundRobinGroupChat([coder, reviewer], termination=Timeout(1.0) | MaxMessages(10))
    started = time.monotonic()
    result = await team.run("go")
    assert time.monotonic() - started < 5
    assert result.stop_reason == "timed out after 1 s"
    assert [m.content for m in result.messages] == ["go", "c1"]


async def test_token_budget(model_server: ModelServer, model_name: str, make_client) -> None:
    used = {"prompt_tokens": 40, "completion_tokens": 20}
    coder, reviewer = pair(model_server, make_client, model_name, [{"content": "c1", "usage": used}] * 3,
                           [{"content": "r1", "usage": used}] * 3)
    team = RoundRobinGroupChat([coder, reviewer], termination=TokenBudget(150) | MaxMessages(20))
    result = await team.run("go")
    assert [m.content for m in result.messages] == ["go", "c1", "r1", "c1"]
    assert result.usage == Usage(input_tokens=120, output_tokens=60) and "180 tokens" in result.stop_reason


async def test_and_condition_needs_both(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name, [{"content": "DONE"}, {"content": "more"}],
                           [{"content": "ok"}, {"content": "ok"}])
    team = RoundRobinGroupChat([coder, reviewer], termination=TextMention("DONE") & MaxMessages(4))
    result = await team.run("go")
    assert [m.content for m in result.messages] == ["go", "DONE", "ok", "more"]


async def test_selector_by_model_and_by_function(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name, [{"content": "code"}], [{"content": "APPROVE"}])
    model_server.script(f"{model_name}-tester", [])
    tester = AssistantAgent("tester", make_client(f"{model_name}-tester"), description="runs tests")
    planner_model = model_server.script(f"{model_name}-sel", [{"content": "I pick coder."}, {"content": "hmm"},
                                                             {"content": "reviewer"}])
    team = SelectorGroupChat([coder, reviewer, tester], make_client(planner_model), termination=TextMention("APPROVE"))
    result = await team.run("Write fib.")
    assert [m.source for m in result.messages] == ["user", "coder", "reviewer"]
    asks = model_server.requests(planner_model)
    assert len(asks) == 3
    assert "coder: writes code" in asks[0]["messages"][0]["content"]
    assert asks[1]["messages"][0]["content"].endswith("Answer with exactly one name from: reviewer, tester.")  # no repeat
    assert asks[2]["messages"][-1]["content"].startswith("Answer with exactly one of")  # retried after "hmm"
    assert result.usage.input_tokens > 0

    picks = iter(["reviewer", None])
    c2, r2 = pair(model_server, make_client, model_name + "-f", [{"content": "code"}], [{"content": "first"}])
    team = SelectorGroupChat([c2, r2], selector_func=lambda thread: next(picks), max_turns=2)
    result = await team.run("go")
    assert [m.source for m in result.messages] == ["user", "reviewer", "coder"]  # None fell back: no model → first candidate
    assert result.stop_reason == "2 turns reached max_turns"


async def test_nested_team_as_participant(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name, [{"content": "code"}], [{"content": "APPROVE"}])
    inner = RoundRobinGroupChat([coder, reviewer], termination=TextMention("APPROVE"), name="dev")
    model_server.script(f"{model_name}-boss", [{"content": "ship it"}])
    boss = AssistantAgent("boss", make_client(f"{model_name}-boss"))
    outer = RoundRobinGroupChat([inner, boss], max_turns=2)
    result = await outer.run("Build it.")
    assert [(m.source, m.content) for m in result.messages if isinstance(m, TextMessage)] == [
        ("user", "Build it."), ("coder", "code"), ("reviewer", "APPROVE"), ("dev", "APPROVE"), ("boss", "ship it")]
    assert json.loads(json.dumps(await outer.save_state()))["participants"]["dev"]["type"] == "RoundRobinGroupChat"


def test_team_needs_a_way_to_stop() -> None:
    with pytest.raises(ValueError, match="never stop"):
        RoundRobinGroupChat([AssistantAgent("a", ReplayChatClient([]))])


async def test_external_stop_finishes_the_turn_then_stops(model_server: ModelServer, model_name: str, make_client) -> None:
    coder, reviewer = pair(model_server, make_client, model_name, [{"content": "c1", "delay": 0.3}, {"content": "c2"}],
                           [{"content": "r1"}])
    stop = ExternalStop()
    team = RoundRobinGroupChat([coder, reviewer], termination=stop, max_turns=2)

    async def press_stop() -> None:
        while not model_server.requests(f"{model_name}-coder"):
            await anyio.sleep(0.01)
        stop.set("the user pressed stop")

    async with anyio.create_task_group() as tg:
        tg.start_soon(press_stop)
        result = await team.run("go")
    assert [m.content for m in result.messages] == ["go", "c1"] and result.stop_reason == "the user pressed stop"
    assert stop.requested is None  # reset for the next run
    resumed = await team.run()
    assert [m.content for m in resumed.messages] == ["r1", "c2"]
