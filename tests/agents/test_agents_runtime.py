"""The actor runtime: addressing, request/response, publish/subscribe, one-at-a-time, cancellation."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from workbench.agents.assistant import AssistantAgent
from workbench.agents.replay import ReplayChatClient
from workbench.agents.runtime import (
    Actor,
    AgentId,
    AgentRuntime,
    FunctionActor,
    MessageContext,
    RunnerActor,
    TopicId,
    UnknownAgentError,
)

pytestmark = pytest.mark.anyio


class Counter(Actor):
    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: list[object] = []
        self.active = 0
        self.peak = 0

    async def on_message(self, message: object, ctx: MessageContext) -> object:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await anyio.sleep(0.01)
        self.seen.append(message)
        self.active -= 1
        return (self.key, len(self.seen))


async def test_send_addresses_one_instance_per_key_and_replies() -> None:
    made: list[AgentId] = []

    def factory(agent_id: AgentId) -> Counter:
        made.append(agent_id)
        return Counter(agent_id.key)

    async with AgentRuntime() as rt:
        rt.register("counter", factory)
        assert await rt.send("x", AgentId("counter", "a")) == ("a", 1)
        assert await rt.send("y", AgentId("counter", "a")) == ("a", 2)
        assert await rt.send("z", AgentId("counter", "b")) == ("b", 1)
        assert made == [AgentId("counter", "a"), AgentId("counter", "b")]
        with pytest.raises(UnknownAgentError, match="no agent type 'nope'"):
            await rt.send("x", AgentId("nope"))


async def test_one_message_at_a_time_per_agent() -> None:
    async with AgentRuntime() as rt:
        rt.register("counter", lambda id: Counter(id.key))
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(rt.send, i, AgentId("counter"))
            for i in range(10):
                rt.publish(i, TopicId("t"))  # nobody subscribed: dropped
        rt.subscribe("t", "counter")
        for i in range(10):
            rt.publish(i, TopicId("t"))
        await rt.idle()
        counter = await rt.get(AgentId("counter"))
        assert isinstance(counter, Counter)
        assert counter.peak == 1 and len(counter.seen) == 20


async def test_publish_reaches_every_subscriber_in_order() -> None:
    received: dict[str, list[int]] = {}

    def recorder(agent_id: AgentId) -> Actor:
        box = received.setdefault(agent_id.type, [])
        return FunctionActor(lambda message, ctx: box.append((message, ctx.topic.source)))

    async with AgentRuntime() as rt:
        for n in range(10):
            rt.register(f"sub{n}", recorder)
            rt.subscribe("news", f"sub{n}")
        for i in range(50):
            assert rt.publish(i, TopicId("news", "room1")) == 10
    assert len(received) == 10  # the context manager waited for every delivery
    assert all(v == [(i, "room1") for i in range(50)] for v in received.values())


async def test_a_failing_subscriber_does_not_stop_delivery(caplog: pytest.LogCaptureFixture) -> None:
    got: list[int] = []

    def handler(message: int, ctx: MessageContext) -> None:
        if message == 1:
            raise RuntimeError("boom")
        got.append(message)

    async with AgentRuntime() as rt:
        rt.register("h", lambda id: FunctionActor(handler))
        rt.subscribe("t", "h")
        for i in range(3):
            rt.publish(i, TopicId("t"))
    assert got == [0, 2] and "boom" in caplog.text


async def test_send_errors_reach_the_sender_and_cancellation_reaches_the_handler() -> None:
    cancelled = anyio.Event()

    async def slow(message: object, ctx: MessageContext) -> None:
        if message == "fail":
            raise ValueError("bad message")
        try:
            await anyio.sleep(30)
        finally:
            cancelled.set()

    async with AgentRuntime() as rt:
        rt.register("slow", lambda id: FunctionActor(slow))
        with pytest.raises(ValueError, match="bad message"):
            await rt.send("fail", AgentId("slow"))
        before = asyncio.all_tasks()
        with anyio.move_on_after(0.2):
            await rt.send("wait", AgentId("slow"))
        assert cancelled.is_set()
        assert asyncio.all_tasks() - before == set()
        with anyio.fail_after(1), pytest.raises(ValueError):  # the cancelled handler released the lock
            await rt.send("fail", AgentId("slow"))


async def test_stop_cancels_pending_publishes() -> None:
    finished: list[int] = []

    async def slow(message: int, ctx: MessageContext) -> None:
        await anyio.sleep(30)
        finished.append(message)

    with anyio.fail_after(3):
        async with AgentRuntime() as rt:
            rt.register("slow", lambda id: FunctionActor(slow))
            rt.subscribe("t", "slow")
            rt.publish(1, TopicId("t"))
            await anyio.sleep(0.05)
            rt.stop()
    assert finished == []


async def test_runner_actor_and_spans(spans) -> None:
    async with AgentRuntime() as rt:
        rt.register("assistant", lambda id: RunnerActor(AssistantAgent("assistant", ReplayChatClient(["hi from " + id.key]))))
        result = await rt.send("hello", AgentId("assistant", "k1"))
    assert result.text == "hi from k1"
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert by_name["send assistant"].attributes["messaging.destination.name"] == "assistant/k1"
    agent = by_name["invoke_agent assistant"]
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.parent is not None and agent.parent.span_id == by_name["send assistant"].context.span_id


EXPORT_SCRIPT = """
import anyio, sys
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from workbench.agents import AssistantAgent, ReplayChatClient, configure_tracing
if sys.argv[1] == "on":
    configure_tracing(ConsoleSpanExporter(out=sys.stdout))
print(anyio.run(AssistantAgent("helper", ReplayChatClient(["hi"])).run, "hello").text)
"""


@pytest.mark.parametrize("tracing", ["on", "off"])
def test_spans_are_exported_only_when_configured(tracing: str) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, tracing], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("hi")
    assert ('"gen_ai.agent.name": "helper"' in out.stdout) == (tracing == "on")
