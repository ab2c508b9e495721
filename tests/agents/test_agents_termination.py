"""Termination conditions on their own: what counts, combining, and state that survives a restart."""

from __future__ import annotations

import json

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
