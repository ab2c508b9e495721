"""The Health & config API: live status, the doctor's checks run once for a burst of requests,
the config with every secret masked, and the config file's errors located by file, line and
key — from the real `load_config` of the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from studio_harness import studio_http

from servers.studio.config_view import MASK, config_report, locate_error, mask_secrets
from workbench import CompositeWorkbench, StaticWorkbench
from workbench.cli.config import load_config
from workbench.cli.studio import studio_factory

pytestmark = pytest.mark.anyio


def hello() -> str:
    """Say hello."""
    return "hello"


def tools() -> CompositeWorkbench:
    return CompositeWorkbench({"fn": StaticWorkbench([hello], name="fn")})


async def test_health_reports_the_server_and_each_source() -> None:
    async with studio_http(tools()) as studio:
        data = (await studio.http.get("/ui/api/health", headers=studio.auth())).json()
        assert data["status"] == "ready"
        assert data["sources"]["fn"]["state"] == "up"
        assert data["inflight_calls"] == 0
        studio.server.draining = True
        assert (await studio.http.get("/ui/api/health", headers=studio.auth())).json()["status"] == "draining"


async def test_checks_run_once_for_a_burst_and_again_when_asked() -> None:
    runs = 0

    async def checks() -> list[dict[str, Any]]:
        nonlocal runs
        runs += 1
        await anyio.sleep(0.2)
        return [{"name": "docker engine", "ok": True, "detail": "fine", "hint": "", "required": True}]

    async with studio_http(tools(), context={"checks": checks}) as studio:
        answers: list[Any] = []

        async def ask() -> None:
            answers.append((await studio.http.get("/ui/api/health/checks", headers=studio.auth())).json())

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(ask)
        assert runs == 1  # a reload storm does not start every configured server five times
        assert all(a["checks"][0]["name"] == "docker engine" for a in answers)
        await studio.http.get("/ui/api/health/checks?again=1", headers=studio.auth())
        assert runs == 2


async def test_a_crashing_check_is_reported_not_a_bare_500() -> None:
    async def checks() -> list[dict[str, Any]]:
        raise RuntimeError("docker socket vanished")

    async with studio_http(tools(), context={"checks": checks}) as studio:
        response = await studio.http.get("/ui/api/health/checks", headers=studio.auth())
        assert response.status_code == 500
        assert response.json()["error_description"] == "the checks failed: RuntimeError: docker socket vanished"


async def test_without_the_cli_checks_and_config_say_they_are_not_available() -> None:
    async with studio_http(tools()) as studio:
        assert (await studio.http.get("/ui/api/health/checks", headers=studio.auth())).json()["available"] is False
        assert (await studio.http.get("/ui/api/config", headers=studio.auth())).json() == {"available": False}


def test_every_kind_of_secret_is_masked() -> None:
    config = {
        "servers": {"gh": {"bearer_token": "ghp_secret", "headers": {"X-Api-Key": "k1", "Accept": "json"},
                           "env": {"GITHUB_TOKEN": "ghp_2", "EMPTY": ""}, "url": "https://bob:pw123@example.com/mcp",
                           "command": "node"}},
        "models": {"default": {"api_key": "sk-live", "api_key_env": "OPENAI_API_KEY", "max_tokens": 100}},
        "serve": {"auth_token": "tok", "auth_token_env": "WORKBENCH_TOKEN", "auth_token_file": "/run/token"},
        "clients": [{"client_secret": "s3", "password": 12345}],
    }
    masked = mask_secrets(config)
    text = repr(masked)
    for secret in ("ghp_secret", "k1", "ghp_2", "pw123", "sk-live", "'tok'", "s3", "12345"):
        assert secret not in text, secret
    gh = masked["servers"]["gh"]
    assert gh["headers"] == {"X-Api-Key": MASK, "Accept": MASK}  # header names stay, every value goes
    assert gh["env"] == {"GITHUB_TOKEN": MASK, "EMPTY": ""}
    assert gh["url"] == f"https://bob:{MASK}@example.com/mcp"
    assert gh["command"] == "node"
    # Where a secret comes from is not the secret: shown, so a person can see what to set.
    assert masked["models"]["default"]["api_key_env"] == "OPENAI_API_KEY"
    assert masked["serve"]["auth_token_env"] == "WORKBENCH_TOKEN"
    assert masked["serve"]["auth_token_file"] == "/run/token"
    assert masked["models"]["default"]["max_tokens"] == 100


GOOD = """
[servers.demo]
command = "python"
args = ["x.py"]
timeout = 30

[sandbox]
enabled = false
"""


@pytest.mark.parametrize(("broken", "line", "key", "words"), [
    (GOOD.replace("timeout = 30", 'timeout = "soon"'), 5, "servers.demo.timeout", "number"),
    (GOOD.replace("enabled = false", "enabled = false\nmemroy = '1g'"), 9, "sandbox.memroy", "unknown key"),
    (GOOD.replace("[sandbox]", "[sandbox"), None, None, "not valid TOML"),
])
def test_config_errors_are_located_by_file_line_and_key(tmp_path: Path, broken: str, line: int | None,
                                                         key: str | None, words: str) -> None:
    path = tmp_path / "workbench.toml"
    path.write_text(GOOD)
    loaded = load_config(path)
    path.write_text(broken)
    report = config_report(path, loaded.model_dump(mode="json"), lambda: load_config(path))
    error = report["error"]
    assert error is not None
    assert error["file"] == str(path)
    assert error["line"] == line
    assert error["key"] == key
    assert words in error["message"]
    assert report["config"]["servers"]["demo"]["timeout"] == 30  # what runs is still what was loaded


def test_an_error_without_a_location_keeps_its_message() -> None:
    assert locate_error("something odd") == {"file": None, "line": None, "key": None, "message": "something odd"}


async def test_the_cli_wiring_serves_checks_and_the_masked_config(tmp_path: Path) -> None:
    path = tmp_path / "workbench.toml"
    path.write_text(GOOD + '\n[servers.remote]\nurl = "http://127.0.0.1:9/mcp"\nbearer_token = "hunter2"\n'
                           "enabled = false\n")
    factory = studio_factory(load_config(path), path)
    async with studio_http(tools(), studio=factory) as studio:
        config = (await studio.http.get("/ui/api/config", headers=studio.auth())).json()
        assert config["path"] == str(path) and config["error"] is None
        assert config["config"]["servers"]["remote"]["bearer_token"] == MASK
        assert "hunter2" not in repr(config)
