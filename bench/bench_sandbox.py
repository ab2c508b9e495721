"""The sandbox vs AutoGen's `DockerCommandLineCodeExecutor`, side by side on the same image.

    .venv/bin/python bench/bench_sandbox.py [--runs 50] [--concurrent 20] [--skip-autogen]

AutoGen runs in its own venv (bench/.venv-autogen-docker, made on first use with
`autogen-ext[docker]`) as a subprocess, pointed at our image (`mcp-workbench-sandbox:latest`).
Rows: executor/session start (cold, and from our warm pool), `print(1)` in Python and
`echo 1` in bash (p50/p95 over --runs), N sessions started and run at once, closing one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from sandbox import DockerSandbox, SandboxSettings, SandboxWorkbench
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--skip-autogen", action="store_true")
    args = parser.parse_args()

    us = anyio.run(ours, args.runs, args.concurrent)
    them = {} if args.skip_autogen else autogen(args.runs, args.concurrent)
    rows = [
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
    ]
    print(f"\nsandbox benchmark, image {DEFAULT_IMAGE}, {args.runs} runs per latency row\n")
    print(f"| {'':<42} | {'AutoGen DockerCommandLineCodeExecutor':>38} | {'mcp-workbench DockerSandbox':>28} |")
    print(f"|{'-' * 44}|{'-' * 40}|{'-' * 30}|")
    for label, key, fmt in rows:
        theirs = "no pool (cold start)" if key == "start_pool" and them else (fmt(them[key]) if key in them else "—")
        print(f"| {label:<42} | {theirs:>38} | {fmt(us[key]):>28} |")


if __name__ == "__main__":
    main()
