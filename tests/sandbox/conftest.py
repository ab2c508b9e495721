"""Real Docker, real image. The image is built once if missing (CI builds it in setup); every
container these tests create must be gone when the session ends."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from sandbox import DockerSandbox, SandboxSettings, SandboxWorkbench
from sandbox.container import OWNER, docker_client, project_containers
from sandbox.errors import EngineUnavailableError
from sandbox.image import build_offline, image_exists


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-scoped so module-scoped sandboxes can be shared by a module's tests."""
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def sandbox_image() -> Iterator[str]:
    try:
        client = docker_client()
    except EngineUnavailableError as e:
        pytest.skip(f"no Docker engine: {e}")
    if not image_exists(client):
        if shutil.which("debootstrap") is None:
            pytest.skip("sandbox image missing and debootstrap not installed: run `workbench sandbox build`")
        build_offline(progress=lambda line: None)
    yield "mcp-workbench-sandbox:latest"
    left = [c["Id"][:12] for c in project_containers(client, owner=OWNER)]
    assert not left, f"sandbox containers left behind by the tests: {left}"


@pytest.fixture(scope="module")
async def box() -> AsyncIterator[DockerSandbox]:
    async with DockerSandbox(SandboxSettings(timeout=10)) as b:
        yield b


@pytest.fixture(scope="module")
async def workbench() -> AsyncIterator[SandboxWorkbench]:
    async with SandboxWorkbench(SandboxSettings(pool_size=2, timeout=10)) as wb:
        yield wb
