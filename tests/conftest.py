"""Shared test settings: async tests run on anyio's pytest plugin with asyncio.

Under CI (CI=true) the real peers are required: a missing Docker engine, sandbox image
or npm peer fails the run at once instead of letting tests skip quietly.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SANDBOX_IMAGE = "mcp-workbench-sandbox:latest"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _missing_prerequisites() -> list[str]:
    missing = []
    for peer in ("server-everything", "inspector"):
        if not (ROOT / "node_modules" / "@modelcontextprotocol" / peer).is_dir():
            missing.append(f"npm peer @modelcontextprotocol/{peer} (run scripts/setup.sh)")
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            client.images.get(SANDBOX_IMAGE)
        except docker.errors.ImageNotFound:
            missing.append(f"sandbox image {SANDBOX_IMAGE} (run: workbench sandbox build)")
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 — any failure to reach the engine is the finding
        missing.append(f"Docker engine ({type(e).__name__}; run: bash scripts/ensure_docker.sh)")
    return missing


_STATE_DIR = tempfile.TemporaryDirectory(prefix="workbench-test-state-")  # removed when the test process exits


def pytest_sessionstart(session: pytest.Session) -> None:
    # Servers record their calls in a SQLite file under the state dir: tests (and the servers they
    # start as subprocesses) write into a throwaway one, never into the user's.
    if "WORKBENCH_STATE_DIR" not in os.environ:
        os.environ["WORKBENCH_STATE_DIR"] = _STATE_DIR.name
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        missing = _missing_prerequisites()
        if missing:
            pytest.exit("CI needs the real peers; missing: " + "; ".join(missing), returncode=3)
