"""Upstream MCP tasks relayed by the gateway, measured with the official conformance suite's tasks
scenarios: the fixture ← gateway B (`workbench serve` with the fixture's long-running tools as
`serve.background`, configured as `test_tasks_conformance` configures it: B serves the tasks) ←
gateway A (`workbench serve`, no background, its one upstream B). Every tasks scenario that passes
at B must pass at A, where each task is B's, relayed (`servers.task_relay`); the one scenario B is
excused for fails at A for the same reason.

Cost: two `--requirements 2026-07-28` runs side by side (≈ 20 s each; the tasks scenarios sleep on
purpose), plus starting the fixture and the two gateways.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import anyio
import httpx2
import pytest
import targets
from harness import SuiteRun, require_suite, run_suite
from targets import Gateway, serve_fixture, serve_gateway
from tasks_wire import TASKS_EXTENSION, Wire
from test_tasks_conformance import BACKGROUND, EXCUSED, TASK_SCENARIOS, TASKS_REQUIRED

pytestmark = [pytest.mark.npm, pytest.mark.conformance, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SuiteRun, SuiteRun]]:
    """The suite's run at B (serving tasks) and at A (relaying B's)."""
    require_suite()
    plain_config = targets.gateway_config

    def with_tasks(gateway: Gateway, upstream_url: str | None) -> str:
        return plain_config(gateway, upstream_url) + (
            f"\n[serve]\nbackground = {BACKGROUND!r}\ntasks_required = {TASKS_REQUIRED!r}\n".replace("'", '"'))

    with ExitStack() as stack:
        fixture_url, _ = stack.enter_context(serve_fixture(tmp_path_factory.mktemp("fixture")))
        with pytest.MonkeyPatch.context() as patch:  # only B's config gets the [serve] section
            patch.setattr(targets, "gateway_config", with_tasks)
            b_url, _ = stack.enter_context(serve_gateway(tmp_path_factory.mktemp("b"), Gateway(), fixture_url))
        a_url, _ = stack.enter_context(serve_gateway(tmp_path_factory.mktemp("a"), Gateway(), b_url))

        async def both() -> tuple[SuiteRun, SuiteRun]:
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30)) as http:
                with anyio.fail_after(60):  # A learns in the background that B serves tasks
                    while TASKS_EXTENSION not in (await Wire(http, a_url).result("server/discover", {})
                                                  )["capabilities"].get("extensions", {}):
                        await anyio.sleep(0.1)
            done: dict[str, SuiteRun] = {}

            async def one(key: str, url: str) -> None:
                done[key] = await run_suite(url, "2026")

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "b", b_url)
                tg.start_soon(one, "a", a_url)
            return done["b"], done["a"]

        yield anyio.run(both)


def test_every_tasks_scenario_that_passes_at_the_upstream_passes_through_the_relay(
        runs: tuple[SuiteRun, SuiteRun]) -> None:
    at_b, at_a = runs
    table = "\n".join(f"  B {'pass' if at_b.scenarios[n].passed else 'FAIL'}  A "
                      f"{'pass' if at_a.scenarios[n].passed else 'FAIL'}  {n}" for n in sorted(TASK_SCENARIOS))
    print(f"\ntasks scenarios at B (serving) and A (relaying B's):\n{table}")
    passing_at_b = {n for n in TASK_SCENARIOS if at_b.scenarios[n].passed}
    failing_at_a = {n for n in passing_at_b if not at_a.scenarios[n].passed}
    assert failing_at_a == set(), at_a.explain(failing_at_a)
    assert TASK_SCENARIOS - passing_at_b == EXCUSED.keys()  # B is as `test_tasks_conformance` measures it


def test_no_scenario_passes_at_the_upstream_and_fails_through_the_relay(runs: tuple[SuiteRun, SuiteRun]) -> None:
    """The relay keeps the rest of the 2026-07-28 requirements as B passes them (a task-declaring
    client's ordinary calls leave the fast lane, and must still be answered exactly)."""
    at_b, at_a = runs
    lost = {n for n, s in at_b.scenarios.items() if s.passed and n in at_a.scenarios and not at_a.scenarios[n].passed}
    assert lost == set(), at_a.explain(lost)
