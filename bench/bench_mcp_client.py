"""Tool-call latency through the MCP client stack, side by side (not a test).

    .venv/bin/python bench/bench_mcp_client.py [--calls 400]

One stdio server and one streamable HTTP server (examples/servers/demo_server.py, tool
`echo`); for each: the raw SDK `mcp.Client.call_tool`, `McpWorkbench.call_tool`,
`CompositeWorkbench.call_tool` over it, and AutoGen's `McpWorkbench`. AutoGen needs
`mcp<2`, so it runs in its own venv, bench/.venv-autogen-mcp, created on first use:

    python3 -m venv bench/.venv-autogen-mcp
    bench/.venv-autogen-mcp/bin/pip install "autogen-ext[mcp]" "mcp<2"
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
from anyio.streams.text import TextReceiveStream
from mcp import Client, StdioServerParameters

from adapters.mcp import McpWorkbench
from workbench.composite import CompositeWorkbench

ROOT = Path(__file__).resolve().parent.parent
SERVER = str(ROOT / "examples" / "servers" / "demo_server.py")
AUTOGEN_VENV = ROOT / "bench" / ".venv-autogen-mcp"
AUTOGEN_PY = AUTOGEN_VENV / "bin" / "python"
WARMUP = 30
ARGS = {"message": "hi"}

BLOCK = 10  # calls per client before moving to the next: interleaving spreads machine noise evenly

Caller = Callable[[int], Awaitable[list[float]]]
"""Times `n` calls and returns their latencies in ms."""

Row = tuple[str, str, list[float] | str]


def in_process(call: Callable[[], Awaitable[object]]) -> Caller:
    async def block(n: int) -> list[float]:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    return block


def ensure_autogen() -> str | None:
    """Create the AutoGen venv if needed; returns why it cannot be used, or None."""
    if AUTOGEN_PY.exists():
        return None
    print(f"creating {AUTOGEN_VENV} for AutoGen (it needs mcp<2)…", file=sys.stderr)
    try:
        subprocess.run(["python3", "-m", "venv", str(AUTOGEN_VENV)], check=True)
        pip = str(AUTOGEN_VENV / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "autogen-ext[mcp]", "mcp<2"], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        return f"not installed: {e}"
    return None


@asynccontextmanager
async def autogen_client(spec: dict[str, object]) -> AsyncIterator[Caller | str]:
    """AutoGen's McpWorkbench in its own venv, driven block by block over a pipe."""
    problem = ensure_autogen()
    if problem:
        yield problem
        return
    script = str(ROOT / "bench" / "_autogen_mcp_client.py")
    async with await anyio.open_process([str(AUTOGEN_PY), script, json.dumps(spec)], stderr=subprocess.DEVNULL) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        lines = TextReceiveStream(proc.stdout)
        buffer = ""

        async def line() -> str:
            nonlocal buffer
            while "\n" not in buffer:
                buffer += await lines.receive()
            head, buffer = buffer.split("\n", 1)
            return head

        try:
            with anyio.fail_after(60):
                ready = await line()
        except (TimeoutError, anyio.EndOfStream):
            yield "failed to start (run bench/.venv-autogen-mcp/bin/python bench/_autogen_mcp_client.py by hand)"
            return

        async def block(n: int) -> list[float]:
            await proc.stdin.send(f"{n}\n".encode())  # type: ignore[union-attr]
            return json.loads(await line())

        yield block if ready == "ready" else f"failed: {ready}"
        await proc.stdin.aclose()


async def measure(callers: dict[str, Caller | str], calls: int) -> dict[str, list[float] | str]:
    """Warm every client up, then time them in interleaved blocks, rotating the order."""
    live = {name: c for name, c in callers.items() if not isinstance(c, str)}
    for caller in live.values():
        await caller(WARMUP)
    samples: dict[str, list[float]] = {name: [] for name in live}
    names = list(live)
    for i in range(0, calls, BLOCK):
        order = names[i // BLOCK % len(names):] + names[: i // BLOCK % len(names)]
        for name in order:
            samples[name].extend(await live[name](min(BLOCK, calls - i)))
    return {name: samples[name] if name in live else callers[name] for name in callers}  # type: ignore[misc]


async def one_server(
    label: str, target: object, make_wb: Callable[[str], McpWorkbench], autogen_spec: dict[str, object], calls: int
) -> list[Row]:
    rows: list[Row] = []
    async with AsyncExitStack() as stack:
        callers: dict[str, Caller | str] = {}
        for mode in ("auto", "legacy"):
            era = "2026-07-28" if mode == "auto" else "2025-11-25"
            client = await stack.enter_async_context(Client(target, mode=mode))  # type: ignore[arg-type]
            await client.list_tools()  # as a workbench does on connect (it enables output validation)
            wb = await stack.enter_async_context(make_wb(mode))
            comp = await stack.enter_async_context(CompositeWorkbench({"demo": make_wb(mode)}))
            await comp.list_tools()
            callers[f"{era}|raw mcp.Client.call_tool"] = in_process(lambda c=client: c.call_tool("echo", ARGS))
            callers[f"{era}|McpWorkbench.call_tool"] = in_process(lambda w=wb: w.call_tool("echo", ARGS))
            callers[f"{era}|CompositeWorkbench.call_tool"] = in_process(lambda c=comp: c.call_tool("demo__echo", ARGS))
        autogen_caller = await stack.enter_async_context(autogen_client(autogen_spec))
        callers["mcp 1.30|AutoGen McpWorkbench.call_tool"] = autogen_caller
        for key, samples in (await measure(callers, calls)).items():
            era, client_name = key.split("|")
            rows.append((f"{label} {era}", client_name, samples))
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--http", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the demo server did not start")


async def run(calls: int) -> list[Row]:
    rows = await one_server(
        "stdio",
        StdioServerParameters(command=sys.executable, args=[SERVER]),
        lambda mode: McpWorkbench.stdio(sys.executable, [SERVER], mode=mode),
        {"transport": "stdio", "command": sys.executable, "args": [SERVER]},
        calls,
    )
    port = free_port()
    proc = start_http_server(port)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        rows += await one_server(
            "http", url, lambda mode: McpWorkbench.http(url, mode=mode), {"transport": "http", "url": url}, calls
        )
    finally:
        proc.kill()
        proc.wait()
    return rows


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_table(rows: list[Row], calls: int) -> None:
    print(f"\nMCP tool-call latency, `echo`, {calls} sequential calls after {WARMUP} warm-up (ms)\n")
    print(f"| {'server':<18} | {'client':<31} | {'p50':>6} | {'p95':>6} | {'vs raw p50':>10} |")
    print(f"|{'-' * 20}|{'-' * 33}|{'-' * 8}|{'-' * 8}|{'-' * 12}|")
    raw_p50: dict[str, float] = {}
    for server, client, samples in rows:
        if isinstance(samples, str):
            print(f"| {server:<18} | {client:<31} | {samples}")
            continue
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        if client.startswith("raw"):
            raw_p50[server] = p50
        # AutoGen (its own mcp 1.30) is set against the raw 2.x client on the same server, 2025 era.
        base = raw_p50.get(server) or raw_p50.get(f"{server.split()[0]} 2025-11-25")
        ratio = f"{(p50 / base - 1) * 100:+.0f} %" if base else ""
        print(f"| {server:<18} | {client:<31} | {p50:6.2f} | {p95:6.2f} | {ratio:>10} |")
    print("\nClients run side by side, interleaved in blocks of", BLOCK, "calls; AutoGen (mcp 1.30, 2025 handshake)")
    print("is set against the raw 2.x client on the same server in the 2025-11-25 era.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    print_table(anyio.run(run, args.calls), args.calls)


if __name__ == "__main__":
    main()
