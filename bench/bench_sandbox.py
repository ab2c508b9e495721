"""The sandbox vs AutoGen's `DockerCommandLineCodeExecutor`, side by side on the same image.

    .venv/bin/python bench/bench_sandbox.py [--runs 50] [--concurrent 20] [--skip-autogen]

AutoGen runs in its own venv (bench/.venv-autogen-docker, made on first use with
`autogen-ext[docker]`) as a subprocess, pointed at our image (`mcp-workbench-sandbox:latest`).
Rows: executor/session start (cold, and from our warm pool), `print(1)` in Python and
`echo 1` in bash (p50/p95 over --runs), N sessions started and run at once, closing one.
Ours only: --requests session requests at once against a cap of --cap sandboxes (the global caps,
issue 8): how many were served and refused, how fast a refusal is, and whether host memory (this
process's RSS, the engine's memory for our containers) stays flat while they are refused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from sandbox import DockerSandbox, SandboxSettings, SandboxWorkbench
from sandbox.container import OWNER, docker_client, project_containers
from sandbox.settings import DEFAULT_IMAGE
from workbench.core import CallContext

ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = ROOT / "bench" / ".venv-autogen-docker"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def ours(runs: int, concurrent: int) -> dict[str, Any]:
    report: dict[str, Any] = {}
    starts = []
    for _ in range(3):
        start = time.perf_counter()
        box = await DockerSandbox().start()
        starts.append(time.perf_counter() - start)
        await box.close()
    report["start_cold"] = statistics.median(starts)

    async with SandboxWorkbench(SandboxSettings(pool_size=2)) as wb:
        pooled: list[float] = []
        first: list[float] = []
        for i in range(5):
            with anyio.fail_after(30):
                while wb._pool is not None and wb._pool.ready < 2:  # a fair take: the pool is warm
                    await anyio.sleep(0.05)
            start = time.perf_counter()
            box = await wb.session(f"pooled-{i}")
            pooled.append(time.perf_counter() - start)
            await box.run("python", "print(1)")
            first.append(time.perf_counter() - start)
            await wb.close_session(f"pooled-{i}")
        report["start_pool"], report["first_run"] = statistics.median(pooled), statistics.median(first)

        box = await wb.session("latency")
        for lang, code, key in (("python", "print(1)", "py"), ("bash", "echo 1", "sh")):
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                r = await box.run(lang, code)  # type: ignore[arg-type]
                samples.append(time.perf_counter() - start)
                assert r.stdout == "1\n", r
            report[f"{key}_p50"], report[f"{key}_p95"] = pct(samples, 0.5), pct(samples, 0.95)
        await box.run("python", "x = 41")
        report["state_kept"] = (await box.run("python", "print(x + 1)")).stdout == "42\n"
        await wb.close_session("latency")
        with anyio.fail_after(60):
            while wb._pool is not None and wb._pool.ready < 2:
                await anyio.sleep(0.05)

        errors = 0

        async def one(i: int) -> None:
            nonlocal errors
            r = await wb.call_tool("run_python", {"code": "print(1)"}, CallContext(session_id=f"many-{i}"))
            errors += r.is_error or r.text != "1"

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(concurrent):
                tg.start_soon(one, i)
        report["concurrent_wall"] = time.perf_counter() - start
        report["concurrent_errors"] = errors

        box = await wb.session("closing")
        await box.run("bash", "sleep 100 &")
        start = time.perf_counter()
        await wb.close_session("closing")
        report["stop"] = time.perf_counter() - start
    return report


def rss() -> int:
    """This process's resident memory in bytes (the server's share of host memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise RuntimeError("no VmRSS in /proc/self/status")


DOCKER_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def engine_memory_used() -> tuple[int, int]:
    """(our containers, the memory they use in bytes) as `docker stats` sees it: the host's other share."""
    ids = [c["Id"] for c in project_containers(docker_client(), owner=OWNER)]
    if not ids:
        return 0, 0
    done = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
                          capture_output=True, text=True, timeout=60, check=True)
    total = 0
    for line in filter(None, done.stdout.splitlines()):  # "12.3MiB / 64MiB"
        used = line.split("/")[0].strip().lower()
        number = used.rstrip("abcdefghijklmnopqrstuvwxyz")
        total += int(float(number) * DOCKER_UNITS[used[len(number):]])
    return len(ids), total


async def against_cap(requests: int, cap: int) -> dict[str, Any]:
    """`requests` new sessions at once, each from its own identity, against a cap of `cap` sandboxes
    (64 MiB boxes, a pool of 2 that counts against the cap; no reclaim, so the extra ones are refused).
    Then as many again one at a time: in a burst every refusal also waits for the event loop to
    get through the others, so the one-at-a-time latency is the cost of a refusal itself."""
    settings = SandboxSettings(memory="64m", pool_size=2, max_sandboxes=cap, reclaim_after=3600)
    async with SandboxWorkbench(settings) as wb:
        with anyio.fail_after(60):
            while wb._pool is not None and wb._pool.ready < 2:
                await anyio.sleep(0.05)
        rss_before, engine_before = rss(), await anyio.to_thread.run_sync(engine_memory_used)
        served, errors = 0, []
        burst: list[float] = []  # refusals in the burst, each timed from its start
        alone: list[float] = []  # refusals one at a time

        async def one(session: str, refusals: list[float], since: float | None = None) -> None:
            nonlocal served
            start = time.perf_counter()
            ctx = CallContext(session_id=session, identity=session)
            r = await wb.call_tool("run_python", {"code": "print(1)"}, ctx)
            if not r.is_error:
                served += 1
            elif "no sandbox is free" in r.text:
                refusals.append(time.perf_counter() - (since or start))
            else:
                errors.append(r.text)

        start = time.perf_counter()
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i in range(requests):
                    tg.start_soon(one, f"burst-{i}", burst, start)  # timed from the burst's start
        for i in range(requests):
            await one(f"alone-{i}", alone)
        rss_after, engine_after = rss(), await anyio.to_thread.run_sync(engine_memory_used)
        assert not errors, errors[:3]
        assert served == cap and len(burst) + len(alone) == 2 * requests - cap, (served, len(burst), len(alone))
    return {"cap_served": served, "cap_refused": len(burst), "cap_burst_max": max(burst),
            "cap_refuse": (pct(alone, 0.5), pct(alone, 0.95), max(alone)),
            "cap_rss": (rss_before, rss_after), "cap_engine": (engine_before, engine_after)}


def autogen(runs: int, concurrent: int) -> dict[str, Any]:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "autogen-ext[docker]"], check=True)
    done = subprocess.run([str(python), str(ROOT / "bench" / "_autogen_sandbox_peer.py"), DEFAULT_IMAGE, str(runs),
                           str(concurrent)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the AutoGen peer failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--skip-autogen", action="store_true")
    parser.add_argument("--requests", type=int, default=200, help="session requests at once against the cap")
    parser.add_argument("--cap", type=int, default=8, help="max_sandboxes for that row")
    args = parser.parse_args()

    us = anyio.run(ours, args.runs, args.concurrent)
    us |= anyio.run(against_cap, args.requests, args.cap)
    them = {} if args.skip_autogen else autogen(args.runs, args.concurrent)
    rows: list[tuple[str, str, Callable[[Any], str]]] = [
        ("start, cold", "start_cold", ms),
        ("start, from the warm pool", "start_pool", ms),
        ("new session + its first print(1)", "first_run", ms),
        ("python print(1) p50", "py_p50", ms),
        ("python print(1) p95", "py_p95", ms),
        ("bash echo 1 p50", "sh_p50", ms),
        ("bash echo 1 p95", "sh_p95", ms),
        (f"{args.concurrent} sessions at once (start + run)", "concurrent_wall", ms),
        (f"errors in those {args.concurrent}", "concurrent_errors", str),
        ("python variables kept between runs", "state_kept", lambda v: "yes" if v else "no"),
        ("close one (a process still running)", "stop", ms),
        (f"{args.requests} new sessions at once, cap {args.cap}: served", "cap_served", str),
        ("  refused", "cap_refused", str),
        ("  all refused within (from burst start)", "cap_burst_max", ms),
        (f"  {args.requests} more, one by one: p50/p95/max", "cap_refuse",
         lambda v: " / ".join(f"{x * 1000:.2f}" for x in v) + " ms"),
        ("  server RSS before / after", "cap_rss", lambda v: f"{mib(v[0])} / {mib(v[1])}"),
        ("  engine: our containers, memory before", "cap_engine", lambda v: f"{v[0][0]}, {mib(v[0][1])}"),
        ("  engine: our containers, memory after", "cap_engine", lambda v: f"{v[1][0]}, {mib(v[1][1])}"),
    ]
    print(f"\nsandbox benchmark, image {DEFAULT_IMAGE}, {args.runs} runs per latency row\n")
    print(f"| {'':<42} | {'AutoGen DockerCommandLineCodeExecutor':>38} | {'mcp-workbench DockerSandbox':>28} |")
    print(f"|{'-' * 44}|{'-' * 40}|{'-' * 30}|")
    for label, key, fmt in rows:
        theirs = "no pool (cold start)" if key == "start_pool" and them else (fmt(them[key]) if key in them else "—")
        print(f"| {label:<42} | {theirs:>38} | {fmt(us[key]):>28} |")


if __name__ == "__main__":
    main()
