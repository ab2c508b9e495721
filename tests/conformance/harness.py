"""The official MCP conformance server suite (`@modelcontextprotocol/conformance`, pinned in
package.json, run on the Node 22 from npm) against one URL, its results parsed into
{scenario: passed or failed, with each failing check's message}.

    .venv/bin/python tests/conformance/harness.py http://127.0.0.1:PORT/mcp [2025|2026] [--scenario X]

Two suites: "2025" is `--suite active` (the 2025-11-25 handshake era), "2026" is
`--requirements 2026-07-28` (the stateless era). Runs against different targets are
independent and can go concurrently (`run_suites`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio

ROOT = Path(__file__).resolve().parent.parent.parent
NODE_BIN = ROOT / "node_modules" / "node" / "bin"
SUITE_BIN = ROOT / "node_modules" / ".bin" / "conformance"

Suite = Literal["2025", "2026"]
SUITE_ARGS: dict[Suite, tuple[str, ...]] = {
    "2025": ("--suite", "active"),
    "2026": ("--requirements", "2026-07-28"),
}
SUITE_TIMEOUT = 240.0
"""Seconds for one whole suite run; it takes ≈ 5 s straight at the fixture. The suite bounds each
scenario itself (`--timeout`, below)."""
SCENARIO_TIMEOUT_MS = 30_000
MAX_OUTPUT = 1 << 20
"""Bytes of the suite's console output kept for a report: the results themselves are read from
the files it writes."""

_RESULT_DIR = re.compile(r"^server-(?P<name>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
_SUMMARY_LINE = re.compile(r"^(?P<mark>[✓✗]) (?P<name>[\w./-]+): (?P<passed>\d+) passed, (?P<failed>\d+) failed$")


class HarnessError(RuntimeError):
    """The suite could not be run (missing, timed out, or produced nothing to read)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    passed: bool
    failures: tuple[str, ...] = ()
    """One `check-id: message` per failed check."""


@dataclass
class SuiteRun:
    url: str
    suite: Suite
    seconds: float
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    output: str = ""

    @property
    def passed(self) -> set[str]:
        return {name for name, s in self.scenarios.items() if s.passed}

    @property
    def failed(self) -> set[str]:
        return {name for name, s in self.scenarios.items() if not s.passed}

    def explain(self, names: Iterable[str]) -> str:
        """The failing checks of `names`, one scenario per paragraph."""
        lines: list[str] = []
        for name in sorted(names):
            scenario = self.scenarios.get(name)
            lines.append(f"  {name}:")
            if scenario is None:
                lines.append("    not run by the suite at this target")
            else:
                lines.extend(f"    {failure}" for failure in scenario.failures or ("(no failing check recorded)",))
        return "\n".join(lines)


def suite_available() -> str | None:
    """Why the suite cannot run here, or None when it can."""
    for path, what in ((NODE_BIN / "node", "Node 22 (npm package node@22)"),
                       (SUITE_BIN, "the conformance suite (npm package @modelcontextprotocol/conformance)")):
        if not path.exists():
            return f"{what} is not installed at {path}: run scripts/setup.sh"
    return None


def require_suite() -> None:
    """Skip when the suite is not installed — but fail under CI (CI=true), where it must be."""
    import pytest

    missing = suite_available()
    if missing and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs the conformance suite: {missing}")
    if missing:
        pytest.skip(missing)


def _check_failure(check: object) -> str | None:
    if not isinstance(check, dict) or check.get("status") != "FAILURE":
        return None
    message = str(check.get("errorMessage") or check.get("description") or "")
    return f"{check.get('id', '?')}: {message[:500]}"


def parse_results(output_dir: Path, console: str) -> dict[str, Scenario]:
    """Each scenario's `checks.json` under `output_dir`, plus the summary lines of the console
    output for a scenario that left no file (the suite writes none when one crashes)."""
    scenarios: dict[str, Scenario] = {}
    for checks_file in sorted(output_dir.glob("server-*/checks.json")):
        match = _RESULT_DIR.match(checks_file.parent.name)
        if match is None:
            continue
        try:
            checks = json.loads(checks_file.read_text())
            if not isinstance(checks, list):
                raise ValueError(f"a list of checks expected, got {type(checks).__name__}")
        except (OSError, ValueError) as e:
            scenarios[match["name"]] = Scenario(match["name"], False, (f"unreadable checks.json: {e}",))
            continue
        failures = tuple(f for f in map(_check_failure, checks) if f)
        scenarios[match["name"]] = Scenario(match["name"], not failures, failures)
    for line in console.splitlines():
        summary = _SUMMARY_LINE.match(line.strip())
        if summary and summary["name"] not in scenarios:
            failed = summary["mark"] == "✗"
            reason = ("the suite wrote no checks.json for it; see its output",) if failed else ()
            scenarios[summary["name"]] = Scenario(summary["name"], not failed, reason)
    return scenarios


async def run_suite(url: str, suite: Suite, *, scenario: str | None = None,
                    timeout: float = SUITE_TIMEOUT) -> SuiteRun:
    """Run one suite (or one scenario of it) against `url` and parse what it found."""
    missing = suite_available()
    if missing:
        raise HarnessError(missing)
    selection = ("--scenario", scenario) if scenario else SUITE_ARGS[suite]
    if scenario and suite == "2026":
        selection += ("--spec-version", "2026-07-28", "--force")  # the wire the requirements run uses
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory(prefix="conformance-") as out:
        command = [str(NODE_BIN / "node"), str(SUITE_BIN), "server", "--url", url, *selection,
                   "--timeout", str(SCENARIO_TIMEOUT_MS), "-o", out]
        started = time.monotonic()
        try:
            with anyio.fail_after(timeout):
                done = await anyio.run_process(command, env=env, check=False)
        except TimeoutError:
            raise HarnessError(f"the {suite} suite at {url} did not finish within {timeout:.0f} s") from None
        seconds = time.monotonic() - started
        console = (done.stdout + done.stderr)[-MAX_OUTPUT:].decode(errors="replace")
        scenarios = parse_results(Path(out), console)
    if not scenarios:
        raise HarnessError(f"the {suite} suite at {url} reported no scenario (exit {done.returncode}):\n"
                           f"{console[-4000:]}")
    return SuiteRun(url, suite, seconds, scenarios, console)


async def run_suites(targets: Sequence[tuple[str, Suite]], *, concurrency: int = 2) -> list[SuiteRun]:
    """Run the suite at several independent targets, at most `concurrency` at once (the suite
    itself runs its scenarios one after another)."""
    limiter = anyio.CapacityLimiter(max(1, concurrency))
    results: list[SuiteRun | None] = [None] * len(targets)

    async def one(index: int, url: str, suite: Suite) -> None:
        async with limiter:
            results[index] = await run_suite(url, suite)

    async with anyio.create_task_group() as tg:
        for index, (url, suite) in enumerate(targets):
            tg.start_soon(one, index, url, suite)
    return [r for r in results if r is not None]


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("suite", nargs="?", choices=["2025", "2026"], default="2025")
    parser.add_argument("--scenario")
    args = parser.parse_args(argv)
    try:
        run = anyio.run(lambda: run_suite(args.url, args.suite, scenario=args.scenario))
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, scenario in sorted(run.scenarios.items()):
        print(f"{'pass' if scenario.passed else 'FAIL'}  {name}")
        for failure in scenario.failures:
            print(f"        {failure}")
    print(f"{len(run.passed)} passed, {len(run.failed)} failed in {run.seconds:.1f} s")
    return 0 if not run.failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
