"""Studio's test harness.

- `studio_server`: a real `workbench serve --transport http` on (a copy of) examples/workbench.toml,
  as a subprocess started from this checkout, with a bearer token (one per test session).
- `browser` / `page`: Playwright driving Debian's Chromium (Playwright's own download is not
  reachable here); `page` is logged in through the real login form.
- `shot(page, name)`: a full-page screenshot under tests/studio/screenshots/ (gitignored).
- API tests serve a workbench in-process with `studio_harness.studio_http`.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from studio_harness import StudioServer, free_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 90.0
"""Seconds for `workbench serve` to listen: it starts the MCP servers and warms the sandbox pool."""


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    """`workbench serve` on the example config, exactly as a user starts it (from this checkout)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    token = secrets.token_urlsafe(24)
    folder = tmp_path_factory.mktemp("studio")
    config = example_folder(folder) / "workbench.toml"
    config.write_text((ROOT / "examples" / "workbench.toml").read_text())
    with workbench_serve(config, {"WORKBENCH_TOKEN": token}) as (base, log):
        yield StudioServer(base, token, log, config)


POLICY_CONFIG = """
[servers.demo]
command = "${WORKBENCH_PYTHON}"
args = ["servers/demo_server.py"]
timeout = 30

[serve]
transport = "http"

[serve.tokens.alice]
token = "ALICE"
scopes = ["workbench:admin"]

[serve.tokens.bob]
token = "BOB"

[[serve.policy.rules]]
identities = ["alice"]
tools = ["demo__*"]
require_approval = ["demo__add"]

[[serve.policy.rules]]
identities = ["bob"]
tools = ["demo__*"]
deny_tools = ["demo__add"]
"""


@pytest.fixture(scope="session")
def policy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """`workbench serve` for two people with named tokens and a policy: alice (an administrator) may
    call demo__add after approving it, bob may not call it at all. (Its base URL, each person's token.)"""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    tokens = {"alice": secrets.token_urlsafe(24), "bob": secrets.token_urlsafe(24)}
    config = example_folder(tmp_path_factory.mktemp("policy")) / "workbench.toml"
    config.write_text(POLICY_CONFIG.replace('"ALICE"', f'"{tokens["alice"]}"').replace('"BOB"', f'"{tokens["bob"]}"'))
    with workbench_serve(config, {}) as (base, _):
        yield base, tokens


LIMITED_CONFIG = """
[sandbox]
enabled = false

[servers.demo]
command = "${WORKBENCH_PYTHON}"
args = ["servers/demo_server.py"]

[serve]
transport = "http"

[serve.limits]
requests_per_minute = 4
"""


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`workbench serve` whose API allows 4 requests a minute per identity: (base URL, token)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    token = secrets.token_urlsafe(24)
    config = example_folder(tmp_path_factory.mktemp("limited")) / "workbench.toml"
    config.write_text(LIMITED_CONFIG)
    with workbench_serve(config, {"WORKBENCH_TOKEN": token}) as (base, _):
        yield base, token


SECRETS_CONFIG = """
[sandbox]
enabled = false

[servers.demo]
command = "${WORKBENCH_PYTHON}"
args = ["servers/demo_server.py"]
env = { DEMO_TOKEN = "ENV-SECRET-1" }

[servers.remote]
command = "npx"
args = ["-y", "mcp-remote", "https://mcp.example.com/mcp?api_key=QUERY-SECRET-2", "--header",
        "Authorization: Bearer ARG-SECRET-3"]
enabled = false

[servers.web]
url = "https://mcp.example.com/mcp"
headers = { Authorization = "Bearer HEADER-SECRET-4" }
enabled = false

[serve]
transport = "http"

[serve.tokens.admin]
token = "ADMIN"
scopes = ["workbench:admin"]

[serve.tokens.bob]
token = "BOB"
"""


@pytest.fixture(scope="module")
def secrets_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """`workbench serve` on a config holding secrets (their values end in `-SECRET-<n>`), for an
    administrator (scope workbench:admin) and bob: (base URL, each person's token)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    tokens = {"admin": secrets.token_urlsafe(24), "bob": secrets.token_urlsafe(24)}
    config = example_folder(tmp_path_factory.mktemp("secrets")) / "workbench.toml"
    config.write_text(SECRETS_CONFIG.replace('"ADMIN"', f'"{tokens["admin"]}"').replace('"BOB"', f'"{tokens["bob"]}"'))
    with workbench_serve(config, {}) as (base, _):
        yield base, tokens


def example_folder(folder: Path) -> Path:
    """A folder for a copy of an example config, its relative paths kept by links."""
    (folder / "examples").mkdir()
    (folder / "examples" / "servers").symlink_to(ROOT / "examples" / "servers")
    (folder / "node_modules").symlink_to(ROOT / "node_modules")
    return folder / "examples"


@contextmanager
def workbench_serve(config: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`workbench serve --transport http` on `config`, exactly as a user starts it (from this
    checkout): (its base URL, its log file), stopped (SIGTERM: drained, sandboxes removed) after."""
    port, log = free_port(), config.parent.parent / "serve.log"
    environ = {k: v for k, v in os.environ.items() if k != "WORKBENCH_TOKEN"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve", "-c", str(config), "--transport", "http",
             "--port", str(port)],
            cwd=ROOT, env={**environ, **env, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"workbench serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx2.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"workbench serve did not listen within {START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base, log
    finally:
        process.send_signal(signal.SIGTERM)  # drains, stops the sources, removes its sandbox containers
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        print(f"\nworkbench serve log: {log}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: Playwright's sync API holds an asyncio loop in this thread while
    # it runs, and the async (anyio) tests of the next module could not start their own beside it.
    playwright_sync = pytest.importorskip("playwright.sync_api")
    with playwright_sync.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                              timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page: Any, server: StudioServer, path: str = "/ui/tools") -> None:
    """Through the real login form, as a person does."""
    page.goto(f"{server.base}{path}")
    page.get_by_label("Token").fill(server.token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.base}{path}*")


@pytest.fixture(params=["light"])
def color_scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def page(browser: Any, studio_server: StudioServer, color_scheme: str) -> Iterator[Any]:
    """A logged-in page (its own browser context: cookies do not leak between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme=color_scheme)
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        log_in(page, studio_server)
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    """`shot(page, "tools-add")`: save a full-page screenshot (look at them)."""

    def save(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    return save
