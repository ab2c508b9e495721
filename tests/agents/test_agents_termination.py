"""Termination conditions on their own: what counts, combining, and state that survives a restart."""

from __future__ import annotations

import json

import pytest

from workbench.agents.messages import TextMessage, ToolCall, ToolCallEvent, Usage
from workbench.agents.termination import MaxMessages, TextMention, TokenBudget


def said(source: str, content: str, tokens: int = 0) -> TextMessage:
    return TextMessage(source=source, content=content, usage=Usage(input_tokens=tokens) if tokens else None)


def test_what_counts() -> None:
    calls = ToolCallEvent(source="a", calls=[ToolCall(id="1", name="t")], usage=Usage(output_tokens=5))
    count = MaxMessages(2)
    assert count.check([said("user", "task"), calls]) is None  # tool events are not messages
    assert count.check([said("a", "x")]) == "2 messages reached the maximum of 2"
    mention = TextMention("DONE")
    assert mention.check([said("user", "say DONE"), said("a", "not yet")]) is None  # the task does not count
    assert mention.check([said("a", "DONE")]) == "a mentioned 'DONE'"
    assert TextMention("DONE", sources=["user"]).check([said("user", "DONE")]) == "user mentioned 'DONE'"
    assert TextMention("DONE", sources=["b"]).check([said("a", "DONE")]) is None
    budget = TokenBudget(10)
    assert budget.check([calls]) is None and budget.check([said("a", "x", tokens=5)]) == "10 tokens used, budget 10"


def test_state_survives_a_json_round_trip_into_fresh_conditions() -> None:
    def make():  # type: ignore[no-untyped-def]
        return (MaxMessages(3) | TokenBudget(100)) | (TextMention("A") & TextMention("B"))

    first = make()
    assert first.check([said("user", "go"), said("x", "A", tokens=60)]) is None
    restored = make()
    restored.load(json.loads(json.dumps(first.state())))
    # One more message of 40 tokens: 3 messages, 100 tokens, and B after the remembered A.
    assert restored.check([said("y", "B", tokens=40)]) == (
        "3 messages reached the maximum of 3; 100 tokens used, budget 100; x mentioned 'A' and y mentioned 'B'")
    restored.reset()
    assert restored.check([said("y", "B", tokens=40)]) is None  # reset forgets everything


def test_only_time_gives_a_deadline() -> None:
    import time

    from workbench.agents.termination import Timeout

    assert (Timeout(0.1) & TextMention("X")).deadline() is None  # time alone cannot satisfy the mention
    either = (Timeout(5) | MaxMessages(3)).deadline()
    assert either is not None and 4 < either - time.monotonic() <= 5


@pytest.mark.anyio
async def test_a_resumed_team_continues_with_the_right_speaker() -> None:
    from workbench.agents.assistant import AssistantAgent
    from workbench.agents.replay import ReplayChatClient
    from workbench.agents.teams import RoundRobinGroupChat

    def team(coder: list[str], reviewer: list[str]) -> RoundRobinGroupChat:
        return RoundRobinGroupChat([AssistantAgent("coder", ReplayChatClient(coder)),  # type: ignore[arg-type]
                                    AssistantAgent("reviewer", ReplayChatClient(reviewer))],  # type: ignore[arg-type]
                                   termination=MaxMessages(2))

    first = team(["c1"], [])
    assert [m.content for m in (await first.run("go")).messages] == ["go", "c1"]
    state = json.loads(json.dumps(await first.save_state()))
    second = team(["c2"], ["r1"])
    await second.load_state(state)
    assert [(m.source, m.content) for m in (await second.run()).messages] == [("reviewer", "r1"), ("coder", "c2")]
