"""`workbench serve` on the bundled example config, driven by the official MCP client:
the wiring of every part (MCP servers, sandbox, agents as tools) behind one server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import docker
import httpx2
import pytest
from mcp import Client

ROOT = Path(__file__).resolve().parents[2]
LABEL = "io.mcp-workbench.sandbox"

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _project_containers() -> list[str]:
    client = docker.from_env(timeout=10)
    try:
        return [c.name for c in client.containers.list(all=True, filters={"label": LABEL})]
    finally:
        client.close()


def _env_without_model() -> dict[str, str]:
    """This machine's environment minus anything that would switch the model-backed agent on."""
    hidden = {"OPENAI_API_KEY", "WORKBENCH_MODEL_URL", "WORKBENCH_TOKEN"}
    return {k: v for k, v in os.environ.items() if k not in hidden}


@pytest.fixture
def served() -> tuple[str, subprocess.Popen[str], set[str]]:
    try:
        before = set(_project_containers())  # other tests' containers are not this server's
    except docker.errors.DockerException as e:
        pytest.skip(f"no Docker engine: {e}")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "serve", "-c", str(ROOT / "examples/workbench.toml"),
         "--transport", "http", "--port", str(port)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, env=_env_without_model(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx2.HTTPError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/mcp", proc, before
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def test_example_config_served_end_to_end(served: tuple[str, subprocess.Popen[str], set[str]]) -> None:
    url, proc, before = served
    async with Client(url) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"demo__add", "everything__echo", "sandbox__run_python", "executor"} <= names
        assert "coder" not in names  # needs a model; none is configured here
        assert not any(n.startswith("everything__trigger-") for n in names)  # the config's exclude

        r = await client.call_tool("demo__add", {"a": 2, "b": 40})
        assert r.structured_content == {"total": 42.0}
        await client.call_tool("sandbox__run_python", {"code": "x = 41"})
        r = await client.call_tool("sandbox__run_python", {"code": "print(x + 1)"})
        assert r.content[0].text.strip() == "42"

        steps: list[str] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            steps.append(message or "")

        r = await client.call_tool("executor", {"task": "```bash\necho $((6 * 7)) from $(id -un)\n```"},
                                   progress_callback=progress)
        assert not r.is_error and "42 from" in r.content[0].text
        assert any("sandbox__run_bash" in s for s in steps)  # inner tool calls streamed as progress
        assert set(_project_containers()) - before  # this server's containers exist while it runs

    proc.send_signal(signal.SIGTERM)
    assert await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30)) == 0
    logs = [json.loads(line) for line in (proc.stderr.read() if proc.stderr else "").splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "shutting down" for entry in logs)
    assert not set(_project_containers()) - before  # SIGTERM removed every container it made
