"""The AutoGen side of bench_agents.py; runs in bench/.venv-autogen-agents.

Usage: python bench/_autogen_agents_peer.py BASE_URL, then one command a line on stdin —
`send N`, `publish N`, `turns N` — each answered with one JSON line. Staying up between
commands lets the caller alternate with its own measurements at a fine grain.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass

from autogen_agentchat.agents import AssistantAgent
from autogen_core import (
    AgentId,
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    TopicId,
    TypeSubscription,
    message_handler,
)
from autogen_ext.models.openai import OpenAIChatCompletionClient
from openai import AsyncOpenAI


@dataclass
class Msg:
    n: int


class Echo(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("echo")

    @message_handler
    async def on_msg(self, message: Msg, ctx: MessageContext) -> Msg:
        return message


class Sink(RoutedAgent):
    received = 0  # across runs: publish() checks the difference

    def __init__(self) -> None:
        super().__init__("sink")

    @message_handler
    async def on_msg(self, message: Msg, ctx: MessageContext) -> None:
        Sink.received += 1


async def send_reply(n: int) -> float:
    rt = SingleThreadedAgentRuntime()
    await Echo.register(rt, "echo", Echo)
    rt.start()
    target = AgentId("echo", "default")
    for i in range(200):
        await rt.send_message(Msg(i), target)
    started = time.perf_counter()
    for i in range(n):
        await rt.send_message(Msg(i), target)
    elapsed = time.perf_counter() - started
    await rt.stop()
    return n / elapsed


async def publish(n: int, subscribers: int = 10) -> float:
    rt = SingleThreadedAgentRuntime()
    for s in range(subscribers):
        await Sink.register(rt, f"sink{s}", Sink)
        await rt.add_subscription(TypeSubscription("news", f"sink{s}"))
    rt.start()
    topic = TopicId("news", "default")
    before = Sink.received
    started = time.perf_counter()
    for i in range(n):
        await rt.publish_message(Msg(i), topic)
    await rt.stop_when_idle()
    elapsed = time.perf_counter() - started
    assert Sink.received - before == n * subscribers, Sink.received - before
    return n * subscribers / elapsed


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def agent_turns(base_url: str, turns: int) -> dict[str, float]:
    """Each turn is paired with the same two raw HTTP calls, so machine noise hits both."""
    model_info = {"vision": False, "function_calling": True, "json_output": False, "family": "unknown",
                  "structured_output": False}
    client = OpenAIChatCompletionClient(model="tool-then-answer", base_url=base_url, api_key="not-needed",
                                        model_info=model_info)
    raw = AsyncOpenAI(base_url=base_url, api_key="not-needed")
    times, overheads, floors = [], [], []
    for i in range(turns + 5):
        floor = await raw_turn(raw)
        agent = AssistantAgent("assistant", model_client=client, tools=[add], reflect_on_tool_use=True)
        started = time.perf_counter()
        result = await agent.run(task="add 1 and 1")
        elapsed = time.perf_counter() - started
        assert result.messages[-1].content.startswith("done: 2"), result.messages[-1].content
        if i >= 5:
            times.append(elapsed)
            overheads.append(elapsed - floor)
            floors.append(floor)
    await raw.close()
    return {"turn_ms": statistics.median(times) * 1000, "overhead_ms": statistics.median(overheads) * 1000,
            "raw_ms": statistics.median(floors) * 1000}


TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}]


async def raw_turn(client: AsyncOpenAI) -> float:
    """The same two HTTP calls with the bare openai client: the floor both sides share."""
    started = time.perf_counter()
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "add 1 and 1"},
    ]
    first = await client.chat.completions.create(model="tool-then-answer", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "2"},
    ]
    await client.chat.completions.create(model="tool-then-answer", messages=messages, tools=TOOLS)
    return time.perf_counter() - started


async def main() -> None:
    base_url = sys.argv[1]
    commands = {
        "send": lambda n: send_reply(n),
        "publish": lambda n: publish(n),
        "turns": lambda n: agent_turns(base_url, n),
    }
    while line := await asyncio.to_thread(sys.stdin.readline):
        command, n = line.split()
        result = await commands[command](int(n))
        print(json.dumps(result if isinstance(result, dict) else {command: result}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
