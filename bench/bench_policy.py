"""What the served chain's policy, limits and audit cost per tool call, in process.

    .venv/bin/python bench/bench_policy.py [--calls 300] [--rounds 7]

The same trivial async tool through: the bare workbench; the default served chain
(`Audited(RateLimited(PolicyWorkbench(...)))` with no policy and no limits) with the audit off
and on; a two-rule policy with both limits; and the whole chain `workbench serve` puts around
a gateway's upstream, `RecordingWorkbench(Audited(RateLimited(JobsWorkbench(PolicyWorkbench(
Shaped(CompositeWorkbench(Shaped(...))))))))`, recording into a RunStore in a scratch folder,
with no tracer installed and with an SDK tracer provider (spans recorded, exported nowhere).
Audit lines go through a JSON-lines handler to /dev/null, as `workbench serve` formats them
for stderr. Chains alternate block by block so a
shared machine's noise falls on all alike; each row is the best block's p50, for a 100 B and a
100 kB argument (the audit measures the argument's and the result's sizes).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servers.audit import AuditConfig, Audited, audit_logger  # noqa: E402
from servers.jobs import JobsWorkbench  # noqa: E402
from servers.logs import JsonLines  # noqa: E402
from servers.policy import PolicyConfig, PolicyRule, PolicyWorkbench, calling_as  # noqa: E402
from servers.rate_limit import LimitsConfig, RateLimited  # noqa: E402
from servers.studio.recording import RecordingWorkbench, RunStore  # noqa: E402
from workbench import CallContext, StaticWorkbench, Workbench  # noqa: E402
from workbench.composite import CompositeWorkbench, Mount  # noqa: E402
from workbench.shaped import Shaped  # noqa: E402
from workbench.wrapper import WorkbenchWrapper  # noqa: E402


async def echo(text: str) -> str:
    """Echo the text back."""
    return text


def served_chain(base: Workbench, store: RunStore) -> Workbench:
    """What `WorkbenchServer` wraps around a gateway's sources (servers/mcp_server.py)."""
    sources = CompositeWorkbench({"up": Mount(base, prefix="")})
    jobs = JobsWorkbench(PolicyWorkbench(Shaped(sources), None))
    return RecordingWorkbench(Audited(RateLimited(jobs, LimitsConfig())), store)


class Traced(WorkbenchWrapper):
    """`inner` called inside an SDK tracer provider's span, as a traced server's request is."""

    def __init__(self, inner: Workbench) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        super().__init__(inner)
        self.tracer = TracerProvider().get_tracer("bench")

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        ctx: CallContext | None = None) -> Any:
        with self.tracer.start_as_current_span("tools/call"):
            return await self.inner.call_tool(name, arguments, ctx)


def chains(scratch: Path) -> dict[str, Workbench]:
    base = StaticWorkbench([echo])
    policy = PolicyConfig(rules=[PolicyRule(identities=["*"], tools=["*"], deny_tools=["drop_*"]),
                                 PolicyRule(scopes=["admin"], tools=["drop_*"], require_approval=["drop_*"])])
    limits = LimitsConfig(calls_per_minute=1e9, max_concurrent_calls=1000)
    return {
        "bare workbench": base,
        "served chain, audit off": Audited(RateLimited(PolicyWorkbench(base, None), LimitsConfig()),
                                           AuditConfig(enabled=False)),
        "served chain (audit on)": Audited(RateLimited(PolicyWorkbench(base, None), LimitsConfig())),
        "+ 2-rule policy + limits": Audited(RateLimited(PolicyWorkbench(base, policy), limits)),
        "whole served chain": served_chain(base, RunStore(scratch / "runs.sqlite")),
        "whole chain, traced": Traced(served_chain(base, RunStore(scratch / "traced.sqlite"))),
    }


async def main(calls: int, rounds: int) -> None:
    with open("/dev/null", "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(JsonLines())
        audit_logger.addHandler(handler)
        audit_logger.setLevel(logging.INFO)
        audit_logger.propagate = False
        measured = chains(Path(tempfile.mkdtemp(prefix="bench-policy-")))
        caller = CallContext(identity="alice", session_id="bench")
        print(f"{'argument':>9}  {'chain':<26} {'p50 µs':>8}  {'extra µs':>8}")
        for workbench in measured.values():
            await workbench.list_tools()  # the shaping wrappers route by their last listing
        for size in (100, 100_000):
            arguments = {"text": "x" * size}
            best: dict[str, float] = {}
            for _ in range(rounds):
                for name, workbench in measured.items():
                    samples = []
                    with calling_as(caller):
                        for _ in range(calls):
                            started = time.perf_counter()
                            await workbench.call_tool("echo", arguments, caller)
                            samples.append(time.perf_counter() - started)
                    best[name] = min(best.get(name, float("inf")), statistics.median(samples))
            bare = best["bare workbench"]
            for name, p50 in best.items():
                print(f"{size:>7} B  {name:<26} {p50 * 1e6:8.1f}  {(p50 - bare) * 1e6:8.1f}")
        audit_logger.removeHandler(handler)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    anyio.run(main, args.calls, args.rounds)
