"""The MCP Inspector CLI (npm) — a third-party client — against our server over stdio and HTTP.

Skipped where the npm peers are not installed, except in CI (CI=true), where a missing
Inspector is a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import anyio
import anyio.to_thread
import pytest
from serve_toolkit import ServeBench
from serving import HERE, SCRIPT, script_env, serving

from servers import ServeSettings

ROOT = HERE.parent.parent
INSPECTOR = ROOT / "node_modules" / "@modelcontextprotocol" / "inspector"

pytestmark = pytest.mark.npm


def inspector(*args: str, ok: bool = True) -> dict:
    if not INSPECTOR.exists() or shutil.which("npx") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the MCP Inspector is not installed at {INSPECTOR} (run scripts/setup.sh)")
        pytest.skip("MCP Inspector not installed (npm install in the repo root)")
    done = subprocess.run(
        ["npx", "--no-install", "@modelcontextprotocol/inspector", "--cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=90, env=script_env(),
    )
    if not ok:
        assert done.returncode != 0, done.stdout
        return {}
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_inspector_over_stdio() -> None:
    listed = inspector(sys.executable, str(SCRIPT), "stdio", "--method", "tools/list")
    assert {"add", "media", "slow"} <= {t["name"] for t in listed["tools"]}
    called = inspector(sys.executable, str(SCRIPT), "stdio", "--method", "tools/call", "--tool-name", "add",
                       "--tool-arg", "a=3", "--tool-arg", "b=4")
    assert called["structuredContent"] == {"total": 7} and called["isError"] is False


@pytest.mark.anyio
async def test_inspector_over_http() -> None:
    async with serving(ServeBench(), ServeSettings(transport="http", expose=["add", "media"])) as served:
        listed = await anyio.to_thread.run_sync(lambda: inspector(served.url, "--transport", "http", "--method", "tools/list"))
        assert sorted(t["name"] for t in listed["tools"]) == ["add", "media"]
        media = await anyio.to_thread.run_sync(lambda: inspector(
            served.url, "--transport", "http", "--method", "tools/call", "--tool-name", "media"))
        assert [c["type"] for c in media["content"]] == ["text", "image", "audio", "resource_link", "resource"]
        added = await anyio.to_thread.run_sync(lambda: inspector(
            served.url, "--transport", "http", "--method", "tools/call", "--tool-name", "add",
            "--tool-arg", "a=3", "--tool-arg", "b=4"))
        assert added["structuredContent"] == {"total": 7}


@pytest.mark.anyio
async def test_inspector_without_the_token_is_refused() -> None:
    # Inspector 0.15's CLI cannot send headers, so it stands in for any client lacking the token.
    async with serving(ServeBench(), ServeSettings(transport="http", auth_token="tok")) as served:
        await anyio.to_thread.run_sync(lambda: inspector(served.url, "--transport", "http", "--method", "tools/list", ok=False))
