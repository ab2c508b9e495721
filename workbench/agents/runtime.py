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
handler is logged and does not stop delivery. Every message gets a span.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

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

    __slots__ = ("actor", "lock", "mailbox")

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.lock = anyio.Lock(fast_acquire=True)
        self.mailbox: MemoryObjectSendStream[tuple[Any, MessageContext]] | None = None


Factory = Callable[[AgentId], "Actor | Awaitable[Actor]"]


class AgentRuntime:
    """The in-process runtime. Use it as an async context manager; on exit it waits until
    every published message is handled (`stop()` first to drop them instead)."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._slots: dict[AgentId, _Slot] = {}
        self._subscriptions: dict[str, list[str]] = {}
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
        for slot in self._slots.values():
            if slot.mailbox is not None:
                slot.mailbox.close()  # mailbox workers end once drained
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
                raise UnknownAgentError(f"no agent type {agent_id.type!r} registered (known: {sorted(self._factories)})")
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
        with telemetry.span(f"send {recipient.type}", {"messaging.operation.name": "send",
                                                       "messaging.destination.name": str(recipient)}):
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
            slot = self._slots.get(recipient)
            if slot is None or slot.mailbox is None:
                self._tg.start_soon(self._open_and_deliver, recipient, message, topic, sender)
            else:
                slot.mailbox.send_nowait((message, MessageContext(self, recipient, sender, topic)))
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

    async def _open_and_deliver(self, recipient: AgentId, message: Any, topic: TopicId, sender: AgentId | None) -> None:
        ctx = MessageContext(self, recipient, sender, topic)
        try:
            slot = await self._slot(recipient)
        except Exception:
            logger.exception("cannot create %s for a message on topic %s", recipient, topic.type)
            self._done()
            return
        if slot.mailbox is None:
            send, receive = anyio.create_memory_object_stream[tuple[Any, MessageContext]](math.inf)
            slot.mailbox = send
            assert self._tg is not None
            self._tg.start_soon(self._serve, slot, receive)
        slot.mailbox.send_nowait((message, ctx))

    async def _serve(self, slot: _Slot, receive: MemoryObjectReceiveStream[tuple[Any, MessageContext]]) -> None:
        async with receive:
            async for message, ctx in receive:
                try:
                    with telemetry.span(f"process {ctx.recipient.type}", {
                            "messaging.operation.name": "process", "messaging.destination.name": ctx.topic.type if ctx.topic else ""}):
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
