"""The harness reads the suite's results right: scenario names from its result folders, each
failing check with its message, and a scenario that crashed before writing any file from the
console summary — so a gateway failure is never read as a pass, nor a pass as a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import parse_results


def write(root: Path, folder: str, checks: object) -> None:
    (root / folder).mkdir()
    (root / folder / "checks.json").write_text(json.dumps(checks))


def test_results_are_read_per_scenario_with_each_failing_check(tmp_path: Path) -> None:
    write(tmp_path, "server-tools-call-simple-text-2026-11-26T02-41-52-109Z",
          [{"id": "tools-call-simple-text", "status": "SUCCESS"}, {"id": "meta", "status": "INFO"}])
    write(tmp_path, "server-input-required-result-multi-round-2026-11-26T02-41-53-001Z", [
        {"id": "sep-2322-multi-round-r1", "status": "SUCCESS"},
        {"id": "sep-2322-multi-round-r2", "status": "FAILURE", "errorMessage": "Expected new requestState"},
        {"id": "sep-2322-multi-round-r3", "status": "FAILURE", "description": "no message, the description then"},
    ])
    write(tmp_path, "server-tasks-lifecycle-2026-11-26T02-41-54-000Z", "not a list")
    (tmp_path / "server-ping-2026-11-26T02-41-55-000Z").mkdir()
    (tmp_path / "server-ping-2026-11-26T02-41-55-000Z" / "checks.json").write_text("{broken")
    console = "\n".join([
        "=== SUMMARY ===",
        "✓ tools-call-simple-text: 1 passed, 0 failed",
        "✗ server-stateless: 3 passed, 2 failed",  # crashed: no checks.json
        "✓ tasks-status-notifications: 0 passed, 0 failed",
    ])
    scenarios = parse_results(tmp_path, console)

    assert scenarios["tools-call-simple-text"].passed
    multi = scenarios["input-required-result-multi-round"]
    assert not multi.passed and multi.failures == (
        "sep-2322-multi-round-r2: Expected new requestState",
        "sep-2322-multi-round-r3: no message, the description then",
    )
    assert not scenarios["tasks-lifecycle"].passed  # a file that is not a list of checks fails,
    assert not scenarios["ping"].passed and "unreadable" in scenarios["ping"].failures[0]  # as does an unreadable one
    assert not scenarios["server-stateless"].passed  # only in the summary: its mark decides
    assert scenarios["tasks-status-notifications"].passed
    assert set(scenarios) == {"tools-call-simple-text", "input-required-result-multi-round", "tasks-lifecycle",
                              "ping", "server-stateless", "tasks-status-notifications"}


def test_only_the_excused_check_of_a_scenario_is_excused() -> None:
    from harness import Scenario, SuiteRun
    from matrix import EXCUSED, Matrix
    from targets import Gateway

    gateway = Gateway("http", "2025")
    key, batch = (EXCUSED["2025", "2026"][name].failure for name in (
        "input-required-result-basic-elicitation", "input-required-result-multiple-input-requests"))
    names = ["input-required-result-basic-elicitation", "input-required-result-multiple-input-requests", "ping"]
    direct = SuiteRun("direct", "2026", 1.0, {n: Scenario(n, True) for n in names})
    through = SuiteRun("gateway", "2026", 1.0, {
        names[0]: Scenario(names[0], False, (key,)),
        names[1]: Scenario(names[1], False, (batch + " 1", "sep-2322-multiple-inputs-complete: wrong answer")),
        "ping": Scenario("ping", False, ("ping: " + key.split(": ", 1)[1],)),  # an excused message, wrong scenario
    })
    matrix = Matrix(direct={"2026": direct}, through={(gateway.id, "2026"): through})
    assert matrix.lost(gateway, "2026") == {names[1], "ping"}
    assert set(matrix.excused(gateway, "2026")) == {names[0]}
    # The excuses belong to a 2025-only upstream alone.
    other = Matrix(direct={"2026": direct}, through={(Gateway("http", "2026").id, "2026"): through})
    assert other.lost(Gateway("http", "2026"), "2026") == set(names)


@pytest.mark.npm
@pytest.mark.conformance
def test_a_lost_scenario_counts_only_when_it_fails_again_alone(tmp_path: Path) -> None:
    """`retry_alone` re-runs a lost scenario with the real suite: one that passes the second
    time is recorded as such and no longer lost; one that fails again stays lost. The fixture
    stands in for a gateway — it passes `server-stateless` and fails `tasks-lifecycle`."""
    from harness import Scenario, SuiteRun, require_suite
    from matrix import Matrix
    from targets import Gateway, serve_fixture

    require_suite()
    gateway = Gateway("http", "2026")
    names = ("server-stateless", "tasks-lifecycle")
    first = {n: Scenario(n, False, (f"{n}-check: failed under load",)) for n in names}
    direct = SuiteRun("direct", "2026", 1.0, {n: Scenario(n, True) for n in names})
    with serve_fixture(tmp_path, "2026") as (url, _):
        matrix = Matrix(direct={"2026": direct}, through={(gateway.id, "2026"): SuiteRun(url, "2026", 1.0, dict(first))})
        matrix.retry_alone(gateway, "2026", url)
    assert matrix.lost(gateway, "2026") == {"tasks-lifecycle"}
    assert matrix.passed_alone == {(gateway.id, "2026"): {"server-stateless": first["server-stateless"]}}
