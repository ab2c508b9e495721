"""OAuth to an upstream MCP server, end to end: a real server that is its own authorization
server (tests/adapters/servers/oauth_protected.py, on the SDK's AS routes), the real
`workbench login` machinery (loopback listener, state check), and `McpWorkbench` with the
stored tokens — refresh after expiry, reconnect after a restart, and an error that says
`workbench login NAME` when nobody logged in. The "browser" follows the redirect itself."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp_peers import free_port, stop, wait_for_port

from adapters.config import ServerConfig
from adapters.mcp import McpWorkbench
from adapters.oauth import LoginRequired, oauth_auth, storage_for
from adapters.oauth_login import LoginFailed, login, logout
from workbench.core import WorkbenchError

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).parent / "servers" / "oauth_protected.py"


@dataclass
class Upstream:
    port: int
    state: Path
    lifetime: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(self.port), "--state", str(self.state),
             "--token-lifetime", str(self.lifetime)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, timeout=90)  # a loaded CI machine imports the SDK slowly

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def log(self) -> list[str]:
        log: list[str] = json.loads(self.state.read_text())["log"]
        return log

    def issued(self) -> set[str]:
        data = json.loads(self.state.read_text())
        return set(data["access"]) | set(data["refresh"])


def _upstream(tmp_path: Path, lifetime: int) -> Iterator[Upstream]:
    upstream = Upstream(free_port(), tmp_path / "as-state.json", lifetime)
    try:
        upstream.start()
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    yield from _upstream(tmp_path, 3600)


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[Upstream]:
    yield from _upstream(tmp_path, 5)


def server_config(upstream: Upstream, tmp_path: Path, **oauth: object) -> ServerConfig:
    return ServerConfig(url=upstream.url, oauth={"token_dir": str(tmp_path / "tokens"), "login_timeout": 20, **oauth})


async def follow_redirect(url: str) -> None:
    """The person: the test AS consents at once; the redirect lands on the login's listener."""
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.get(url)
        assert answer.status_code == 302, answer.text
        landed = await http.get(answer.headers["location"])
        assert landed.status_code == 200, landed.text


async def call_whoami(cfg: ServerConfig) -> str:
    async with McpWorkbench.from_config("prot", cfg, max_backoff=0.5) as wb:
        result = await wb.call_tool("whoami", {})
        assert not result.is_error, result.text
        return result.text


async def test_login_stores_tokens_that_later_workbenches_use(upstream: Upstream, tmp_path: Path) -> None:
    cfg = server_config(upstream, tmp_path)
    outcome = await login("prot", cfg, open_browser=follow_redirect)
    assert outcome.tools == 1
    assert outcome.token_file.stat().st_mode & 0o077 == 0
    assert upstream.log() == ["register", "authorization_code"]
    assert (await call_whoami(cfg)).startswith("client ")  # no person this time: the stored tokens
    assert upstream.log() == ["register", "authorization_code"]
    # Logging in again is a new login (another account, say), with the registration (and its
    # redirect port) reused.
    await login("prot", cfg, open_browser=follow_redirect)
    assert upstream.log() == ["register", "authorization_code", "authorization_code"]


async def test_without_a_login_the_error_names_the_command(upstream: Upstream, tmp_path: Path) -> None:
    cfg = server_config(upstream, tmp_path)
    wb = McpWorkbench.from_config("prot", cfg, max_backoff=0.5)
    with pytest.raises(WorkbenchError) as caught:
        await wb.start()
    assert "workbench login prot" in str(caught.value)
    result = await wb.call_tool("whoami", {})
    assert result.is_error and "workbench login prot" in result.text
    assert "Traceback" not in result.text
    await wb.stop()


async def test_the_listener_takes_only_the_answer_with_its_state(upstream: Upstream, tmp_path: Path) -> None:
    cfg = server_config(upstream, tmp_path)

    async def forger_first(url: str) -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            answer = await http.get(url)
            real = httpx2.URL(answer.headers["location"])
            forged = real.copy_with(params={"code": "attacker-code", "state": "guessed"})
            refused = await http.get(forged)
            assert refused.status_code == 400  # and the wait goes on
            assert (await http.get(real)).status_code == 200

    await login("prot", cfg, open_browser=forger_first)
    assert upstream.log() == ["register", "authorization_code"]  # the real code, exchanged once


async def test_a_login_nobody_finishes_times_out_with_what_to_do(upstream: Upstream, tmp_path: Path) -> None:
    cfg = server_config(upstream, tmp_path, login_timeout=1)

    async def nobody(url: str) -> None:
        return None

    with pytest.raises(Exception) as caught:
        await login("prot", cfg, open_browser=nobody)
    assert "no answer from the browser within 1 s" in str(caught.value)
    assert "workbench login prot" in str(caught.value)


async def test_a_refused_consent_is_reported(upstream: Upstream, tmp_path: Path) -> None:
    cfg = server_config(upstream, tmp_path)

    async def deny(url: str) -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            answer = await http.get(url)
            real = httpx2.URL(answer.headers["location"])
            denied = real.copy_with(params={"error": "access_denied", "state": real.params["state"]})
            assert (await http.get(denied)).status_code == 400

    with pytest.raises(Exception) as caught:
        await login("prot", cfg, open_browser=deny)
    assert "refused the login: access_denied" in str(caught.value)


async def test_an_expired_token_is_refreshed_after_a_restart(short_lived: Upstream, tmp_path: Path) -> None:
    cfg = server_config(short_lived, tmp_path)
    await login("prot", cfg, open_browser=follow_redirect)
    storage = storage_for("prot", short_lived.url, cfg.oauth)  # type: ignore[arg-type]
    first = await storage.get_tokens()
    expires_at = await storage.expires_at()
    assert first is not None and expires_at is not None
    await anyio.sleep(max(0.0, expires_at - time.time()) + 0.5)  # the 5 s token has expired
    before = short_lived.log()
    # A new workbench (as after a restart) with no person at hand: it must refresh, not ask for a login.
    assert (await call_whoami(cfg)).startswith("client ")
    assert short_lived.log()[len(before):] == ["refresh_token"]
    second = await storage.get_tokens()
    assert second is not None and second.access_token != first.access_token


async def test_reconnects_with_the_same_tokens_after_the_upstream_restarts(upstream: Upstream, tmp_path: Path) -> None:
    cfg = server_config(upstream, tmp_path)
    await login("prot", cfg, open_browser=follow_redirect)
    async with McpWorkbench.from_config("prot", cfg, mode="legacy", max_backoff=0.5) as wb:
        assert not (await wb.call_tool("whoami", {})).is_error
        upstream.stop()
        upstream.start()  # same port, same issued tokens; the legacy session is gone
        result = await wb.call_tool("whoami", {})
        if result.is_error:  # the call that finds the old connection dead may fail; the next reconnects
            assert "workbench login" not in result.text
            with anyio.fail_after(20):
                while (result := await wb.call_tool("whoami", {})).is_error:
                    await anyio.sleep(0.5)
        assert result.text.startswith("client ")
    assert upstream.log() == ["register", "authorization_code"]  # no new login, no refresh needed


async def test_tokens_never_show_in_repr_logs_or_errors(upstream: Upstream, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    cfg = server_config(upstream, tmp_path)
    caplog.set_level(logging.INFO)
    await login("prot", cfg, open_browser=follow_redirect)
    secrets = upstream.issued()
    assert secrets
    auth = oauth_auth("prot", upstream.url, cfg.oauth)  # type: ignore[arg-type]
    wb = McpWorkbench.from_config("prot", cfg, auth=auth, max_backoff=0.5)
    async with wb:
        shown = [repr(wb), repr(auth), repr(cfg), str(wb.health())]
        # A failure after the tokens were loaded: the server forgot them (revoked), so a login is needed.
        state = json.loads(upstream.state.read_text())
        upstream.stop()
        upstream.state.write_text(json.dumps({**state, "access": {}, "refresh": {}}))
        upstream.start()
        with anyio.fail_after(60):  # the first call may only find the old connection gone
            while "workbench login prot" not in (result := await wb.call_tool("whoami", {})).text:
                assert result.is_error
                await anyio.sleep(0.5)
        assert result.is_error
        shown += [result.text, str(wb.health()), caplog.text]
    leaked = [(s, text) for s in secrets for text in shown if s in text]
    assert not leaked


async def test_logout_deletes_the_tokens(upstream: Upstream, tmp_path: Path) -> None:
    cfg = server_config(upstream, tmp_path)
    outcome = await login("prot", cfg, open_browser=follow_redirect)
    assert logout("prot", cfg) == outcome.token_file
    assert not outcome.token_file.exists()
    assert logout("prot", cfg) is None
    wb = McpWorkbench.from_config("prot", cfg, max_backoff=0.5)
    result = await wb.call_tool("whoami", {})
    assert result.is_error and "workbench login prot" in result.text
    await wb.stop()


async def test_a_server_without_oauth_needs_no_login(tmp_path: Path) -> None:
    with pytest.raises(LoginFailed, match="needs no login"):
        await login("plain", ServerConfig(url="http://127.0.0.1:9/mcp"))


def test_login_required_is_a_workbench_error() -> None:
    assert issubclass(LoginRequired, WorkbenchError)  # the CLI prints it as one line, exit 1


# -- the commands -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def write_config(upstream: Upstream, tmp_path: Path) -> Path:
    path = tmp_path / "workbench.toml"
    path.write_text(f'[servers.prot]\nurl = "{upstream.url}"\n[servers.prot.oauth]\ntoken_dir = "tokens"\n'
                    "login_timeout = 60\n")
    return path


def workbench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


async def test_login_doctor_and_logout_commands(upstream: Upstream, tmp_path: Path) -> None:
    from workbench.cli.config import load_config
    from workbench.cli.doctor import _check_login

    path = write_config(upstream, tmp_path)
    config = load_config(path)
    check = await _check_login("prot", config)
    assert not check.ok and "needs a login" in check.detail and check.hint == "run `workbench login prot`"

    tools = await anyio.to_thread.run_sync(lambda: workbench("tools", "-c", str(path)))
    assert "workbench login prot" in tools.stderr and "Traceback" not in tools.stderr

    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "login", "prot", "--no-browser", "-c", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        url = ""
        with anyio.fail_after(120):
            while not url.startswith("http"):
                line = await anyio.to_thread.run_sync(proc.stdout.readline)
                assert line, f"login ended before printing a URL: {proc.stderr.read() if proc.stderr else ''}"
                url = line.strip()
        await follow_redirect(url)
        out, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=120))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert "logged in to prot (1 tools)" in out
    stored = upstream.issued()
    assert not any(secret in out + err for secret in stored)

    check = await _check_login("prot", config)
    assert check.ok and "logged in" in check.detail

    done = await anyio.to_thread.run_sync(lambda: workbench("logout", "prot", "-c", str(path)))
    assert done.returncode == 0 and "deleted" in done.stdout
    assert not (await _check_login("prot", config)).ok


def test_login_names_what_is_wrong_with_the_server(tmp_path: Path) -> None:
    path = tmp_path / "workbench.toml"
    path.write_text('[servers.plain]\nurl = "http://127.0.0.1:9/mcp"\n')
    unknown = workbench("login", "nope", "-c", str(path))
    assert unknown.returncode == 2 and "no server 'nope'" in unknown.stderr
    plain = workbench("login", "plain", "-c", str(path))
    assert plain.returncode == 2 and "needs no login" in plain.stderr
