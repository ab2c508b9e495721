"""Clear errors: engine down, image missing, unknown runtime; the reaper removes only orphans."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import anyio
import docker
import docker.errors
import pytest
import requests.exceptions

from sandbox import DockerSandbox, ImageMissingError, SandboxError, SandboxSettings, SandboxWorkbench
from sandbox.container import _why_unreachable, docker_client, reap_orphans
from sandbox.settings import OWNER_LABEL, PROJECT_LABEL
from workbench.core import CallContext

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


async def test_missing_image_names_the_build_command() -> None:
    with pytest.raises(ImageMissingError, match="workbench sandbox build"):
        await DockerSandbox(SandboxSettings(image="mcp-workbench-sandbox:no-such-tag")).start()


async def test_missing_image_as_a_tool_result() -> None:
    async with SandboxWorkbench(SandboxSettings(image="mcp-workbench-sandbox:no-such-tag", pool_size=1)) as wb:
        r = await wb.call_tool("run_python", {"code": "1"}, CallContext(session_id="x"))
        assert r.is_error and "workbench sandbox build" in r.text
        with anyio.fail_after(10):  # the pool's own background start fails too, a moment later
            while wb.health().state != "down":
                await anyio.sleep(0.05)
        assert "workbench sandbox build" in wb.health().detail


async def test_unknown_runtime_says_how_to_register_one() -> None:
    with pytest.raises(SandboxError, match="ensure_docker.sh"):
        await DockerSandbox(SandboxSettings(runtime="no-such-runtime")).start()


def test_engine_down_says_how_to_start_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent("""
        import anyio
        from sandbox import DockerSandbox, SandboxWorkbench
        from workbench.core import CallContext
        async def main():
            try:
                await DockerSandbox().start()
            except Exception as e:
                print(type(e).__name__, e)
            async with SandboxWorkbench() as wb:
                r = await wb.call_tool("run_bash", {"code": "true"}, CallContext())
                print("tool:", r.is_error, r.text)
                print("health:", wb.health().state)
        anyio.run(main)
    """)
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("EngineUnavailableError") and "bash scripts/ensure_docker.sh" in lines[0]
    assert lines[1].startswith("tool: True") and "bash scripts/ensure_docker.sh" in lines[1]
    assert lines[2] == "health: down"
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("where", ["unix", "tcp"])
def test_engine_unreachable_says_why_from_the_socket_error(where: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if where == "unix":
        url, why = f"unix://{tmp_path}/no-engine.sock", "no socket at"
    else:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            url, why = f"tcp://127.0.0.1:{s.getsockname()[1]}", "connection refused at"
    monkeypatch.setenv("DOCKER_HOST", url)
    with pytest.raises((docker.errors.DockerException, requests.exceptions.RequestException)) as caught:
        docker.from_env(timeout=5).ping()
    assert _why_unreachable(caught.value) == f"{why} {url}"


async def test_reaper_removes_orphans_and_nothing_else() -> None:
    client = docker_client()
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    make = lambda labels: client.api.create_container(  # noqa: E731
        "mcp-workbench-sandbox:latest", command=["sleep", "60"], labels=labels)["Id"]
    orphan = await anyio.to_thread.run_sync(make, {PROJECT_LABEL: "session", OWNER_LABEL: f"{host}:{dead.pid}"})
    alive = await anyio.to_thread.run_sync(make, {PROJECT_LABEL: "session", OWNER_LABEL: f"{host}:{os.getpid()}"})
    stranger = await anyio.to_thread.run_sync(make, {"someone.else": "1", OWNER_LABEL: f"{host}:{dead.pid}"})
    try:
        removed = await reap_orphans()
        assert orphan in removed and alive not in removed and stranger not in removed
        left = {c["Id"] for c in client.api.containers(all=True)}
        assert orphan not in left and alive in left and stranger in left
    finally:
        for cid in (orphan, alive, stranger):
            try:
                client.api.remove_container(cid, force=True)
            except Exception:
                pass
