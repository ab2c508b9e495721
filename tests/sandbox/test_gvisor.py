"""The second wall: the same sandbox under gVisor (`runtime="runsc"`), for real."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from sandbox import DockerSandbox, SandboxSettings
from sandbox.container import docker_client

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


def runsc_registered() -> bool:
    return "runsc" in docker_client().info().get("Runtimes", {})


@pytest.fixture(scope="module")
async def gvisor() -> AsyncIterator[DockerSandbox]:
    if not runsc_registered():
        pytest.skip("gVisor's runsc is not registered with this Docker engine: run `bash scripts/ensure_docker.sh` "
                    "on a machine where it starts the engine (it registers runsc in /etc/docker/daemon.json)")
    async with DockerSandbox(SandboxSettings(runtime="runsc", memory="256m", timeout=10)) as b:
        yield b


async def test_code_runs_on_gvisors_kernel(gvisor: DockerSandbox) -> None:
    info = await anyio.to_thread.run_sync(docker_client().api.inspect_container, gvisor.container_id)
    assert info["HostConfig"]["Runtime"] == "runsc"
    r = await gvisor.run("bash", "dmesg | head -1; id -u")
    assert "gVisor" in r.stdout and r.stdout.split()[-1] == "1000"


async def test_sessions_work_the_same_under_gvisor(gvisor: DockerSandbox) -> None:
    await gvisor.run("python", "x = 41")
    assert (await gvisor.run("python", "print(x + 1)")).stdout == "42\n"
    await gvisor.write_file("g.txt", b"gvisor")
    assert (await gvisor.run("bash", "cat g.txt")).stdout == "gvisor"
    r = await gvisor.run("bash", "sleep 30 & sleep 30", timeout=1)
    assert r.timed_out
    assert "sleep" not in (await gvisor.run("bash", "ps -eo comm")).stdout


async def test_still_no_network_and_read_only_under_gvisor(gvisor: DockerSandbox) -> None:
    r = await gvisor.run("python", "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)")
    assert r.exit_code == 1 and "Error" in r.stderr
    assert "Read-only" in (await gvisor.run("bash", "touch /var/tmp/x")).stderr  # 1777 on disk: only read-only stops it
