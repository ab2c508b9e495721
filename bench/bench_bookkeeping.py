"""What a served call's bookkeeping costs in CPU: the audit line, the run recorded, and Studio's spans at
several `trace_sample` ratios.

    .venv/bin/python bench/bench_bookkeeping.py [--calls 3000] [--rounds 5]

One trivial tool, called in process through what `workbench serve` wraps around a gateway's upstream for
bookkeeping: a request span (as the SDK's server middleware makes), `RecordingWorkbench` into a RunStore
in a scratch folder, `Audited` (lines through the server's JSON formatter to /dev/null), and a client span
inside the tool (as the upstream lane makes). Each row runs in a process of its own — a tracer provider,
once installed, stays for the life of a process — and measures the process's CPU time per call (every
thread, so the run store's writer counts), the best of `--rounds` runs, rows taking turns so a shared
machine's noise falls on all alike. "spans r" installs Studio's collector sampling at r (`install_collector`):
1.0 is what every call cost before sampling.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS: dict[str, tuple[bool, bool, float | None]] = {
    # name: (audit, recorder, trace_sample; None: no tracer provider)
    "bare (no-op spans)": (False, False, None),
    "+ audit": (True, False, None),
    "+ audit + recorder": (True, True, None),
    "+ spans 0 (Studio's runs only)": (True, True, 0.0),
    "+ spans 0.01": (True, True, 0.01),
    "+ spans 0.1 (default)": (True, True, 0.1),
    "+ spans 1.0 (every call)": (True, True, 1.0),
}


async def measure(row: str, calls: int) -> float:
    """CPU µs per call of one row, in this process."""
    from opentelemetry import trace

    from servers.audit import AuditConfig, Audited, audit_logger
    from servers.logs import JsonLines
    from servers.studio.recording import RecordingWorkbench, RunStore
    from servers.studio.traces import install_collector
    from workbench import CallContext, StaticWorkbench, Workbench
    from workbench.wrapper import WorkbenchWrapper

    audit, recorder, trace_sample = ROWS[row]
    if trace_sample is not None:
        install_collector(trace_sample)
    tracer = trace.get_tracer("bench")

    async def add(a: int, b: int) -> int:
        """Add two integers."""
        with tracer.start_as_current_span("tools/call add", kind=trace.SpanKind.CLIENT):  # the upstream lane's
            return a + b

    class RequestSpan(WorkbenchWrapper):
        """The SDK server middleware's span around the served call."""

        async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                            ctx: CallContext | None = None) -> Any:
            with tracer.start_as_current_span(f"tools/call {name}", kind=trace.SpanKind.SERVER):
                return await self.inner.call_tool(name, arguments, ctx)

    served: Workbench = StaticWorkbench([add])
    store = None
    if audit:
        handler = logging.StreamHandler(open("/dev/null", "w"))  # noqa: SIM115 - for the process's life
        handler.setFormatter(JsonLines())
        audit_logger.addHandler(handler)
        audit_logger.setLevel(logging.INFO)
        audit_logger.propagate = False
        served = Audited(served, AuditConfig())
    if recorder:
        store = RunStore(Path(tempfile.mkdtemp(prefix="bench-bookkeeping-")) / "runs.sqlite")
        served = RecordingWorkbench(served, store)
    served = RequestSpan(served)
    await served.list_tools()
    caller = CallContext(identity="alice", session_id="bench")
    for _ in range(300):  # warm up: caches, the writer thread
        await served.call_tool("add", {"a": 1, "b": 2}, caller)
    started = time.process_time()
    for _ in range(calls):
        await served.call_tool("add", {"a": 1, "b": 2}, caller)
    if store is not None:
        store.close()  # what the batch costs to write counts too
    return (time.process_time() - started) / calls * 1e6


def main(calls: int, rounds: int) -> None:
    best: dict[str, float] = {}
    for _ in range(rounds):
        for row in ROWS:
            done = subprocess.run([sys.executable, __file__, "--one", row, "--calls", str(calls)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise SystemExit(f"{row}: {done.stderr[-2000:]}")
            best[row] = min(best.get(row, float("inf")), float(done.stdout.strip().splitlines()[-1]))
    bare = best["bare (no-op spans)"]
    print(f"{'row':<32} {'CPU µs/call':>12} {'over bare':>10}")
    for row, value in best.items():
        print(f"{row:<32} {value:12.1f} {value - bare:10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(anyio.run(measure, args.one, args.calls))
    else:
        main(args.calls, args.rounds)
