"""What every agent and team has in common: `run`, `run_stream`, state, cloning.

A run is one async generator chain running in the caller's task — no background tasks
outlive a turn — so cancelling the caller stops the run at whatever it awaits, and an
early `break` out of `run_stream` leaves nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from workbench.agents.messages import Event, TaskResult, TextChunk, TextMessage, Usage
from workbench.core import CallContext, WorkbenchError

Task = str | TextMessage | Sequence[TextMessage] | None
"""A task: text (from "user"), message(s), or None to continue where the last run stopped."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What OpenAI accepts as a message author's `name`, which is how teammates are told apart."""


class StateError(WorkbenchError):
    """A saved state that does not fit the agent or team it is loaded into."""


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid agent name {name!r}: use 1-64 letters, digits, '_' or '-' (no spaces)")
    if name == "user":
        raise ValueError("'user' is the task's author; give the agent another name")
    return name


def task_messages(task: Task) -> list[TextMessage]:
    if task is None:
        return []
    if isinstance(task, str):
        return [TextMessage(source="user", content=task)]
    if isinstance(task, TextMessage):
        return [task]
    return list(task)


def usage_of(events: Sequence[Any]) -> Usage:
    total = Usage()
    for event in events:
        total = total + getattr(event, "usage", None)
    return total


def check_state(state: dict[str, Any], kind: str, name: str) -> None:
    if not isinstance(state, dict) or state.get("type") != kind:
        found = state.get("type") if isinstance(state, dict) else type(state).__name__
        raise StateError(f"cannot load state of {found!r} into {kind} {name!r}")


class Runner:
    """An agent or a team: something that takes a task and streams a run."""

    name: str
    description: str

    async def respond(self, messages: list[TextMessage], ctx: CallContext) -> AsyncGenerator[Event, None]:
        """Take the messages this runner has not seen yet, stream its events; the last event
        is its answer (a `TextMessage` from `self.name`)."""
        raise NotImplementedError
        yield  # pragma: no cover

    async def run_stream(
        self, task: Task = None, *, ctx: CallContext | None = None
    ) -> AsyncGenerator[Event | TaskResult, None]:
        """Stream the task message(s), every event, then the `TaskResult`."""
        produced: list[Any] = []
        new = task_messages(task)
        for message in new:
            produced.append(message)
            yield message
        async with aclosing(self.respond(new, ctx or CallContext())) as events:
            async for event in events:
                if not isinstance(event, TextChunk):
                    produced.append(event)
                yield event
        yield TaskResult(messages=produced, stop_reason=None, usage=usage_of(produced))

    async def run(self, task: Task = None, *, ctx: CallContext | None = None) -> TaskResult:
        """Run to the end; the result's `.text` is the final answer."""
        result: TaskResult | None = None
        async with aclosing(self.run_stream(task, ctx=ctx)) as stream:
            async for item in stream:
                if isinstance(item, TaskResult):
                    result = item
        assert result is not None  # run_stream always ends with one
        return result

    async def save_state(self) -> dict[str, Any]:
        raise NotImplementedError

    async def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    async def reset(self) -> None:
        """Forget the conversation."""
        raise NotImplementedError

    def clone(self) -> Runner:
        """A fresh runner with the same configuration and no conversation (for concurrent runs)."""
        raise NotImplementedError
