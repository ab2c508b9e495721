"""The actor runtime under the agents: addressed actors, request/response, publish/subscribe.

    async with AgentRuntime() as rt:
        rt.register("counter", lambda id: Counter())          # one instance per key, made on first use
        rt.subscribe("ticks", "counter")                      # topic ("ticks", src) -> AgentId("counter", src)
        reply = await rt.send(5, AgentId("counter", "a"))     # direct request/response
        rt.publish("tick", TopicId("ticks", "a"))             # fire and forget, to every subscriber
        await rt.idle()                                       # every published message handled

Each actor handles one message at a time. A `send` runs the handler in the caller's own
task (under the actor's lock), so cancelling the caller cancels the handler at whatever it
awaits, and the handler's exception is the caller's exception. Published messages go
through a per-actor mailbox served by one task in the runtime's task group; a failing
handler is logged and does not stop delivery. Every message gets a span. (So an actor
must not `send` to itself from a handler: it would wait for its own lock; publish instead.)
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from workbench.agents import telemetry
from workbench.agents.base import Runner, Task
from workbench.core import WorkbenchError, maybe_await

logger = logging.getLogger("workbench.agents.runtime")


@dataclass(frozen=True)
class AgentId:
    """An actor's address: its registered type and a key (one instance per key)."""

    type: str
    key: str = "default"

    def __str__(self) -> str:
        return f"{self.type}/{self.key}"


@dataclass(frozen=True)
class TopicId:
    """Where a published message goes: the topic type and its source (becomes the key)."""

    type: str
    source: str = "default"


@dataclass(frozen=True)
class MessageContext:
    runtime: AgentRuntime
    recipient: AgentId
    sender: AgentId | None = None
    topic: TopicId | None = None
    """Set for published messages; None for a direct `send`."""


class Actor:
    """Subclass and implement `on_message`; whatever it returns is the reply to `send`."""

    async def on_message(self, message: Any, ctx: MessageContext) -> Any:
        raise NotImplementedError


class FunctionActor(Actor):
    """An actor from a function `(message, ctx) -> reply` (sync or async)."""

    def __init__(self, fn: Callable[[Any, MessageContext], Any]) -> None:
        self.fn = fn

    async def on_message(self, message: Any, ctx: MessageContext) -> Any:
        return await maybe_await(self.fn(message, ctx))


class RunnerActor(Actor):
    """An agent or team as an actor: a message is a task, the reply its `TaskResult`."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def on_message(self, message: Task, ctx: MessageContext) -> Any:
        return await self.runner.run(message)


class UnknownAgentError(WorkbenchError, LookupError):
    pass


class RuntimeNotStartedError(WorkbenchError, RuntimeError):
    pass


class _Slot:
    """One live actor: its instance, its one-at-a-time lock, its mailbox for publishes."""

    __slots__ = ("actor", "lock", "mailbox", "wakeup")

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.lock = anyio.Lock(fast_acquire=True)
        # A deque plus an event rather than a memory stream: the worker drains a backlog
        # without a task switch per message.
        self.mailbox: deque[tuple[Any, MessageContext]] | None = None
        self.wakeup: anyio.Event | None = None

    def post(self, item: tuple[Any, MessageContext]) -> None:
        assert self.mailbox is not None
        self.mailbox.append(item)
        if self.wakeup is not None:
            self.wakeup.set()


Factory = Callable[[AgentId], Actor | Awaitable[Actor]]


class AgentRuntime:
    """The in-process runtime. Use it as an async context manager; on exit it waits until
    every published message is handled (`stop()` first to drop them instead)."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._slots: dict[AgentId, _Slot] = {}
        self._subscriptions: dict[str, list[str]] = {}
        self._creating: dict[AgentId, deque[tuple[Any, MessageContext]]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._pending = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def __aenter__(self) -> AgentRuntime:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._tg is not None
        if exc[0] is None:
            await self.idle()
        self._tg.cancel_scope.cancel()  # the mailbox workers are idle (or being dropped)
        for slot in self._slots.values():
            slot.mailbox = None
        tg, self._tg = self._tg, None
        return await tg.__aexit__(*exc)

    # -- registration -----------------------------------------------------------------------
    def register(self, agent_type: str, factory: Factory) -> None:
        """Instances of `agent_type` are made by `factory(agent_id)` on their first message."""
        if agent_type in self._factories:
            raise ValueError(f"agent type {agent_type!r} is already registered")
        self._factories[agent_type] = factory

    def register_instance(self, actor: Actor, agent_id: AgentId) -> None:
        if agent_id in self._slots:
            raise ValueError(f"agent {agent_id} already exists")
        self._slots[agent_id] = _Slot(actor)

    def subscribe(self, topic_type: str, agent_type: str) -> None:
        """Messages published to `TopicId(topic_type, source)` go to `AgentId(agent_type, source)`."""
        subscribers = self._subscriptions.setdefault(topic_type, [])
        if agent_type not in subscribers:
            subscribers.append(agent_type)

    async def _slot(self, agent_id: AgentId) -> _Slot:
        slot = self._slots.get(agent_id)
        if slot is None:
            factory = self._factories.get(agent_id.type)
            if factory is None:
                raise UnknownAgentError(
                    f"no agent type {agent_id.type!r} registered (known: {sorted(self._factories)})")
            actor = await maybe_await(factory(agent_id))
            slot = self._slots.setdefault(agent_id, _Slot(actor))  # a concurrent first message may have won
        return slot

    async def get(self, agent_id: AgentId) -> Actor:
        """The actor instance behind an id (made now if it does not exist yet)."""
        return (await self._slot(agent_id)).actor

    # -- messaging --------------------------------------------------------------------------
    async def send(self, message: Any, recipient: AgentId, *, sender: AgentId | None = None) -> Any:
        """Deliver `message` to one actor and return its reply."""
        slot = self._slots.get(recipient) or await self._slot(recipient)
        with telemetry.tracer().start_as_current_span(f"send {recipient.type}", attributes={
                "messaging.operation.name": "send", "messaging.destination.name": str(recipient)}):
            async with slot.lock:
                return await slot.actor.on_message(message, MessageContext(self, recipient, sender))

    def publish(self, message: Any, topic: TopicId, *, sender: AgentId | None = None) -> int:
        """Queue `message` for every subscriber of `topic.type` (except the sender); returns
        how many. Handlers run in the runtime's tasks; `await idle()` waits for them."""
        if self._tg is None:
            raise RuntimeNotStartedError("publish needs a running runtime: use `async with AgentRuntime() as rt`")
        count = 0
        for agent_type in self._subscriptions.get(topic.type, ()):
            recipient = AgentId(agent_type, topic.source)
            if recipient == sender:
                continue
            item = (message, MessageContext(self, recipient, sender, topic))
            slot = self._slots.get(recipient)
            if slot is None:  # made by a factory first; messages wait in order meanwhile
                waiting = self._creating.get(recipient)
                if waiting is None:
                    self._creating[recipient] = waiting = deque()
                    self._tg.start_soon(self._create_and_serve, recipient)
                waiting.append(item)
            else:
                if slot.mailbox is None:
                    slot.mailbox = deque()
                    self._tg.start_soon(self._serve, slot)
                slot.post(item)
            count += 1
        if count:
            self._pending += count
            if self._idle.is_set():
                self._idle = anyio.Event()
        return count

    async def idle(self) -> None:
        """Wait until every published message has been handled."""
        while self._pending:
            await self._idle.wait()

    def stop(self) -> None:
        """Drop undelivered published messages and cancel the handlers running for them."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._pending = 0
        self._idle.set()

    async def _create_and_serve(self, recipient: AgentId) -> None:
        try:
            slot = await self._slot(recipient)
        except Exception:
            waiting = self._creating.pop(recipient, deque())
            logger.exception("cannot create %s: %d published messages dropped", recipient, len(waiting))
            for _ in waiting:
                self._done()
            return
        waiting = self._creating.pop(recipient)
        if slot.mailbox is not None:  # another path opened it meanwhile
            for item in waiting:
                slot.post(item)
            return
        slot.mailbox = waiting
        await self._serve(slot)  # this task becomes the actor's mailbox worker

    async def _serve(self, slot: _Slot) -> None:
        mailbox = slot.mailbox
        assert mailbox is not None
        handled = 0
        while True:
            if not mailbox:
                slot.wakeup = anyio.Event()
                await slot.wakeup.wait()
                slot.wakeup = None
                continue
            handled += 1
            if handled % 64 == 0:  # a long backlog of handlers that never await must not starve the loop
                await anyio.lowlevel.checkpoint()
            message, ctx = mailbox.popleft()
            try:
                with telemetry.tracer().start_as_current_span(f"process {ctx.recipient.type}", attributes={
                        "messaging.operation.name": "process", "messaging.destination.name": str(ctx.recipient)}):
                    async with slot.lock:
                        await slot.actor.on_message(message, ctx)
            except Exception:
                logger.exception("%s failed on a message published to %s", ctx.recipient, ctx.topic)
            finally:
                self._done()

    def _done(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._pending = 0
            self._idle.set()
