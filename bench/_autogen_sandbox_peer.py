"""The AutoGen side of bench_sandbox.py; runs in bench/.venv-autogen-docker and prints JSON.

Usage: python bench/_autogen_sandbox_peer.py IMAGE RUNS CONCURRENT
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from autogen_core import CancellationToken
from autogen_core.code_executor import CodeBlock
from autogen_ext.code_executors.docker import DockerCommandLineCodeExecutor

WORK = tempfile.mkdtemp(prefix="autogen-bench-")


def executor(image: str) -> DockerCommandLineCodeExecutor:
    """AutoGen bind-mounts its work dir; our image runs as uid 1000, so the dir must be open to it."""
    work_dir = tempfile.mkdtemp(dir=WORK)
    os.chmod(work_dir, 0o777)
    return DockerCommandLineCodeExecutor(image=image, timeout=30, work_dir=work_dir)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_runs(ex: DockerCommandLineCodeExecutor, lang: str, code: str, runs: int) -> list[float]:
    token, out = CancellationToken(), []
    for _ in range(runs):
        start = time.perf_counter()
        result = await ex.execute_code_blocks([CodeBlock(code=code, language=lang)], token)
        out.append(time.perf_counter() - start)
        assert result.exit_code == 0 and result.output.strip() == "1", result
    return out


async def main(image: str, runs: int, concurrent: int) -> dict[str, Any]:
    report: dict[str, Any] = {}
    starts, spare = [], []
    for _ in range(3):
        ex = executor(image)
        start = time.perf_counter()
        await ex.start()
        starts.append(time.perf_counter() - start)
        spare.append(ex)
    ex = spare.pop()
    report["start_cold"] = statistics.median(starts)
    start = time.perf_counter()
    await ex.execute_code_blocks([CodeBlock(code="print(1)", language="python")], CancellationToken())
    report["first_run"] = starts[-1] + time.perf_counter() - start  # a new executor's start + its first run
    py = await timed_runs(ex, "python", "print(1)", runs)
    sh = await timed_runs(ex, "bash", "echo 1", runs)
    report.update(py_p50=pct(py, 0.5), py_p95=pct(py, 0.95), sh_p50=pct(sh, 0.5), sh_p95=pct(sh, 0.95))
    await ex.execute_code_blocks([CodeBlock(code="x = 41", language="python")], CancellationToken())
    kept = await ex.execute_code_blocks([CodeBlock(code="print(x + 1)", language="python")], CancellationToken())
    report["state_kept"] = kept.output.strip() == "42"
    start = time.perf_counter()
    await ex.stop()
    report["stop"] = time.perf_counter() - start

    errors = 0

    async def one() -> DockerCommandLineCodeExecutor | None:
        nonlocal errors
        try:
            e = executor(image)
            await e.start()
            r = await e.execute_code_blocks([CodeBlock(code="print(1)", language="python")], CancellationToken())
            errors += r.exit_code != 0
            return e
        except Exception:
            errors += 1
            return None

    start = time.perf_counter()
    many = await asyncio.gather(*(one() for _ in range(concurrent)))
    report["concurrent_wall"] = time.perf_counter() - start
    report["concurrent_errors"] = errors
    await asyncio.gather(*(e.stop() for e in [*many, *spare] if e is not None))  # ~10 s each, so all at once
    return report


if __name__ == "__main__":
    try:
        print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
