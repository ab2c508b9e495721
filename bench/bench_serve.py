"""Serving over streamable HTTP: the gateway hop next to its peers, and `workbench serve` next to a bare SDK server.

    .venv/bin/python bench/bench_serve.py [--calls 300] [--clients 1,8] [--eras 2025-11-25,2026-07-28]
                                          [--rounds 2] [--targets direct,gateway,...] [--out table.md]

One upstream for every proxy: the SDK's `MCPServer` serving one trivial async tool (`add`) over streamable
HTTP on loopback, both eras on one endpoint, logging warnings only (so the hops, not the upstream's access
log, stand out). One client for every target: the SDK `Client`, pinned to the era of the row. Targets:
  direct            the client straight at the upstream: the baseline of the "over direct" columns
  gateway           `workbench serve` (the CLI, from this checkout) with `[servers.up] url = <upstream>`, prefix off
  gateway-stdio     the same with the upstream as a stdio child (`command = …`): no second HTTP hop
  fastmcp           FastMCP's `create_proxy(url)`: a fresh backend client per request, in the front's era
  fastmcp-stateful  FastMCP's `StatefulProxyClient(url).new_stateful`: one backend client per front connection
  mcp-proxy         mcp-proxy's streamable HTTP server in front of its own stdio→HTTP bridge, which is how it
                    proxies an HTTP upstream; it runs mcp 1.x, so the 2025 era only
  floor             a proxy that only forwards bytes, on the hop's own stacks (uvicorn/httptools/uvloop in front,
                    aiohttp behind; bench/_floor_proxy.py): what any Python gateway here costs before its work
  tcp               a TCP relay that reads no HTTP (bench/_floor_proxy.py): what the extra loopback hop costs
  workbench         `serve_workbench(StaticWorkbench([add]))`: the same tool served by us, no upstream
                    ("over direct" is then over the bare SDK server serving it)
The peers run in their own venvs (bench/setup_peers.sh, run here on first use; pinned versions).

Method: every server is started once and stays up. A cell (era × clients) opens fresh sessions on every
target and warms each one up; then each target runs its `--calls` timed calls in `--blocks` blocks, the
targets taking turns block by block (who goes first rotating), so a burst of load from elsewhere on a shared
machine hits every target alike. calls/s counts the timed blocks only; p50/p99 are over every timed call of
every round; `--rounds` repeats the cell with new sessions, and the spread column says how much its calls/s
moved between rounds. "own CPU ms/call" is the CPU time of the target's own processes (the scheduler's
counters in /proc, every thread of its process group) per call: for a proxy that is the hop's work, for
direct the upstream's, and it barely moves when other work crowds the machine, unlike wall time. Bounded: a
block stops after `--block-seconds`, a cell after `--cell-timeout`, a call after 30 s; every process group
is stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ERAS = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}  # row label → the SDK Client's `mode`


async def add(a: int, b: int) -> int:
    """Add two integers."""  # async for both servers: a sync tool would cost FunctionTool a thread hop
    return a + b


# ---- the servers we run ourselves (`bench_serve.py --serve KIND [PORT]`) ---------------------------------
def serve(kind: str, port: int) -> None:
    if kind in ("upstream", "upstream-stdio"):
        from mcp.server.mcpserver import MCPServer

        mcp = MCPServer("upstream", log_level="WARNING")
        mcp.tool()(add)
        if kind == "upstream-stdio":
            mcp.run()
        else:
            mcp.run("streamable-http", host="127.0.0.1", port=port)
        return

    from servers import ServeSettings, serve_workbench
    from workbench import StaticWorkbench

    async def main() -> None:
        async with StaticWorkbench([add]) as workbench:
            await serve_workbench(workbench, ServeSettings(transport="http", port=port, shutdown_grace=1))

    anyio.run(main)


# ---- the targets -------------------------------------------------------------------------------------------
Argv = Callable[[int, str, Path], list[str]]  # (port, upstream url, scratch folder) → command line


@dataclass(frozen=True)
class Target:
    name: str
    argv: Argv | None  # None: the upstream itself
    eras: tuple[str, ...] = tuple(ERAS)
    needs: str | None = None  # the peer venv under bench/ it runs in


def _gateway(server_toml: str) -> Argv:
    def argv(port: int, upstream: str, scratch: Path) -> list[str]:
        config = scratch / f"gateway-{port}.toml"
        config.write_text(server_toml.format(url=json.dumps(upstream), python=json.dumps(sys.executable),
                                             bench=json.dumps(__file__)))
        return [sys.executable, "-m", "workbench.cli", "serve", "--config", str(config),
                "--transport", "http", "--port", str(port)]
    return argv


def _fastmcp(kind: str) -> Argv:
    return lambda port, upstream, _: [str(BENCH / ".venv-fastmcp/bin/python"), str(BENCH / "_fastmcp_peer.py"),
                                      kind, str(port), upstream]


def _floor(kind: str) -> Argv:
    return lambda port, upstream, _: [sys.executable, str(BENCH / "_floor_proxy.py"), kind, str(port), upstream]


def _mcp_proxy(port: int, upstream: str, _: Path) -> list[str]:
    exe = str(BENCH / ".venv-mcp-proxy/bin/mcp-proxy")
    return [exe, "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING", "--pass-environment",
            "--", exe, "--transport", "streamablehttp", "--log-level", "WARNING", upstream]


TARGETS = {t.name: t for t in (
    Target("direct", None),
    Target("gateway", _gateway('[servers.up]\nurl = {url}\nprefix = ""\n')),
    Target("gateway-stdio", _gateway('[servers.up]\ncommand = {python}\nargs = [{bench}, "--serve", '
                                     '"upstream-stdio"]\nprefix = ""\n')),
    Target("fastmcp", _fastmcp("default"), needs=".venv-fastmcp"),
    Target("fastmcp-stateful", _fastmcp("stateful"), needs=".venv-fastmcp"),
    Target("mcp-proxy", _mcp_proxy, eras=("2025-11-25",), needs=".venv-mcp-proxy"),
    Target("floor", _floor("http")),
    Target("tcp", _floor("tcp")),
    Target("workbench", lambda port, _url, _scratch: [sys.executable, __file__, "--serve", "workbench", str(port)]),
)}


# ---- processes ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(name: str, argv: list[str], scratch: Path, port: int) -> Iterator[tuple[str, int]]:
    """Start one server in its own process group, wait until its endpoint answers, stop the whole group after
    (mcp-proxy and the stdio gateway have children of their own)."""
    log_path = scratch / f"{name}.log"
    # Studio's runs file in the run's scratch folder: every run starts from the same empty file, and the
    # user's own ~/.local/state runs file is neither grown by benches nor read by them.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_CHECK_FOR_UPDATES": "off",
           "FASTMCP_SHOW_SERVER_BANNER": "false", "WORKBENCH_STATE_DIR": str(scratch)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-1500:]
                why = f"exited with {proc.returncode}" if proc.returncode is not None else "did not answer in 60 s"
                raise RuntimeError(f"{name} {why}; its log ({log_path}) ends:\n{tail}")
            try:
                httpx2.post(url, json={}, headers={"Accept": "application/json, text/event-stream"}, timeout=2)
                break
            except httpx2.TransportError:
                time.sleep(0.2)
        yield url, proc.pid  # the pid is also the process group's id
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group; after 10 s, or once the leader is gone, SIGKILL to whatever of it is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has ended
        pass
    proc.wait(timeout=10)


def peers_ready(targets: list[Target]) -> dict[str, str]:
    """Make the peer venvs on first use; returns why a venv cannot be used, by venv."""
    needed = {t.needs for t in targets if t.needs}
    missing = {v for v in needed if not (BENCH / v / ".pinned").exists()}
    if not missing:
        return {}
    print(f"setting up {', '.join(sorted(missing))} with bench/setup_peers.sh (pip) …", file=sys.stderr)
    try:
        subprocess.run(["bash", str(BENCH / "setup_peers.sh")], check=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"bench/setup_peers.sh failed ({e}); those peers are skipped", file=sys.stderr)
    return {v: "not installed (bench/setup_peers.sh failed)" for v in needed
            if not (BENCH / v / ".pinned").exists()}


# ---- the load ----------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One target's share of one cell: every timed call's latency, and the time its blocks took."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0
    """CPU seconds the target's own processes spent in its blocks."""

    @property
    def calls_per_s(self) -> float:
        return len(self.latencies) / self.seconds


def cpu_seconds(group: int) -> float:
    """CPU time used so far by every thread of every process in a process group, from the scheduler's
    nanosecond counters: unlike wall time, it barely moves when other work crowds the machine."""
    total = 0
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            for task in (entry / "task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a process or thread that ended while we looked
            continue
    return total / 1e9


async def open_sessions(stack: AsyncExitStack, url: str, clients: int, mode: str) -> list[Client]:
    sessions = []
    for n in range(clients):
        # Each client names its session, as distinct 2026-era clients sharing no token would.
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"Workbench-Session": f"bench-{n}"},
                                                                  timeout=30))
        sessions.append(await stack.enter_async_context(
            Client(streamable_http_client(url, http_client=http), mode=mode, cache=None)))
    return sessions


async def calls_on(sessions: list[Client], calls: int, run: Run, *, seconds: float = 60, strict: bool = False) -> None:
    """`calls` calls shared by the sessions, all at once, stopping early after `seconds` (a slow target does
    fewer calls, not a longer bench); a strict run (the warm-up) stops at an error result."""
    deadline = time.perf_counter() + seconds

    async def one_client(client: Client) -> None:
        for i in range(max(1, calls // len(sessions))):
            if i and time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            with anyio.fail_after(30):
                result = await client.call_tool("add", {"a": i, "b": 1})
            run.latencies.append(time.perf_counter() - t0)
            text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
            if result.is_error or text != str(i + 1):  # a fast wrong answer must not look like a win
                why = text[:200] if result.is_error else f"add({i}, 1) answered {text[:40]!r}"
                if strict:
                    raise RuntimeError(why)
                run.errors.append(why)  # counted and shown, so one bad call does not hide the table

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for client in sessions:
            tg.start_soon(one_client, client)
    run.seconds += time.perf_counter() - started


async def measure_cell(urls: dict[str, tuple[str, int]], clients: int, calls: int, warmup: int, blocks: int,
                       block_seconds: float, mode: str) -> dict[str, Run | str]:
    """Open and warm `clients` sessions on every target, then run the timed calls in `blocks` blocks per
    target, taking the targets in turn (rotating who goes first): each target's calls are spread over the
    whole cell, so a burst of load from elsewhere on the shared machine hits every target alike."""
    outcome: dict[str, Run | str] = {}
    live: dict[str, list[Client]] = {}
    finished = anyio.Event()

    async def host(name: str, url: str, ready: anyio.Event) -> None:
        # Each target's sessions live in a task of their own: when a target breaks a session, the SDK
        # cancels the task that opened it, and that must not be the one timing the other targets.
        try:
            async with AsyncExitStack() as stack:
                live[name] = await open_sessions(stack, url, clients, mode)
                await calls_on(live[name], warmup * clients, Run(), strict=True)
                outcome[name] = Run()
                ready.set()
                await finished.wait()
        except Exception as e:  # one broken target must not hide the others' numbers
            outcome[name] = f"failed: {first_error(e)}"
        finally:
            live.pop(name, None)
            ready.set()

    async with anyio.create_task_group() as hosts:
        for name, (url, _) in urls.items():
            ready = anyio.Event()
            hosts.start_soon(host, name, url, ready)
            await ready.wait()
        names = [name for name in urls if name in live]
        for block in range(blocks):
            for name in names[block % len(names):] + names[:block % len(names)]:
                run = outcome[name]
                if isinstance(run, Run) and name in live:
                    try:
                        cpu = cpu_seconds(urls[name][1])
                        await calls_on(live[name], calls // blocks, run, seconds=block_seconds)
                        run.cpu += cpu_seconds(urls[name][1]) - cpu
                    except Exception as e:
                        outcome[name] = f"failed: {first_error(e)}"
        finished.set()
    return outcome


async def bounded_cell(urls: dict[str, tuple[str, int]], clients: int, calls: int, warmup: int, blocks: int,
                       block_seconds: float, mode: str, timeout: float) -> dict[str, Run | str]:
    with anyio.fail_after(timeout):
        return await measure_cell(urls, clients, calls, warmup, blocks, block_seconds, mode)


def first_error(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:160]


# ---- the table ---------------------------------------------------------------------------------------------
@dataclass
class Cell:
    runs: list[Run] = field(default_factory=list)
    failure: str | None = None

    @property
    def calls_per_s(self) -> float:
        return statistics.median(r.calls_per_s for r in self.runs)

    def percentile(self, q: float) -> float:
        pooled = sorted(x for r in self.runs for x in r.latencies)
        return pooled[min(len(pooled) - 1, int(len(pooled) * q))] * 1000

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * sum(r.cpu for r in self.runs) / sum(len(r.latencies) for r in self.runs)

    @property
    def spread(self) -> float:
        """Half the range of the rounds' calls/s, relative to their median."""
        rates = [r.calls_per_s for r in self.runs]
        return 50 * (max(rates) - min(rates)) / statistics.median(rates) if len(rates) > 1 else 0.0


def table(cells: dict[tuple[str, int, str], Cell], eras: list[str], concurrency: list[int],
          targets: list[Target], skipped: dict[str, str]) -> str:
    rows = ["| era | clients | target | calls/s | p50 ms | p99 ms | p50 over direct | calls/s × direct "
            "| own CPU ms/call | spread | calls |", "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for era in eras:
        for clients in concurrency:
            direct = cells.get((era, clients, "direct"))
            for t in targets:
                head = f"| {era} | {clients} | {t.name} |"
                cell = cells.get((era, clients, t.name))
                why = skipped.get(t.needs or "") or (None if era in t.eras else "2025 era only (mcp 1.x)")
                if why or cell is None or cell.failure or not cell.runs:
                    rows.append(f"{head} {why or (cell.failure if cell else 'not run')} | | | | | | | | |")
                    continue
                p50 = cell.percentile(0.5)
                over = ratio = "—"
                if t.name != "direct" and direct is not None and direct.runs:
                    over = f"{p50 - direct.percentile(0.5):+.2f} ms"
                    ratio = f"{cell.calls_per_s / direct.calls_per_s:.2f}×"
                failed = sum(len(r.errors) for r in cell.runs)
                note = f" ({failed} calls failed: {cell.runs[-1].errors[0][:60] if cell.runs[-1].errors else ''})" \
                    if failed else ""
                rows.append(f"{head} {cell.calls_per_s:,.0f}{note} | {p50:.2f} | {cell.percentile(0.99):.2f} "
                            f"| {over} | {ratio} | {cell.cpu_ms_per_call:.2f} "
                            f"| {f'±{cell.spread:.0f}%' if len(cell.runs) > 1 else '—'} "
                            f"| {sum(len(r.latencies) for r in cell.runs)} |")
    return "\n".join(rows)


def noise(cells: dict[tuple[str, int, str], Cell]) -> str:
    spreads = sorted((c.spread, key) for key, c in cells.items() if len(c.runs) > 1)
    if not spreads:
        return "noise: one round only, not measured"
    worst, (era, clients, name) = spreads[-1]
    return (f"noise: between rounds a cell's calls/s moved by ±{statistics.median(s for s, _ in spreads):.0f}% "
            f"(median over cells; worst ±{worst:.0f}%, {name} at {clients} clients, {era})")


# ---- main --------------------------------------------------------------------------------------------------
def describe(args: argparse.Namespace) -> str:
    pins = [(BENCH / v / ".pinned").read_text().strip() for v in (".venv-fastmcp", ".venv-mcp-proxy")
            if (BENCH / v / ".pinned").exists()]
    commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True,
                            text=True, timeout=10).stdout.strip()[:80]
    commit = f"`{commit}`"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.split()
    if dirty:  # the gateway runs from the working tree, so its uncommitted edits are what was measured
        commit += f" + uncommitted edits to {', '.join(dirty[1::2][:6])}"
    from importlib.metadata import version
    return (f"`bench/bench_serve.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, checkout {commit}; "
            f"mcp {version('mcp')}, {', '.join(pins) or 'no peers'}; {os.cpu_count()} cores, load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the start.\n"
            f"One trivial tool over streamable HTTP on loopback. Per cell and round: fresh sessions, "
            f"{args.warmup} warm-up calls each, then {args.calls} timed calls per target shared by the clients, in "
            f"{args.blocks} blocks taken by the targets in turn (a block stops after {args.block_seconds:g} s: slow "
            f"targets make fewer calls). {args.rounds} rounds; calls/s is the median round, p50/p99 over all "
            f"rounds' calls; own CPU is the target's processes' (for direct: the upstream's) CPU time per call; "
            f"spread is half the range of the rounds' calls/s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=300, help="timed calls per cell, shared by the clients")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per client session first")
    parser.add_argument("--clients", default="1,8", help="concurrent clients, comma-separated")
    parser.add_argument("--eras", default=",".join(ERAS), help="protocol eras: 2025-11-25 and/or 2026-07-28")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"from {', '.join(TARGETS)}")
    parser.add_argument("--blocks", type=int, default=6, help="blocks a cell's calls are cut into, per target")
    parser.add_argument("--block-seconds", type=float, default=1.5,
                        help="a block stops early after this long: slow targets make fewer calls")
    parser.add_argument("--cell-timeout", type=float, default=300,
                        help="seconds one cell (all targets at one era and concurrency) may take")
    parser.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]) if len(args.serve) > 1 else 0)
        return

    # `timeout`, a CI cancel or kill: end like Ctrl-C, so the servers' process groups are stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    eras = args.eras.split(",")
    concurrency = [int(c) for c in args.clients.split(",")]
    unknown = [n for n in args.targets.split(",") if n not in TARGETS] + [e for e in eras if e not in ERAS]
    if unknown:
        parser.error(f"unknown target or era {', '.join(unknown)}: targets are {', '.join(TARGETS)}; "
                     f"eras are {', '.join(ERAS)}")
    targets = [TARGETS[n] for n in ["direct"] + [n for n in args.targets.split(",") if n != "direct"]]
    skipped = peers_ready(targets)
    heading = describe(args)
    cells: dict[tuple[str, int, str], Cell] = {}
    urls: dict[str, tuple[str, int]] = {}
    # The servers (in the stack) stop before their scratch folder (logs, configs) goes.
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp, ExitStack() as stack:
        scratch = Path(tmp)
        port = free_port()
        upstream = stack.enter_context(running("upstream", [sys.executable, __file__, "--serve", "upstream",
                                                            str(port)], scratch, port))
        for t in targets:
            if t.argv is None:
                urls[t.name] = upstream
            elif not skipped.get(t.needs or ""):
                port = free_port()
                urls[t.name] = stack.enter_context(running(t.name, t.argv(port, upstream[0], scratch), scratch,
                                                            port))
        for r in range(args.rounds):
            for era in eras:
                for clients in concurrency:
                    eligible = [t.name for t in targets if t.name in urls and era in t.eras
                                and not cells.setdefault((era, clients, t.name), Cell()).failure]
                    order = eligible[r % len(eligible):] + eligible[:r % len(eligible)]
                    try:
                        outcome = anyio.run(bounded_cell, {n: urls[n] for n in order}, clients, args.calls,
                                            args.warmup, args.blocks, args.block_seconds, ERAS[era],
                                            args.cell_timeout)
                    except Exception as e:  # the cell's time ran out: every target in it failed this round
                        outcome = dict.fromkeys(order, f"failed: {first_error(e)}")
                    for name, run in outcome.items():
                        cell = cells[(era, clients, name)]
                        if isinstance(run, Run):
                            cell.runs.append(run)
                        else:
                            cell.failure = f"{run} (round {r + 1})"
                    print(f"round {r + 1}/{args.rounds} {era} {clients} clients: " + ", ".join(
                        f"{n} {run.calls_per_s:.0f}/s" if isinstance(run, Run) else f"{n} {run}"
                        for n, run in outcome.items()), file=sys.stderr)
    result = f"{heading}\n\n{table(cells, eras, concurrency, targets, skipped)}\n\n{noise(cells)}; " \
             f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end.\n"
    print(result)
    if args.out:
        args.out.write_text(result)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; every server it started is stopped") from None
