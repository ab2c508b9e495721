"""What the conformance suite is pointed at, each in its own process as it runs in production:
the fixture (`everything_server.py`) over streamable HTTP, and `workbench serve --transport http`
proxying it — the fixture as its HTTP or stdio upstream, prefix on or off, the fixture forced
to one protocol era or not. Every process is stopped when its block ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "servers")]  # this tree's packages, then `serving`
from serving import free_port  # noqa: E402 — the servers tests' helper, one copy

FIXTURE = HERE / "everything_server.py"
Era = Literal["both", "2025", "2026"]
START_TIMEOUT = 180.0
"""Seconds for a process to answer: on a loaded machine importing the workbench alone has taken a minute."""
PREFIX = "up"
"""The gateway's key (and, prefix on, its tool prefix) for the fixture."""


@dataclass(frozen=True)
class Gateway:
    """`workbench serve` in front of the fixture."""

    upstream: Literal["http", "stdio"] = "http"
    era: Era = "both"
    """The one protocol era the fixture speaks, or both."""
    prefix: bool = False

    @property
    def id(self) -> str:
        era = "both-eras" if self.era == "both" else f"{self.era}-only"
        return f"{self.upstream}-upstream-{era}-prefix-{'on' if self.prefix else 'off'}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Launched:
    """A started process: `ready()` waits until `ready_url` answers (with `expect` in the body)."""

    proc: subprocess.Popen[bytes]
    log: Path
    ready_url: str
    what: str
    expect: str | None

    def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                answer = httpx2.get(self.ready_url, timeout=5)
                if self.expect is None or self.expect in answer.text:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.what} did not get ready within {START_TIMEOUT:.0f} s:\n{self.log.read_text()[-4000:]}")


@contextmanager
def _process(command: list[str], log: Path, ready_url: str, what: str, *,
             expect: str | None = None) -> Iterator[Launched]:
    """Starts `command` (not waiting: several start in parallel; call `ready()`), stops it after."""
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_TOKEN"}  # loopback: no auth
    # A file, not a pipe, takes the output: an unread pipe fills and stalls the process.
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            yield Launched(proc, log, ready_url, what, expect)
        finally:
            _stop(proc)


def fixture_command(transport: Literal["http", "stdio"], era: Era, port: int = 0) -> list[str]:
    return [sys.executable, str(FIXTURE), transport, *([str(port)] if port else []), "--era", era]


@contextmanager
def serve_fixture(workdir: Path, era: Era = "both", *, wait: bool = True) -> Iterator[tuple[str, Launched]]:
    """The fixture over streamable HTTP; yields its URL (and the process, to wait for it later)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    # Any HTTP answer at /mcp (a GET without a session is refused) means it listens.
    with _process(fixture_command("http", era, port), workdir / f"fixture-{era}-{port}.log", url,
                  f"the fixture ({era})") as launched:
        if wait:
            launched.ready()
        yield url, launched


def gateway_config(gateway: Gateway, upstream_url: str | None) -> str:
    """The workbench.toml of `gateway`; `upstream_url` is the fixture's when it is an HTTP upstream."""
    lines = [f"[servers.{PREFIX}]"]
    if gateway.upstream == "http":
        assert upstream_url, "an HTTP upstream needs the fixture's URL"
        lines.append(f"url = {json.dumps(upstream_url)}")
    else:
        command, *args = fixture_command("stdio", gateway.era)
        lines += [f"command = {json.dumps(command)}", f"args = {json.dumps(args)}"]
    if not gateway.prefix:
        lines.append('prefix = ""')
    lines += ["", "[sandbox]", "enabled = false", ""]
    return "\n".join(lines)  # JSON strings and lists are valid TOML


@contextmanager
def serve_gateway(workdir: Path, gateway: Gateway, upstream_url: str | None = None, *,
                  wait: bool = True) -> Iterator[tuple[str, Launched]]:
    """`workbench serve --transport http` in front of the fixture; yields its URL (and the
    process) once /readyz reports the fixture connected (or at once, `wait=False`)."""
    port = free_port()
    config = workdir / f"{gateway.id}.toml"
    config.write_text(gateway_config(gateway, upstream_url))
    command = [sys.executable, "-m", "workbench.cli", "serve", "--config", str(config),
               "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    with _process(command, workdir / f"{gateway.id}.log", f"http://127.0.0.1:{port}/readyz",
                  f"workbench serve ({gateway.id})", expect='"status":"ready"') as launched:
        if wait:
            launched.ready()
        yield f"http://127.0.0.1:{port}/mcp", launched
