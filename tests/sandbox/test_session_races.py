"""Concurrent openings cannot get past the caps or leave a container nobody counts (found by an
attacker's pass over the caps: each of these let more containers run than the caps allow)."""

from __future__ import annotations

import anyio
import pytest

from sandbox import SandboxSettings, SandboxWorkbench
from sandbox.container import OWNER, docker_client, project_containers

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


def running() -> int:
    return len(project_containers(docker_client(), owner=OWNER))


async def test_a_cancelled_waiter_does_not_let_a_third_caller_open_a_second_container() -> None:
    async with SandboxWorkbench(SandboxSettings(pool_size=0, memory="128m", max_sandboxes=3)) as wb:
        boxes = []

        async def opener() -> None:
            boxes.append(await wb.session("same"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(opener)  # A: cold-starts the container
            await anyio.sleep(0.05)
            with anyio.move_on_after(0.05):  # B: waits for A, then gives up
                await wb.session("same")
            tg.start_soon(opener)  # C: must wait for A too, not start its own
        assert len(boxes) == 2 and boxes[0] is boxes[1]
        assert wb.live == 1 and running() == 1
        assert not wb._opening


async def test_the_per_identity_cap_holds_across_reclaims() -> None:
    settings = SandboxSettings(pool_size=0, memory="128m", max_sandboxes=4, max_per_identity=1, reclaim_after=0)
    async with SandboxWorkbench(settings) as wb:
        for i in range(4):
            await wb.session(f"victim-{i}", identity=f"user-{i}")
        outcomes: list[str] = []

        async def mallory(i: int) -> None:
            try:
                await wb.session(f"mallory-{i}", identity="mallory")
                outcomes.append("served")
            except Exception as e:
                outcomes.append(type(e).__name__)

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(mallory, i)
        assert outcomes.count("served") == 1, outcomes
        assert outcomes.count("SandboxCapacityError") == 3, outcomes
        assert sum(1 for owner in wb._owners.values() if owner == "mallory") == 1
        assert wb.live <= 4 and running() <= 4
