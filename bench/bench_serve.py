"""Serving over streamable HTTP: `serve_workbench` vs a bare SDK `MCPServer`, and the gateway's cost.

    .venv/bin/python bench/bench_serve.py [--calls 400] [--clients 1,8,32] [--modes legacy,2026-07-28]

Each server runs in its own subprocess serving one trivial tool (`add`):
  sdk        the SDK's MCPServer (`@mcp.tool()`), `streamable-http`
  workbench  `serve_workbench(StaticWorkbench([add]))` (JSON logs on, as in production)
  gateway    `serve_workbench(CompositeWorkbench({"up": McpWorkbench.http(<sdk>)}))`: client → gateway → sdk
  gateway-stdio  the same with the upstream SDK server as a stdio child (no second HTTP hop)
For each concurrency, N clients (each its own MCP session) share a fixed number of calls;
the table shows calls/s and p50/p99 latency per server, side by side.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2

ROOT = Path(__file__).resolve().parent.parent


async def add(a: int, b: int) -> int:
    """Add two integers."""  # async for both servers: a sync tool would cost FunctionTool a thread hop
    return a + b


# ---- the servers (run as `bench_serve.py --serve KIND PORT [UPSTREAM]`) ------------------------------
def serve(kind: str, port: int, upstream: str | None) -> None:
    if kind in ("sdk", "sdk-stdio"):
        from mcp.server.mcpserver import MCPServer

        mcp = MCPServer("bare")
        mcp.tool()(add)
        if kind == "sdk-stdio":
            mcp.run()
        else:
            mcp.run("streamable-http", host="127.0.0.1", port=port)
        return

    from servers import ServeSettings, serve_workbench
    from workbench import CompositeWorkbench, StaticWorkbench

    async def main() -> None:
        if kind == "workbench":
            workbench = StaticWorkbench([add])
        elif kind == "gateway-stdio":
            from adapters.mcp import McpWorkbench

            upstream_wb = McpWorkbench.stdio(sys.executable, [__file__, "--serve", "sdk-stdio", "0"], name="up",
                                             env={"PYTHONPATH": str(ROOT)})
            workbench = CompositeWorkbench({"up": upstream_wb})
        else:
            from adapters.mcp import McpWorkbench

            assert upstream is not None
            workbench = CompositeWorkbench({"up": McpWorkbench.http(upstream, name="up")})
        async with workbench:
            await serve_workbench(workbench, ServeSettings(transport="http", port=port, shutdown_grace=1))

    anyio.run(main)


# ---- the load ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, upstream: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, __file__, "--serve", kind, str(port)] + ([upstream] if upstream else [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx2.post(url, json={}, headers={"Accept": "application/json, text/event-stream"})
            return proc, url
        except httpx2.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{kind} server did not start")


async def load(url: str, tool: str, clients: int, calls: int, mode: str) -> tuple[float, float, float, int]:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    latencies: list[float] = []
    errors: list[str] = []
    per_client = max(1, calls // clients)

    async def one_client(n: int) -> None:
        # Each client names its session, as distinct 2026-era clients sharing no token would.
        async with httpx2.AsyncClient(headers={"Workbench-Session": f"bench-{n}"}, timeout=60) as http, \
                Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:  # type: ignore[arg-type]
            await client.call_tool(tool, {"a": 1, "b": 2})  # warm up the session
            for i in range(per_client):
                t0 = time.perf_counter()
                result = await client.call_tool(tool, {"a": i, "b": 1})
                latencies.append(time.perf_counter() - t0)
                if result.is_error:  # counted and shown, so one bad run does not hide the table
                    errors.append(result.content[0].text if result.content else "error")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for n in range(clients):
            tg.start_soon(one_client, n)
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    if errors:
        print(f"  ({len(errors)} failed calls on {url}: {errors[0]})", file=sys.stderr)
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, p99 * 1000, len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--modes", default="legacy,2026-07-28")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2] if len(args.serve) > 2 else None)
        return

    sdk, sdk_url = start("sdk")
    wb, wb_url = start("workbench")
    gw, gw_url = start("gateway", sdk_url)
    gws, gws_url = start("gateway-stdio")
    targets = [("sdk", sdk_url, "add"), ("workbench", wb_url, "add"), ("gateway", gw_url, "up__add"),
               ("gateway-stdio", gws_url, "up__add")]
    try:
        print(f"streamable HTTP, one trivial tool, {args.calls} calls per cell, "
              f"best of {args.rounds} interleaved rounds; "
              "calls/s | p50 ms | p99 ms (! = some calls failed, see stderr)\n")
        columns = "  ".join(f"{name:^26}" for name, _, _ in targets)
        header = f"{'era':<11}{'clients':>8}  " + columns + "   p50 over sdk: gw | gw-stdio"
        print(header)
        print("-" * len(header))
        for mode in args.modes.split(","):
            for clients in (int(c) for c in args.clients.split(",")):
                # Interleaved rounds, best of each: other work on a shared machine only ever slows a run down.
                runs: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name, _, _ in targets}
                for _ in range(args.rounds):
                    for name, url, tool in targets:
                        runs[name].append(anyio.run(load, url, tool, clients, args.calls, mode))
                row = {name: max(results) for name, results in runs.items()}
                cells = "  ".join(f"{r[0]:>8.0f} |{r[1]:>6.2f} |{r[2]:>7.2f}" + ("!" if r[3] else " ")
                                  for r in row.values())
                over = [row[g][1] - row["sdk"][1] for g in ("gateway", "gateway-stdio")]
                print(f"{mode:<11}{clients:>8}  {cells}   {over[0]:>+8.2f} | {over[1]:>+8.2f} ms")
    finally:
        for proc in (gws, gw, wb, sdk):
            proc.terminate()
        for proc in (gws, gw, wb, sdk):
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
