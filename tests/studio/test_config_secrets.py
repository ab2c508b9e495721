"""`/ui/api/config` with a real config full of secrets (loaded by the CLI's `load_config`, served
by real HTTP): no secret reaches the response — env and header values, bearer tokens, OAuth client
secrets, secrets in argument lists, URL credentials and query parameters, well-known credential
shapes — while what a person needs to read (names, hosts, where a secret comes from) stays; and
on a server for several people only an administrator (`workbench:admin`) sees the config at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from studio_harness import studio_http

from servers.studio.config_view import MASK, mask_secrets, mask_text
from servers.studio.health_api import ADMIN_SCOPE
from workbench import CompositeWorkbench, StaticWorkbench
from workbench.cli.config import load_config
from workbench.cli.studio import studio_factory

pytestmark = pytest.mark.anyio

SECRETS = {
    "ARGSECRET1", "ARGSECRET2", "ARGSECRET3", "ARGSECRET4", "ENVSECRET1", "QUERYSECRET1", "QUERYSECRET2",
    "HEADERSECRET1", "HEADERSECRET2", "BEARERSECRET", "USERINFOSECRET", "CLIENTSECRET", "MODELKEYSECRET",
    "BASEURLSECRET", "ALICETOKENSECRET", "INTROSPECTSECRET", "ghp_0123456789abcdefghijABCDEFGHIJ012345",
}
CONFIG = """
[servers.gh]
command = "npx"
args = ["-y", "server-github", "--api-key", "ARGSECRET1", "--token=ARGSECRET2", "-e", "GITHUB_TOKEN=ARGSECRET3",
        "--header", "Authorization: Bearer ARGSECRET4", "ghp_0123456789abcdefghijABCDEFGHIJ012345"]
env = { GITHUB_PERSONAL_ACCESS_TOKEN = "ENVSECRET1", LOG_LEVEL = "debug" }

[servers.remote]
url = "https://mcp.example.com/mcp?api_key=QUERYSECRET1&apiKey=QUERYSECRET2&region=eu"
headers = { Authorization = "Bearer HEADERSECRET1", "X-Api-Key" = "HEADERSECRET2" }
bearer_token = "BEARERSECRET"
enabled = false

[servers.userinfo]
url = "https://USERINFOSECRET@git.example.com/mcp"
enabled = false

[servers.oauthed]
url = "https://auth.example.com/mcp"
enabled = false
[servers.oauthed.oauth]
client_id = "workbench-client"
client_secret = "CLIENTSECRET"

[models.default]
model = "gpt-test"
api_key = "MODELKEYSECRET"
api_key_env = "OPENAI_API_KEY"
base_url = "https://user:BASEURLSECRET@llm.example.com/v1"

[serve]
transport = "http"
[serve.tokens]
alice = "ALICETOKENSECRET"
[serve.oauth]
issuer = "https://login.example.com"
resource = "https://tools.example.com/mcp"
introspection_endpoint = "https://login.example.com/introspect"
introspection_client_id = "wb"
introspection_client_secret = "INTROSPECTSECRET"
"""
ADMIN, BOB = "admin-" + "a" * 26, "bob-" + "b" * 28


def hello() -> str:
    """Say hello."""
    return "hello"


def tools() -> CompositeWorkbench:
    return CompositeWorkbench({"fn": StaticWorkbench([hello], name="fn")})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def leaked(text: str) -> list[str]:
    return sorted(secret for secret in SECRETS if secret in text)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "workbench.toml"
    path.write_text(CONFIG)
    return path


async def test_one_person_sees_the_config_and_no_secret_in_it(config_file: Path) -> None:
    factory = studio_factory(load_config(config_file), config_file)
    async with studio_http(tools(), studio=factory) as studio:  # WORKBENCH_TOKEN only: its holder runs the server
        response = await studio.http.get("/ui/api/config", headers=studio.auth())
    assert response.status_code == 200
    assert leaked(response.text) == []
    config = response.json()["config"]
    gh, remote = config["servers"]["gh"], config["servers"]["remote"]
    # What a person needs to read stays: names, flags, hosts, where a secret comes from.
    assert gh["args"] == ["-y", "server-github", "--api-key", MASK, f"--token={MASK}", "-e", f"GITHUB_TOKEN={MASK}",
                          "--header", f"Authorization: {MASK}", MASK]
    assert gh["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": MASK, "LOG_LEVEL": MASK}
    assert remote["url"] == f"https://mcp.example.com/mcp?api_key={MASK}&apiKey={MASK}&region=eu"
    assert remote["headers"] == {"Authorization": MASK, "X-Api-Key": MASK}
    assert config["servers"]["userinfo"]["url"] == f"https://{MASK}@git.example.com/mcp"
    assert config["servers"]["oauthed"]["oauth"]["client_id"] == "workbench-client"
    assert config["models"]["default"]["api_key_env"] == "OPENAI_API_KEY"
    assert config["models"]["default"]["base_url"] == f"https://user:{MASK}@llm.example.com/v1"
    assert config["serve"]["oauth"]["token_cache_seconds"] == 30  # a duration, not a token


async def test_on_a_shared_server_only_an_administrator_sees_the_config(config_file: Path) -> None:
    factory = studio_factory(load_config(config_file), config_file)
    tokens = {"admin": {"token": ADMIN, "scopes": [ADMIN_SCOPE]}, "bob": {"token": BOB}}
    async with studio_http(tools(), studio=factory, token=None, tokens=tokens) as studio:
        refused = await studio.http.get("/ui/api/config", headers=bearer(BOB))
        assert refused.status_code == 403
        assert ADMIN_SCOPE in refused.json()["error_description"]
        assert "servers" not in refused.text and leaked(refused.text) == []
        # The rest of the Health page is everyone's.
        assert (await studio.http.get("/ui/api/health", headers=bearer(BOB))).status_code == 200

        shown = await studio.http.get("/ui/api/config", headers=bearer(ADMIN))
        assert shown.status_code == 200 and "gh" in shown.json()["config"]["servers"]
        assert leaked(shown.text) == []


async def test_on_a_shared_server_only_an_administrator_runs_or_reads_the_checks() -> None:
    """The checks name every configured server with its errors, and running them starts each one."""
    runs: list[int] = []

    async def checks() -> list[dict[str, object]]:
        runs.append(1)
        return [{"name": "server hidden-from-bob", "ok": False, "detail": "refused", "hint": "", "required": True}]

    tokens = {"admin": {"token": ADMIN, "scopes": [ADMIN_SCOPE]}, "bob": {"token": BOB}}
    async with studio_http(tools(), token=None, tokens=tokens, context={"checks": checks}) as studio:
        for query in ("", "?again=1"):
            refused = await studio.http.get(f"/ui/api/health/checks{query}", headers=bearer(BOB))
            assert refused.status_code == 403 and ADMIN_SCOPE in refused.json()["error_description"]
            assert "hidden-from-bob" not in refused.text
        assert runs == []
        shown = await studio.http.get("/ui/api/health/checks", headers=bearer(ADMIN))
        assert shown.status_code == 200 and shown.json()["checks"][0]["name"] == "server hidden-from-bob"
        assert runs == [1]


def test_the_last_word_of_a_key_says_whether_it_holds_a_secret() -> None:
    masked = mask_secrets({
        "access_token": "a1", "X-Auth-Token": "a2", "apiKey": "a3", "APIKEY": "a4", "private_key": "a5",
        "token_dir": "~/.tokens", "private_key_file": "/k.pem", "auth_token_env": "WORKBENCH_TOKEN",
        "max_tokens": 100, "token_endpoint_auth_method": "client_secret_post", "password": 12345,
    })
    assert [masked[k] for k in ("access_token", "X-Auth-Token", "apiKey", "APIKEY", "private_key", "password")] \
        == [MASK] * 6
    assert masked["token_dir"] == "~/.tokens" and masked["private_key_file"] == "/k.pem"
    assert masked["auth_token_env"] == "WORKBENCH_TOKEN" and masked["max_tokens"] == 100
    assert masked["token_endpoint_auth_method"] == "client_secret_post"


def test_credential_shapes_are_masked_wherever_they_stand_and_prose_is_not() -> None:
    assert mask_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl") == MASK
    assert mask_text("run with sk-proj-0123456789abcdefXYZ now") == f"run with {MASK} now"
    assert mask_text("key AKIAABCDEFGHIJKLMNOP") == f"key {MASK}"
    assert mask_text("Uses bearer authentication and a token per person") == \
        "Uses bearer authentication and a token per person"
    assert json.dumps(mask_secrets({"system_message": "Answer briefly."})) == '{"system_message": "Answer briefly."}'


def test_urls_are_masked_wherever_they_stand() -> None:
    assert mask_text("--url=https://u:pw1@h.example/x?token=t2&a=1") == f"--url=https://u:{MASK}@h.example/x?token={MASK}&a=1"
    assert mask_text("see https://tok3@h.example/ first") == f"see https://{MASK}@h.example/ first"
    assert mask_text("redis://:pw4@redis:6379/0") == f"redis://:{MASK}@redis:6379/0"
    assert mask_text("https://h.example/mcp?region=eu") == "https://h.example/mcp?region=eu"


async def test_the_doctors_checks_are_masked_too() -> None:
    """A check's detail quotes what it checked: a model's base_url, an upstream's error."""
    async def checks() -> list[dict[str, object]]:
        return [{"name": "model default", "ok": True, "detail": "gpt at https://user:BASEURLSECRET@llm.example.com/v1",
                 "hint": "", "required": False},
                {"name": "server gh", "ok": False, "detail": "refused Authorization: Bearer HEADERSECRET1",
                 "hint": "check ghp_0123456789abcdefghijABCDEFGHIJ012345", "required": True}]

    async with studio_http(tools(), context={"checks": checks}) as studio:
        response = await studio.http.get("/ui/api/health/checks", headers=studio.auth())
    assert leaked(response.text) == []
    model, server = response.json()["checks"]
    assert model["detail"] == f"gpt at https://user:{MASK}@llm.example.com/v1"
    assert server["detail"] == f"refused Authorization: {MASK}" and server["hint"] == f"check {MASK}"
