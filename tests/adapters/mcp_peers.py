"""Helpers for the MCP client adapter tests: where the peer servers are and how to run them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVERS = Path(__file__).parent / "servers"
TOOLBOX = str(SERVERS / "toolbox.py")
BLACKHOLE = str(SERVERS / "blackhole.py")
PYTHON = sys.executable
EVERYTHING = ROOT / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


def start_toolbox(transport: str, port: int, name: str = "toolbox") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [PYTHON, TOOLBOX, "--transport", transport, "--port", str(port), "--name", name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def everything_or_skip() -> Path:
    """The npm "everything" server. Missing: a failure on CI (it must be installed there), a skip elsewhere."""
    if not EVERYTHING.exists():
        message = f"{EVERYTHING} is missing: run `npm ci` in {ROOT} (scripts/setup.sh does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return EVERYTHING
