"""`[servers.X.oauth]`: what it accepts, what it refuses (with what to do), and that the secret
never shows."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import uvicorn
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.config import OAuthConfig, ServerConfig
from adapters.oauth import ID_JAG_TYPE, ID_TOKEN_TYPE, TOKEN_EXCHANGE, _IdJagExchange, oauth_auth
from workbench.cli.config import ConfigError, parse_config
from workbench.core import WorkbenchError


def test_client_id_is_an_id_or_a_metadata_document_url() -> None:
    assert OAuthConfig(client_id="Iv1.abc").metadata_url is None
    assert OAuthConfig(client_id="https://app.example/client.json").metadata_url == "https://app.example/client.json"
    assert OAuthConfig(client_id="https://app.example/").metadata_url is None  # CIMD needs a path
    assert OAuthConfig().client_id is None  # dynamic registration


def test_the_token_endpoint_method_follows_the_credentials() -> None:
    assert OAuthConfig().auth_method == "none"
    assert OAuthConfig(client_id="a", client_secret="s").auth_method == "client_secret_basic"
    machine = OAuthConfig(grant="client_credentials", client_id="bot", private_key_file="k.pem")
    assert machine.auth_method == "private_key_jwt"


@pytest.mark.parametrize(("section", "message"), [
    ({"grant": "client_credentials", "client_id": "bot"}, "needs client_secret or private_key_file"),
    ({"grant": "client_credentials", "client_secret": "s"}, "needs the client_id"),
    ({"token_endpoint_auth_method": "private_key_jwt", "client_id": "a"}, "needs private_key_file"),
    ({"client_id": "a", "token_endpoint_auth_method": "client_secret_post"}, "needs client_secret"),
    ({"client_secret": "s"}, "client_secret without client_id"),
    ({"grant": "client_credentials", "client_id": "bot", "client_secret": "s", "issuer": "auth.example"},
     "issuer must be"),
])
def test_unusable_sections_are_refused_with_what_to_do(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OAuthConfig.model_validate(section)


def test_oauth_needs_a_url_server_without_a_static_token() -> None:
    with pytest.raises(ValueError, match="oauth needs a url server"):
        ServerConfig(command="x", oauth={})
    with pytest.raises(ValueError, match="oauth needs a url server"):
        ServerConfig(url="http://127.0.0.1:1/mcp", bearer_token="t", oauth={})


def test_the_secret_comes_from_the_environment_and_never_shows(tmp_path: Path) -> None:
    text = ('[servers.gh]\nurl = "https://example.test/mcp"\n[servers.gh.oauth]\nclient_id = "app"\n'
            'client_secret = "${GH_SECRET}"\n')
    config = parse_config(text, environ={"GH_SECRET": "s3cr3t-value"}, base_dir=tmp_path)
    oauth = config.servers["gh"].oauth
    assert oauth is not None and oauth.client_secret is not None
    assert oauth.client_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(config) and "s3cr3t-value" not in str(config.model_dump())
    auth = oauth_auth("gh", "https://example.test/mcp", oauth, base_dir=tmp_path)
    assert "s3cr3t-value" not in repr(auth)
    with pytest.raises(ConfigError, match="GH_SECRET is not set"):
        parse_config(text, environ={}, base_dir=tmp_path)


def test_a_missing_private_key_is_named(tmp_path: Path) -> None:
    cfg = OAuthConfig(grant="client_credentials", client_id="bot", private_key_file="keys/bot.pem")
    with pytest.raises(Exception, match=r"private_key_file: cannot read .*keys/bot.pem"):
        oauth_auth("svc", "https://example.test/mcp", cfg, base_dir=tmp_path)


ENTERPRISE = {"grant": "identity_assertion", "client_id": "app", "client_secret": "s", "issuer": "https://as.example",
              "id_token": "ID-TOKEN-SECRET", "idp_token_endpoint": "https://idp.example/token", "idp_client_id": "idp-app"}


@pytest.mark.parametrize(("section", "message"), [
    ({**ENTERPRISE, "issuer": None, "id_token": None}, "identity_assertion needs issuer, id_token"),
    ({**ENTERPRISE, "client_secret": None}, "identity_assertion needs client_secret"),
    ({**ENTERPRISE, "idp_token_endpoint": "idp.example/token"}, "idp_token_endpoint must be"),
    ({"client_id": "a", "id_token": "t"}, "belong to grant = 'identity_assertion'"),
])
def test_unusable_enterprise_sections_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OAuthConfig.model_validate(section)


def test_the_enterprise_grant_uses_the_sdk_provider_and_hides_its_secrets() -> None:
    auth = oauth_auth("corp", "https://mcp.example/mcp", OAuthConfig.model_validate(ENTERPRISE))
    assert isinstance(auth, IdentityAssertionOAuthProvider)
    assert "ID-TOKEN-SECRET" not in repr(auth) and repr(auth).startswith("OAuth(identity_assertion")


@asynccontextmanager
async def idp(answer: Response) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """An enterprise IdP token endpoint on loopback that gives `answer` to every exchange."""
    forms: list[dict[str, str]] = []

    async def token(request: Request) -> Response:
        forms.append({k: str(v) for k, v in (await request.form()).items()})
        return answer

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/token", token, methods=["POST"])]),
                                           log_config=None, access_log=False, lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/token", forms
        finally:
            server.should_exit = True
    sock.close()


def _exchange(endpoint: str) -> _IdJagExchange:
    return _IdJagExchange("corp", OAuthConfig.model_validate({**ENTERPRISE, "idp_token_endpoint": endpoint}))


@pytest.mark.anyio
async def test_the_id_token_is_exchanged_for_an_id_jag_for_this_server() -> None:
    ok = JSONResponse({"access_token": "the.id.jag", "issued_token_type": ID_JAG_TYPE, "token_type": "N_A"})
    async with idp(ok) as (endpoint, forms):
        jag = await _exchange(endpoint)("https://as.example", "https://mcp.example/mcp")
    assert jag == "the.id.jag"
    assert forms == [{"grant_type": TOKEN_EXCHANGE, "subject_token": "ID-TOKEN-SECRET",
                      "subject_token_type": ID_TOKEN_TYPE, "requested_token_type": ID_JAG_TYPE,
                      "audience": "https://as.example", "resource": "https://mcp.example/mcp", "client_id": "idp-app"}]


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "message"), [
    (JSONResponse({"access_token": "an.access.token", "issued_token_type": "urn:ietf:params:oauth:token-type:"
                   "access_token"}), "not an ID-JAG"),
    (Response("not json"), "not an ID-JAG"),
    (JSONResponse({"access_token": "x" * 70_000, "issued_token_type": ID_JAG_TYPE}), "exceeds 65536 bytes"),
    (JSONResponse({"error": "invalid_grant"}, status_code=400), "the IdP refused the ID token \\(400"),
])
async def test_a_bad_idp_answer_is_refused_with_what_happened(answer: Response, message: str) -> None:
    async with idp(answer) as (endpoint, _forms):
        with pytest.raises(WorkbenchError, match=message) as caught:
            await _exchange(endpoint)("https://as.example", "https://mcp.example/mcp")
    assert "ID-TOKEN-SECRET" not in str(caught.value)


@pytest.mark.anyio
async def test_the_id_token_never_goes_to_a_plain_http_idp() -> None:
    with pytest.raises(WorkbenchError, match="plain http"):  # refused before connecting: the host never resolves
        await _exchange("http://idp.attacker.invalid/token")("https://as.example", "https://mcp.example/mcp")
