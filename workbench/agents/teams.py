"""Teams: agents (or teams) taking turns on one shared thread until a termination fires.

`RoundRobinGroupChat` goes in order; `SelectorGroupChat` asks a model (or your
`selector_func`) who speaks next. Each speaker receives the messages it has not seen yet.
A turn is committed only when it completes, so `save_state()` is consistent at any moment
and a run cut short — cancelled, timed out, or the process killed — resumes with
`run()` (no task) after `load_state()`. Give `checkpoint=path` to have the state written
after every turn.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio

from workbench.agents.base import Runner, Task, check_name, check_state, task_messages, usage_of
from workbench.agents.messages import Event, TaskResult, TextChunk, TextMessage, Usage, dump_events, load_events
from workbench.agents.models import ChatClient
from workbench.agents.termination import Termination
from workbench.core import CallContext, maybe_await

SelectorFunc = Callable[[list[Any]], str | None | Awaitable[str | None]]


class GroupChat(Runner):
    def __init__(self, participants: Sequence[Runner], *, termination: Termination | None = None,
                 max_turns: int | None = None, name: str = "team", description: str = "",
                 checkpoint: str | Path | None = None) -> None:
        if not participants:
            raise ValueError("a team needs at least one participant")
        names = [p.name for p in participants]
        if len(set(names)) != len(names):
            raise ValueError(f"participant names must be unique, got {names}")
        if termination is None and max_turns is None:
            raise ValueError("a team needs a termination condition or max_turns, or it would never stop")
        self.name = check_name(name)
        self.description = description or f"A team of {', '.join(names)}."
        self.participants = list(participants)
        self.termination = termination
        self.max_turns = max_turns
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self._thread: list[Any] = []
        self._delivered: dict[str, int] = {n: 0 for n in names}
        self._turn = 0
        self._last_speaker: str | None = None

    # -- choosing the speaker (subclasses) ------------------------------------------------
    async def select_speaker(self, ctx: CallContext) -> tuple[Runner, Usage | None]:
        raise NotImplementedError

    # -- the run --------------------------------------------------------------------------
    async def run_stream(
        self, task: Task = None, *, ctx: CallContext | None = None
    ) -> AsyncGenerator[Event | TaskResult, None]:
        async with aclosing(self._loop(task_messages(task), ctx or CallContext(), emit_task=True)) as events:
            async for event in events:
                yield event

    async def respond(self, messages: list[TextMessage], ctx: CallContext) -> AsyncGenerator[Event, None]:
        """As a participant of an outer team: run, then answer with the final text."""
        async with aclosing(self._loop(messages, ctx, emit_task=False)) as events:
            async for event in events:
                if isinstance(event, TaskResult):
                    yield TextMessage(source=self.name, content=event.text)
                else:
                    yield event

    async def _loop(
        self, new: list[TextMessage], ctx: CallContext, *, emit_task: bool
    ) -> AsyncGenerator[Event | TaskResult, None]:
        if not new and not self._thread:
            raise ValueError(f"team {self.name!r} has no conversation to continue: give it a task")
        term = self.termination
        produced: list[Any] = []
        extra = Usage()
        self._thread.extend(new)
        produced.extend(new)
        if self.checkpoint is not None and new:
            await self._write_checkpoint()  # even a crash before the first turn keeps the task
        if emit_task:
            for m in new:
                yield m
        stop = term.check(new) if term and new else None
        turns = 0
        while stop is None:
            if self.max_turns is not None and turns >= self.max_turns:
                stop = f"{turns} turns reached max_turns"
                break
            deadline = term.deadline() if term else None
            turn_ctx = ctx if deadline is None else ctx.with_timeout(max(0.0, deadline - time.monotonic()))
            turn: list[Any] = []
            try:
                with anyio.fail_after(turn_ctx.remaining()):
                    speaker, selector_usage = await self.select_speaker(turn_ctx)
                if selector_usage is not None:
                    extra = extra + selector_usage
                    stop = term.check([SimpleNamespace(usage=selector_usage)]) if term else None
                    if stop:
                        break
                inputs = [m for m in self._thread[self._delivered.get(speaker.name, 0):]
                          if isinstance(m, TextMessage) and m.source != speaker.name]
                async with aclosing(speaker.respond(inputs, turn_ctx)) as events:
                    async for event in events:
                        yield event
                        if not isinstance(event, TextChunk):
                            turn.append(event)
            except TimeoutError:
                if turn_ctx.remaining() != 0.0:
                    raise
                # The unfinished turn is dropped: the speaker's own state was not committed either.
                stop = (term.check([]) if term else None) or "the caller's deadline passed"
                break
            self._thread.extend(turn)
            self._delivered[speaker.name] = len(self._thread)
            self._last_speaker = speaker.name
            self._turn += 1
            turns += 1
            produced.extend(turn)
            stop = term.check(turn) if term else None
            if self.checkpoint is not None and stop is None:
                await self._write_checkpoint()
        if term:
            term.reset()
        if self.checkpoint is not None:
            await self._write_checkpoint()
        yield TaskResult(messages=produced, stop_reason=stop, usage=usage_of(produced) + extra)

    # -- state ----------------------------------------------------------------------------
    async def save_state(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__, "version": 1, "name": self.name,
            "thread": dump_events(self._thread), "delivered": dict(self._delivered), "turn": self._turn,
            "last_speaker": self._last_speaker,
            "termination": self.termination.state() if self.termination else {},
            "participants": {p.name: await p.save_state() for p in self.participants},
        }

    async def load_state(self, state: dict[str, Any]) -> None:
        check_state(state, type(self).__name__, self.name)
        saved = state.get("participants", {})
        missing = [p.name for p in self.participants if p.name not in saved]
        if missing:
            raise ValueError(f"saved state of team {self.name!r} has no state for {missing}")
        for p in self.participants:
            await p.load_state(saved[p.name])
        self._thread = load_events(state.get("thread", []))
        self._delivered = {p.name: int(state.get("delivered", {}).get(p.name, 0)) for p in self.participants}
        self._turn = int(state.get("turn", 0))
        self._last_speaker = state.get("last_speaker")
        if self.termination:
            self.termination.load(state.get("termination", {}))

    async def reset(self) -> None:
        for p in self.participants:
            await p.reset()
        self._thread = []
        self._delivered = {p.name: 0 for p in self.participants}
        self._turn = 0
        self._last_speaker = None
        if self.termination:
            self.termination.reset()

    async def _write_checkpoint(self) -> None:
        assert self.checkpoint is not None
        tmp = self.checkpoint.with_suffix(self.checkpoint.suffix + ".tmp")
        tmp.write_text(json.dumps(await self.save_state()))
        os.replace(tmp, self.checkpoint)  # atomic: a crash leaves the previous checkpoint intact


class RoundRobinGroupChat(GroupChat):
    """`RoundRobinGroupChat([coder, reviewer], termination=MaxMessages(8) | TextMention("APPROVE"))`."""

    async def select_speaker(self, ctx: CallContext) -> tuple[Runner, Usage | None]:
        return self.participants[self._turn % len(self.participants)], None

    def clone(self) -> RoundRobinGroupChat:
        return RoundRobinGroupChat([p.clone() for p in self.participants], termination=_fresh(self.termination),
                                   max_turns=self.max_turns, name=self.name, description=self.description)


SELECTOR_PROMPT = """You choose who speaks next in a team conversation.

Participants:
{roles}

Conversation so far:
{history}

Who should speak next? Answer with exactly one name from: {names}."""


class SelectorGroupChat(GroupChat):
    """A model (or `selector_func(thread) -> name | None`) picks each next speaker.

    `selector_func` returning None falls back to the model. An answer naming no single
    candidate is retried `max_selector_attempts` times, then the next in order speaks.
    """

    def __init__(self, participants: Sequence[Runner], model: ChatClient | None = None, *,
                 termination: Termination | None = None, max_turns: int | None = None, name: str = "team",
                 description: str = "", selector_prompt: str = SELECTOR_PROMPT, allow_repeated_speaker: bool = False,
                 selector_func: SelectorFunc | None = None, max_selector_attempts: int = 3,
                 checkpoint: str | Path | None = None) -> None:
        super().__init__(participants, termination=termination, max_turns=max_turns, name=name,
                         description=description, checkpoint=checkpoint)
        if model is None and selector_func is None:
            raise ValueError("SelectorGroupChat needs a model or a selector_func")
        self.model = model
        self.selector_prompt = selector_prompt
        self.allow_repeated_speaker = allow_repeated_speaker
        self.selector_func = selector_func
        self.max_selector_attempts = max_selector_attempts

    def clone(self) -> SelectorGroupChat:
        return SelectorGroupChat([p.clone() for p in self.participants], self.model,
                                 termination=_fresh(self.termination), max_turns=self.max_turns, name=self.name,
                                 description=self.description, selector_prompt=self.selector_prompt,
                                 allow_repeated_speaker=self.allow_repeated_speaker,
                                 selector_func=self.selector_func, max_selector_attempts=self.max_selector_attempts)

    def _by_name(self, name: str | None) -> Runner | None:
        return next((p for p in self.participants if p.name == name), None)

    async def select_speaker(self, ctx: CallContext) -> tuple[Runner, Usage | None]:
        if self.selector_func is not None:
            choice = await maybe_await(self.selector_func(list(self._thread)))
            if choice is not None:
                speaker = self._by_name(choice)
                if speaker is None:
                    names = [p.name for p in self.participants]
                    raise ValueError(f"selector_func chose {choice!r}, not one of {names}")
                return speaker, None
        candidates = [p for p in self.participants if self.allow_repeated_speaker or p.name != self._last_speaker]
        candidates = candidates or self.participants
        if len(candidates) == 1 or self.model is None:
            return candidates[0], None
        history = "\n".join(f"{m.source}: {m.content}" for m in self._thread[-30:] if isinstance(m, TextMessage))
        names = [p.name for p in candidates]
        prompt = self.selector_prompt.format(roles="\n".join(f"{p.name}: {p.description}" for p in candidates),
                                             history=history, names=", ".join(names))
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        usage = Usage()
        for _ in range(self.max_selector_attempts):
            response = await self.model.create(messages)
            usage = usage + response.usage
            answer = response.content or ""
            mentioned = [n for n in names if re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w-])", answer)]
            if len(mentioned) == 1:
                return self._by_name(mentioned[0]) or candidates[0], usage
            messages += [{"role": "assistant", "content": answer},
                         {"role": "user", "content": f"Answer with exactly one of: {', '.join(names)} — nothing else."}]
        # No clear answer: keep the conversation moving in participant order.
        after = self._last_speaker
        order = [p.name for p in self.participants]
        start = order.index(after) + 1 if after in order else 0
        for i in range(len(order)):
            pick = self._by_name(order[(start + i) % len(order)])
            if pick in candidates:
                return pick, usage
        return candidates[0], usage


def _fresh(termination: Termination | None) -> Termination | None:
    """A copy of a termination condition with nothing counted (for clones)."""
    if termination is None:
        return None
    fresh = copy.deepcopy(termination)
    fresh.reset()
    return fresh
