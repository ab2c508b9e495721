"""Where the gateway hop spends its time: py-spy samples `workbench serve` while one client calls through it.

    .venv/bin/python bench/profile_serve.py [--calls 2000] [--eras 2025-11-25,2026-07-28] [--target gateway]
                                            [--top 25] [--out profile.md] [--raw-dir DIR]

The set-up is bench_serve.py's (the same upstream, the same gateway config, the same SDK client); py-spy
(bench/.venv-pyspy, made by bench/setup_peers.sh) samples the target's process without pausing it, idle
threads left out, so what it shows is CPU work per call. Per era it prints the samples by package of the
innermost frame (where the CPU went), and the functions with the most samples inclusive (what causes
it) and self (what burns it). `--raw-dir` keeps py-spy's collapsed stacks (flamegraph.pl / speedscope).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import anyio
from bench_serve import BENCH, ERAS, TARGETS, Run, calls_on, free_port, open_sessions, peers_ready, running

PY_SPY = BENCH / ".venv-pyspy/bin/py-spy"
_LINE = re.compile(r":\d+\)$")


def package(frame: str) -> str:
    """`call_tool (/…/site-packages/mcp/client/session.py:120)` → `mcp`; our own code by its folder."""
    path = frame.rsplit(" (", 1)[-1]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in path:
        return "stdlib " + path.rsplit("/", 1)[-1].split(":", 1)[0].removesuffix(".py")
    for ours in ("servers", "adapters", "workbench", "sandbox"):
        if f"/{ours}/" in path:
            return ours
    return path


def short(frame: str) -> str:
    name, _, path = frame.partition(" (")
    path = re.sub(r"^.*/lib/python3[.\d]*/", "", path.split("site-packages/", 1)[-1])
    for ours in ("/servers/", "/adapters/", "/workbench/"):
        if ours in path:
            path = ours.strip("/") + "/" + path.split(ours, 1)[1]
    return f"{name} ({_LINE.sub('', '(' + path)[1:]})"


def summarize(raw: str, top: int) -> str:
    stacks = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    # A thread in epoll counts as busy when the machine is crowded (runnable, not yet run); it is the loop
    # waiting, not the hop working, so it is reported apart and the shares are of the rest.
    waiting = sum(n for frames, n in stacks if frames[-1].startswith(("select ", "EpollSelector.select ")))
    stacks = [(frames, n) for frames, n in stacks if not frames[-1].startswith(("select ", "EpollSelector.select "))]
    total = sum(n for _, n in stacks)
    if not total:
        return "no samples (py-spy saw the process idle)\n"
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    for frames, n in stacks:
        by_package[package(frames[-1])] += n
        self_time[short(frames[-1])] += n
        for frame in {short(f) for f in frames[1:]}:  # frames[0] is the thread
            inclusive[frame] += n
    for frame in [f for f, n in inclusive.items() if n > 0.9 * total]:  # the runner's frames: in every stack
        del inclusive[frame]

    def rows(counter: Counter[str], limit: int) -> str:
        return "\n".join(f"| {100 * n / total:5.1f}% | `{name}` |" for name, n in counter.most_common(limit))

    return (f"{total} samples at work (and {waiting} in the event loop's epoll wait, left out)\n\n"
            f"by package (innermost frame):\n\n| share | package |\n|--:|---|\n"
            f"{rows(by_package, 15)}\n\ninclusive:\n\n| share | function |\n|--:|---|\n{rows(inclusive, top)}\n\n"
            f"self:\n\n| share | function |\n|--:|---|\n{rows(self_time, top)}\n")


async def drive(url: str, mode: str, calls: int) -> Run:
    async with AsyncExitStack() as stack:
        sessions = await open_sessions(stack, url, 1, mode)
        await calls_on(sessions, 20, Run(), strict=True)  # warm: the first calls build caches, not the hop
        run = Run()
        await calls_on(sessions, calls, run, seconds=3600)
        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--eras", default=",".join(ERAS))
    parser.add_argument("--target", default="gateway", choices=[n for n, t in TARGETS.items() if t.argv])
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--raw-dir", type=Path)
    args = parser.parse_args()
    # `timeout`, a CI cancel or kill: end like Ctrl-C, so the servers' process groups are stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    target = TARGETS[args.target]
    assert target.argv is not None
    skipped = peers_ready([target]) if target.needs else {}
    if not PY_SPY.exists():
        subprocess.run(["bash", str(BENCH / "setup_peers.sh")], check=True, timeout=900)
    if skipped:
        raise SystemExit(f"{args.target}: {skipped}")
    report = [f"# {args.target}: py-spy, 1 client, {args.calls} calls per era, {args.rate} samples/s, idle left out\n"]
    with tempfile.TemporaryDirectory(prefix="profile-serve-") as tmp, ExitStack() as stack:
        scratch = Path(tmp)
        port = free_port()
        upstream, _ = stack.enter_context(running("upstream", [sys.executable, str(BENCH / "bench_serve.py"),
                                                               "--serve", "upstream", str(port)], scratch, port))
        port = free_port()
        url, pid = stack.enter_context(running(args.target, target.argv(port, upstream, scratch), scratch, port))
        for era in args.eras.split(","):
            out = (args.raw_dir or scratch) / f"{args.target}-{era}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen([str(PY_SPY), "record", "-p", str(pid), "-o", str(out), "-f", "raw",
                                    "-r", str(args.rate), "--nonblocking", "--full-filenames"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                time.sleep(1)  # py-spy attaches
                run = anyio.run(drive, url, ERAS[era], args.calls)
            finally:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                try:
                    _, err = spy.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    err = b"py-spy did not stop"
            if not out.exists():
                raise SystemExit(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
            p50 = sorted(run.latencies)[len(run.latencies) // 2] * 1000
            report.append(f"## {era}: {run.calls_per_s:.0f} calls/s, p50 {p50:.2f} ms\n\n"
                          f"{summarize(out.read_text(), args.top)}")
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; every server it started is stopped") from None
