"""MCP tasks through the gateway, measured with the official conformance suite's tasks scenarios
(SEP-2663, the `io.modelcontextprotocol/tasks` extension): `workbench serve --transport http` in
front of the fixture, with the fixture's long-running tools as `serve.background` (and
`failing_job` as `serve.tasks_required`; `confirm_delete` and `multi_input` ask their client, which
a task does through `tasks/get` / `tasks/update`). The fixture serves no tasks itself — straight at it
every `tasks-*` scenario fails — so what passes here is the gateway's own tasks surface
(`servers.tasks`) over the upstream's ordinary tools.

Every tasks scenario of the suite must pass except those in `EXCUSED`, each with the reason; an
excused scenario that starts passing fails the test too, so an excuse cannot outlive its reason.

Cost: one `--requirements 2026-07-28` run through the gateway (≈ 20 s; the tasks scenarios sleep
on purpose), plus starting the fixture and the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
import targets
from harness import SuiteRun, require_suite, run_suite
from targets import Gateway, serve_fixture, serve_gateway
from tasks_wire import Wire  # tests/servers' raw 2026-07-28 requests (targets puts that folder on the path)

pytestmark = [pytest.mark.npm, pytest.mark.conformance, pytest.mark.timeout(600)]

BACKGROUND = ["slow_compute", "failing_job", "protocol_error_job", "confirm_delete", "multi_input"]
TASKS_REQUIRED = ["failing_job"]
TASK_SCENARIOS = {
    "tasks-lifecycle", "tasks-capability-negotiation", "tasks-wire-fields", "tasks-request-state-removal",
    "tasks-mrtr-input", "tasks-request-headers", "tasks-dispatch-and-envelope", "tasks-status-notifications",
    "tasks-required-task-error", "tasks-mrtr-composition",
}
"""The suite's tasks scenarios (0.2.0-alpha.12, `conformance list`)."""
EXCUSED: dict[str, str] = {
    "tasks-mrtr-composition": (
        "needs `test_tool_with_task`: a tool that asks in input-required rounds and then itself escalates to a "
        "task on the final round. Escalating is the tool's own decision: the gateway's own tasks are decided "
        "before a call runs (`serve.background`), and the fixture, an SDK-2.3 server, has no tasks of its own to "
        "escalate to (so nothing reaches the relay, `servers.task_relay`)."),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SuiteRun]]:
    """The gateway's URL, and the suite's run through it."""
    require_suite()
    workdir: Path = tmp_path_factory.mktemp("tasks-conformance")
    plain_config = targets.gateway_config

    def with_tasks(gateway: Gateway, upstream_url: str | None) -> str:
        return plain_config(gateway, upstream_url) + (
            f"\n[serve]\nbackground = {BACKGROUND!r}\ntasks_required = {TASKS_REQUIRED!r}\n".replace("'", '"'))

    with pytest.MonkeyPatch.context() as patch:
        # `serve_gateway` writes the config it is given by `gateway_config`; this one adds the [serve] section.
        patch.setattr(targets, "gateway_config", with_tasks)
        with serve_fixture(workdir) as (upstream, _), serve_gateway(workdir, Gateway(), upstream) as (url, _):
            yield url, anyio.run(run_suite, url, "2026")


@pytest.fixture(scope="module")
def through_gateway(gateway: tuple[str, SuiteRun]) -> SuiteRun:
    return gateway[1]


def test_the_suite_still_has_these_tasks_scenarios(through_gateway: SuiteRun) -> None:
    assert {name for name in through_gateway.scenarios if name.startswith("tasks-")} == TASK_SCENARIOS


def test_every_tasks_scenario_passes_through_the_gateway_but_the_excused(through_gateway: SuiteRun) -> None:
    table = "\n".join(f"  {'pass' if through_gateway.scenarios[n].passed else 'FAIL'}  {n}"
                      for n in sorted(TASK_SCENARIOS))
    print(f"\ntasks scenarios through the gateway ({through_gateway.seconds:.0f} s):\n{table}")
    failing = {n for n in TASK_SCENARIOS if not through_gateway.scenarios[n].passed}
    assert failing - EXCUSED.keys() == set(), through_gateway.explain(failing - EXCUSED.keys())
    assert EXCUSED.keys() <= failing, f"excused but passing now, drop the excuse: {sorted(EXCUSED.keys() - failing)}"


def test_cancelling_a_task_cancels_the_upstreams_call(gateway: tuple[str, SuiteRun]) -> None:
    """Not just the task's status: the fixture's own `slow_compute` call is cancelled (the fixture
    records what became of each call by label)."""

    async def states(wire: Wire) -> dict[str, str]:
        listed = await wire.result("tools/call", {"name": "slow_compute_states", "arguments": {}})
        return json.loads(listed["content"][0]["text"])  # type: ignore[no-any-return]

    async def probe() -> None:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30)) as http:
            wire = Wire(http, gateway[0])
            task_id = (await wire.create("slow_compute", {"seconds": 60, "label": "cancel-probe"}))["taskId"]
            with anyio.fail_after(20):
                while (await states(wire)).get("cancel-probe") != "running":
                    await anyio.sleep(0.05)
            await wire.result("tasks/cancel", {"taskId": task_id})
            assert (await wire.result("tasks/get", {"taskId": task_id}))["status"] == "cancelled"
            with anyio.fail_after(20):  # the upstream learns of it over its own connection
                while (await states(wire)).get("cancel-probe") != "cancelled":
                    await anyio.sleep(0.05)

    anyio.run(probe)
