"""Agent runtime and AssistantAgent overhead, side by side with AutoGen (autogen-core,
autogen-agentchat, autogen-ext[openai]), against the same scripted model server.

    python bench/bench_agents.py [--sends 5000] [--publishes 500] [--turns 20] [--rounds 8]

AutoGen runs in its own venv (bench/.venv-autogen-agents, made on first use) as a subprocess;
the model server is a third process, so neither side shares its event loop or the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI
from rich.console import Console
from rich.table import Table

from workbench import StaticWorkbench
from workbench.agents import AgentId, AgentRuntime, AssistantAgent, FunctionActor, OpenAIChatClient, TopicId

ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = ROOT / "bench" / ".venv-autogen-agents"
PEER_PACKAGES = ["autogen-core", "autogen-agentchat", "autogen-ext[openai]"]


async def send_reply(n: int) -> float:
    async with AgentRuntime() as rt:
        rt.register("echo", lambda agent_id: FunctionActor(lambda message, ctx: message))
        target = AgentId("echo")
        for i in range(200):
            await rt.send(i, target)
        started = time.perf_counter()
        for i in range(n):
            await rt.send(i, target)
        return n / (time.perf_counter() - started)


async def publish(n: int, subscribers: int = 10) -> float:
    received = 0

    def sink(message: Any, ctx: Any) -> None:
        nonlocal received
        received += 1

    async with AgentRuntime() as rt:
        for s in range(subscribers):
            rt.register(f"sink{s}", lambda agent_id: FunctionActor(sink))
            rt.subscribe("news", f"sink{s}")
        topic = TopicId("news")
        started = time.perf_counter()
        for i in range(n):
            rt.publish(i, topic)
        await rt.idle()
        elapsed = time.perf_counter() - started
    assert received == n * subscribers, received
    return n * subscribers / elapsed


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def agent_turns(base_url: str, turns: int) -> dict[str, float]:
    """Each turn is paired with the same two raw HTTP calls, so machine noise hits both."""
    client = OpenAIChatClient("tool-then-answer", base_url=base_url)
    raw = AsyncOpenAI(base_url=base_url, api_key="not-needed")
    tools = StaticWorkbench([add])
    times, overheads, floors = [], [], []
    for i in range(turns + 5):
        floor = await raw_turn(raw)
        agent = AssistantAgent("assistant", client, workbench=tools)
        started = time.perf_counter()
        result = await agent.run("add 1 and 1")
        elapsed = time.perf_counter() - started
        assert result.text.startswith("done: 2"), result.text
        if i >= 5:
            times.append(elapsed)
            overheads.append(elapsed - floor)
            floors.append(floor)
    await client.close()
    await raw.close()
    return {"turn_ms": statistics.median(times) * 1000, "overhead_ms": statistics.median(overheads) * 1000,
            "raw_ms": statistics.median(floors) * 1000}


TOOLS: list[Any] = [{"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}]


async def raw_turn(client: AsyncOpenAI) -> float:
    """The same two HTTP calls with the bare openai client (identical to the peer's floor)."""
    started = time.perf_counter()
    messages: list[Any] = [
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


class Peer:
    """The AutoGen process: one command a line in, one JSON line out."""

    def __init__(self, python: Path, base_url: str) -> None:
        self.process = subprocess.Popen([str(python), str(ROOT / "bench" / "_autogen_agents_peer.py"), base_url],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, command: str, n: int) -> dict[str, float]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{command} {n}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit(f"the AutoGen side failed (exit code {self.process.wait()}); its error is above")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Best of the rounds: the least disturbed by whatever else the machine was doing."""
    keys = {k for r in rounds for k in r}
    return {k: (max if k.endswith("_per_s") else min)(r[k] for r in rounds if k in r) for k in keys}


def ensure_peer() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=5000)
    parser.add_argument("--publishes", type=int, default=500)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    peer_python = ensure_peer()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "agents" / "model_server.py")],
                              stdout=subprocess.PIPE, text=True)
    mine: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    peer: Peer | None = None
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        peer = Peer(peer_python, base_url)
        with asyncio.Runner() as runner:
            # Alternate in small steps, so a busy moment on the machine does not favour one side.
            for _ in range(args.rounds):
                mine.append(runner.run(agent_turns(base_url, args.turns)))
                theirs.append(peer.ask("turns", args.turns))
                mine.append({"send_per_s": runner.run(send_reply(args.sends))})
                theirs.append({"send_per_s": peer.ask("send", args.sends)["send"]})
                mine.append({"publish_per_s": runner.run(publish(args.publishes))})
                theirs.append({"publish_per_s": peer.ask("publish", args.publishes)["publish"]})
    finally:
        if peer is not None:
            peer.close()
        server.terminate()
        server.wait(timeout=10)
    us, them = best(mine), best(theirs)

    table = Table(title="mcp-workbench agents vs AutoGen 0.7 (same machine, same scripted model server)")
    for column in ("measure", "mcp-workbench", "AutoGen", "ratio"):
        table.add_column(column, justify="right" if column != "measure" else "left")

    def row(label: str, mine: float, other: float, unit: str, higher_is_better: bool | None) -> None:
        digits = 1 if unit == "ms" else 0
        ratio = (mine / other if higher_is_better else other / mine) if min(mine, other) > 0 else float("nan")
        verdict = f"{ratio:.1f}x {'better' if ratio >= 1 else 'worse'}" if ratio == ratio else "n/a"
        if higher_is_better is None:
            verdict = "(shared floor)"
        table.add_row(label, f"{mine:,.{digits}f} {unit}", f"{other:,.{digits}f} {unit}", verdict)

    row("send/reply, one hop", us["send_per_s"], them["send_per_s"], "msg/s", True)
    row("publish to 10 subscribers", us["publish_per_s"], them["publish_per_s"], "deliveries/s", True)
    row("assistant turn, 1 tool call (p50)", us["turn_ms"], them["turn_ms"], "ms", False)
    row("  the same 2 HTTP calls, bare openai client", us["raw_ms"], them["raw_ms"], "ms", None)
    row("  overhead over those 2 calls (p50)", us["overhead_ms"], them["overhead_ms"], "ms", False)
    table.caption = (f"best of {args.rounds} alternating rounds of {args.sends} sends, "
                     f"{args.publishes}x10 deliveries and {args.turns} turns; "
                     "overhead = each turn minus the same 2 calls made just before it with the bare openai client")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
