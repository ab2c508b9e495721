"""`workbench serve` as an OAuth 2.1 resource server, against a real authorization server
(tests/authserver.py) and real clients: the SDK's `OAuthClientProvider` completing the
authorization-code flow headlessly, crafted bad tokens each refused for its own reason,
JWKS rotation without hammering the issuer, opaque tokens by introspection, named static
tokens beside OAuth, and no client token ever passed upstream."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
import uvicorn
from authserver import AuthServer
from joserfc.jwk import RSAKey
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl
from serving import SCRIPT, Served, free_port, http_client, script_env, serving
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.mcp import McpWorkbench
from servers import ServeSettings
from servers.logs import JsonLines
from servers.oauth_resource import OAuthConfig
from workbench import CallContext, StaticWorkbench

pytestmark = pytest.mark.anyio
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


async def principal(ctx: CallContext) -> dict[str, Any]:
    """Who the server says is calling: identity, scopes, a few claims, session."""
    return {"identity": ctx.identity, "scopes": sorted(ctx.scopes), "session": ctx.session_id,
            "claims": {k: ctx.claims.get(k) for k in ("iss", "sub", "groups", "token_name")}}


def bench() -> StaticWorkbench:
    return StaticWorkbench([principal], name="rs")


@contextlib.asynccontextmanager
async def protected(auth: AuthServer, **oauth: Any) -> AsyncIterator[tuple[Served, OAuthConfig]]:
    """A workbench served with `[serve.oauth]` naming `auth` (plus `oauth` overrides)."""
    port = free_port()
    tokens = oauth.pop("tokens", {})
    config = OAuthConfig(issuer=auth.issuer, resource=f"http://127.0.0.1:{port}/mcp", **oauth)
    # These tests present many bad tokens on purpose; the guess budget has tests/servers/test_failed_auth.py.
    settings = ServeSettings(transport="http", oauth=config, tokens=tokens, failed_auth_per_minute=1000)
    async with serving(bench(), settings, port=port) as served:
        yield served, config


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call_principal(served: Served, token: str, mode: str = "auto") -> dict[str, Any]:
    async with http_client(served.url, mode=mode, headers=bearer(token)) as client:
        result = await client.call_tool("principal", {})
    assert not result.is_error, result.content
    return dict(result.structured_content or {})


# ---- the SDK's OAuth client, end to end --------------------------------------------------------
class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def headless_provider(server_url: str) -> tuple[OAuthClientProvider, MemoryStorage]:
    """The SDK's provider with the browser step done by an HTTP GET: the AS approves at once and
    redirects to our loopback redirect URI, whose query we hand back as the callback would."""
    storage = MemoryStorage()
    redirected: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
            response = await browser.get(url)
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        redirected.update({k: v[0] for k, v in query.items()})

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirected["code"], state=redirected.get("state"),
                                       iss=redirected.get("iss"))

    metadata = OAuthClientMetadata(client_name="workbench-tests", redirect_uris=[AnyUrl("http://127.0.0.1:1/callback")],
                                   grant_types=["authorization_code", "refresh_token"], response_types=["code"],
                                   token_endpoint_auth_method="client_secret_post")
    provider = OAuthClientProvider(server_url, metadata, storage, redirect_handler, callback_handler)
    return provider, storage


async def test_the_sdk_client_completes_the_authorization_code_flow_against_serve(mode: str) -> None:
    auth = AuthServer()
    async with auth.running(), protected(auth, required_scopes=["tools:call"]) as (served, config):
        provider, storage = headless_provider(served.url)
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            from mcp import Client
            from mcp.client.streamable_http import streamable_http_client

            async with Client(streamable_http_client(served.url, http_client=http), mode=mode) as client:
                result = await client.call_tool("principal", {})
        who = result.structured_content or {}
        assert who["identity"] == "alice" and "tools:call" in who["scopes"]
        assert who["claims"]["iss"] == auth.issuer and who["claims"]["sub"] == "alice"
        # It went the whole way: our metadata → the AS → registration → PKCE → a token for this resource.
        assert storage.client is not None and storage.tokens is not None
        claims = json.loads(base64.urlsafe_b64decode(storage.tokens.access_token.split(".")[1] + "=="))
        assert claims["aud"] == config.resource
        assert auth.requests["token"] == 1


async def test_an_expired_token_is_refreshed_by_the_sdk_client_and_refused_by_us() -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    auth = AuthServer(token_lifetime=2)
    async with auth.running(), protected(auth, leeway=0) as (served, config):
        provider, storage = headless_provider(served.url)
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            async with Client(streamable_http_client(served.url, http_client=http), mode="auto") as client:
                assert (await client.call_tool("principal", {})).structured_content["identity"] == "alice"  # type: ignore[index]
            assert storage.tokens is not None
            first = storage.tokens.access_token
            await anyio.sleep(2.5)
            async with httpx2.AsyncClient(timeout=10) as plain:
                stale = await plain.post(served.url, json=INIT, headers={**HEADERS, **bearer(first)})
            assert stale.status_code == 401 and "expired" in stale.json()["error_description"]
            async with Client(streamable_http_client(served.url, http_client=http), mode="auto") as client:
                assert (await client.call_tool("principal", {})).structured_content["identity"] == "alice"  # type: ignore[index]
        assert storage.tokens.access_token != first
        assert auth.requests["grant:authorization_code"] == 1 and auth.requests["grant:refresh_token"] == 1


async def test_metadata_and_the_401_challenge_name_each_other() -> None:
    auth = AuthServer()
    async with auth.running(), protected(auth, required_scopes=["tools:call"]) as (served, config), \
            httpx2.AsyncClient(timeout=10) as http:
        metadata_url = f"{served.base}/.well-known/oauth-protected-resource/mcp"
        metadata = (await http.get(metadata_url)).json()  # public: no token needed
        assert metadata["resource"] == config.resource
        assert [u.rstrip("/") for u in metadata["authorization_servers"]] == [auth.issuer]
        assert metadata["scopes_supported"] == ["tools:call"]

        bare = await http.post(served.url, json=INIT, headers=HEADERS)
        assert bare.status_code == 401
        challenge = bare.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url}"' in challenge
        assert 'scope="tools:call"' in challenge and "error=" not in challenge  # RFC 6750: no error without a token

        forged = await http.post(served.url, json=INIT, headers={**HEADERS, **bearer("not-a-token")})
        assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["www-authenticate"]
        assert "Traceback" not in forged.text and "authentication failed" in forged.json()["error_description"]


async def test_a_token_without_the_required_scope_gets_403_insufficient_scope() -> None:
    auth = AuthServer()
    async with auth.running(), protected(auth, required_scopes=["tools:call"]) as (served, config), \
            httpx2.AsyncClient(timeout=10) as http:
        token = auth.mint("alice", audience=config.resource, scope="profile")
        refused = await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(token)})
        assert refused.status_code == 403
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        assert 'scope="tools:call"' in refused.headers["www-authenticate"]
        assert (await http.post(served.url, json=INIT, headers={
            **HEADERS, **bearer(auth.mint("alice", audience=config.resource, scope="tools:call"))})).status_code == 200


# ---- each bad token, refused for its own reason ---------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(auth: AuthServer, resource: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": auth.issuer, "sub": "mallory", "aud": resource, "exp": now + 300, "scope": "tools:call", **over}


def wrong_audience(auth: AuthServer, resource: str) -> str:
    return auth.mint("mallory", audience="http://127.0.0.1:1/another-server")


def wrong_issuer(auth: AuthServer, resource: str) -> str:
    return auth.mint("mallory", audience=resource, iss="http://127.0.0.1:1")


def expired(auth: AuthServer, resource: str) -> str:
    return auth.mint("mallory", audience=resource, exp=int(time.time()) - 120)


def not_yet_valid(auth: AuthServer, resource: str) -> str:
    return auth.mint("mallory", audience=resource, nbf=int(time.time()) + 600)


def tampered(auth: AuthServer, resource: str) -> str:
    header, _, signature = auth.mint("mallory", audience=resource).split(".")
    payload = _b64(json.dumps(_claims(auth, resource, sub="alice")).encode())  # claim to be someone else
    return f"{header}.{payload}.{signature}"


def alg_none(auth: AuthServer, resource: str) -> str:
    return _unsigned({"alg": "none", "typ": "JWT", "kid": auth.signing_key.kid}, _claims(auth, resource)) + "."


def hs256_with_the_public_key(auth: AuthServer, resource: str) -> str:
    # The classic confusion: sign with HMAC, using the issuer's *public* key as the shared secret.
    public_pem = auth.signing_key.as_pem(private=False)
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": auth.signing_key.kid}, _claims(auth, resource))
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def unknown_kid(auth: AuthServer, resource: str) -> str:
    stranger = RSAKey.generate_key(2048)  # a key the issuer never published
    stranger.ensure_kid()
    return auth.mint("mallory", audience=resource, key=stranger)


def no_expiry(auth: AuthServer, resource: str) -> str:
    return auth.mint("mallory", audience=resource, exp=None)


def no_subject(auth: AuthServer, resource: str) -> str:
    return auth.mint("mallory", audience=resource, sub=None, client_id=None)


BAD_TOKENS = {
    wrong_audience: "wrong audience", wrong_issuer: "wrong issuer", expired: "expired",
    not_yet_valid: "not valid yet", tampered: "bad signature", alg_none: "algorithm 'none' not accepted",
    hs256_with_the_public_key: "algorithm 'HS256' not accepted", unknown_kid: "unknown signing key",
    no_expiry: "missing claim exp", no_subject: "no subject",
}


async def test_each_bad_jwt_is_refused_for_its_reason_and_logged_without_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workbench")
    auth = AuthServer()
    async with auth.running(), protected(auth, leeway=30) as (served, config), \
            httpx2.AsyncClient(timeout=10) as http:
        good = auth.mint("alice", audience=config.resource)
        assert (await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(good)})).status_code == 200
        presented = []
        for craft, reason in BAD_TOKENS.items():
            token = craft(auth, config.resource)
            presented.append(token)
            response = await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(token)})
            assert response.status_code == 401, (craft.__name__, response.text)
            assert reason in response.json()["error_description"], (craft.__name__, response.text)
        still = await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(good)})
        assert still.status_code == 200
    reasons = [r.reason for r in caplog.records if r.getMessage() == "authentication failed"]  # type: ignore[attr-defined]
    assert all(any(expected in logged for logged in reasons) for expected in BAD_TOKENS.values()), reasons
    lines = "\n".join(JsonLines().format(r) for r in caplog.records)
    assert not any(token in lines or token.split(".")[1] in lines for token in presented)


async def test_a_small_clock_skew_is_tolerated_but_not_more() -> None:
    auth = AuthServer()
    async with auth.running(), protected(auth, leeway=30) as (served, config), httpx2.AsyncClient(timeout=10) as http:
        now = int(time.time())
        skewed = auth.mint("alice", audience=config.resource, nbf=now + 10)  # the issuer's clock runs 10 s ahead
        assert (await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(skewed)})).status_code == 200
        just_expired = auth.mint("alice", audience=config.resource, exp=now - 10)
        assert (await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(just_expired)})).status_code == 200


async def test_a_verified_token_is_reused_but_never_past_its_expiry() -> None:
    auth = AuthServer()
    async with auth.running(), protected(auth, leeway=0, token_cache_seconds=60) as (served, config), \
            httpx2.AsyncClient(timeout=10) as http:
        token = auth.mint("alice", audience=config.resource, lifetime=2)
        for _ in range(3):
            assert (await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(token)})).status_code == 200
        await anyio.sleep(2.5)
        late = await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(token)})
        assert late.status_code == 401 and "expired" in late.json()["error_description"]


async def test_es256_tokens_and_a_list_audience_are_accepted() -> None:
    auth = AuthServer(alg="ES256")
    async with auth.running(), protected(auth) as (served, config):
        token = auth.mint("bob", audience=["https://other.example", config.resource], groups=["eng"])
        who = await call_principal(served, token)
        assert who["identity"] == "bob" and who["claims"]["groups"] == ["eng"] and who["scopes"] == ["tools:call"]


# ---- the issuer's keys: rotated, fetched sparingly -----------------------------------------------
async def test_a_rotated_key_is_picked_up_and_made_up_kids_do_not_hammer_the_issuer() -> None:
    auth = AuthServer()
    async with auth.running(), protected(auth, jwks_refetch_interval=2) as (served, config), \
            httpx2.AsyncClient(timeout=10) as http:

        async def status(token: str) -> int:
            return (await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(token)})).status_code

        assert await status(auth.mint("alice", audience=config.resource)) == 200
        assert auth.requests["jwks"] == 1  # discovered through the AS metadata, then cached
        for _ in range(5):
            assert await status(auth.mint("alice", audience=config.resource)) == 200
        assert auth.requests["jwks"] == 1

        # A flood of tokens naming kids nobody published: at most one refetch per interval.
        for _ in range(40):
            made_up = auth.mint("mallory", audience=config.resource, header={"kid": secrets.token_hex(8)})
            assert await status(made_up) == 401
        assert auth.requests["jwks"] <= 2, auth.requests

        # The issuer rotates; after the interval a token under the new key makes us refetch once.
        auth.rotate()
        auth.retire()
        await anyio.sleep(2.1)
        assert await status(auth.mint("alice", audience=config.resource)) == 200
        fetched = auth.requests["jwks"]
        assert await status(auth.mint("alice", audience=config.resource)) == 200
        assert auth.requests["jwks"] == fetched


async def test_an_oversized_or_redirecting_jwks_is_not_taken() -> None:
    """The issuer is untrusted input too: its answers are size-bounded, and not followed elsewhere."""
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse, Response
    from starlette.routing import Route

    from servers.oauth_resource import MAX_DOCUMENT_BYTES, Jwks

    async def huge(request: Any) -> Response:
        return Response(b'{"keys": [' + b" " * (MAX_DOCUMENT_BYTES + 1) + b"]}", media_type="application/json")

    async def elsewhere(request: Any) -> Response:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/", status_code=302)

    port = free_port()
    app = Starlette(routes=[Route("/huge", huge), Route("/elsewhere", elsewhere)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with anyio.create_task_group() as tg, httpx2.AsyncClient(timeout=5, follow_redirects=False) as http:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            for path, complaint in (("huge", "more than"), ("elsewhere", "HTTP 302")):
                config = OAuthConfig(issuer="https://as.example", resource="https://rs.example/mcp",
                                     jwks_uri=f"http://127.0.0.1:{port}/{path}")
                with pytest.raises(ValueError, match=complaint):
                    await Jwks(config, http).fetch()
        finally:
            server.should_exit = True


# ---- opaque tokens: introspection ---------------------------------------------------------------
async def test_opaque_tokens_are_introspected_and_a_revoked_one_is_refused() -> None:
    auth = AuthServer(opaque=True)
    async with auth.running():
        client_id, secret = auth.register_resource_server()
        async with protected(auth, introspection_endpoint=f"{auth.issuer}/introspect",
                             introspection_client_id=client_id, introspection_client_secret=secret,
                             token_cache_seconds=0) as (served, config), \
                httpx2.AsyncClient(timeout=10) as http:
            token = auth.issue_opaque("carol", config.resource)
            assert (await call_principal(served, token))["identity"] == "carol"

            other_resource = auth.issue_opaque("carol", "http://127.0.0.1:1/elsewhere")
            refused = await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(other_resource)})
            assert refused.status_code == 401 and "wrong audience" in refused.json()["error_description"]

            revoke = await http.post(f"{auth.issuer}/revoke", data={"token": token}, auth=(client_id, secret))
            assert revoke.status_code == 200
            revoked = await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(token)})
            assert revoked.status_code == 401 and "inactive" in revoked.json()["error_description"]


async def test_introspection_answers_are_cached_briefly() -> None:
    auth = AuthServer(opaque=True)
    async with auth.running():
        client_id, secret = auth.register_resource_server()
        async with protected(auth, introspection_endpoint=f"{auth.issuer}/introspect",
                             introspection_client_id=client_id, introspection_client_secret=secret,
                             token_cache_seconds=30) as (served, config), \
                httpx2.AsyncClient(timeout=10) as http:
            token = auth.issue_opaque("carol", config.resource)
            for _ in range(5):
                assert (await http.post(served.url, json=INIT, headers={**HEADERS, **bearer(token)})).status_code == 200
            assert auth.requests["introspect"] == 1


async def test_a_flood_of_made_up_opaque_tokens_reaches_the_issuer_a_few_at_a_time() -> None:
    from servers.oauth_resource import MAX_CONCURRENT_INTROSPECTIONS

    auth = AuthServer(opaque=True)
    auth.introspection_delay = 0.2
    async with auth.running():
        client_id, secret = auth.register_resource_server()
        async with protected(auth, introspection_endpoint=f"{auth.issuer}/introspect",
                             introspection_client_id=client_id, introspection_client_secret=secret,
                             http_timeout=10) as (served, config), \
                httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=50)) as http:
            statuses: list[int] = []

            async def one(i: int) -> None:
                headers = {**HEADERS, **bearer(f"made-up-opaque-token-{i}")}
                statuses.append((await http.post(served.url, json=INIT, headers=headers)).status_code)

            async with anyio.create_task_group() as tg:
                for i in range(32):
                    tg.start_soon(one, i)
            assert statuses == [401] * 32
            assert auth.requests["introspect"] == 32
            assert auth.most_introspecting <= MAX_CONCURRENT_INTROSPECTIONS


async def test_a_machine_identity_from_the_client_credentials_grant() -> None:
    auth = AuthServer()
    auth.register_client("nightly-builder", "builder-secret-0123456789", scope="tools:call")
    async with auth.running(), protected(auth) as (served, config), httpx2.AsyncClient(timeout=10) as http:
        answer = await http.post(f"{auth.issuer}/token", auth=("nightly-builder", "builder-secret-0123456789"),
                                 data={"grant_type": "client_credentials", "resource": config.resource})
        who = await call_principal(served, answer.json()["access_token"])
        assert who["identity"] == "nightly-builder"


# ---- named static tokens beside OAuth ---------------------------------------------------------------
async def test_named_static_tokens_work_beside_oauth(mode: str) -> None:
    auth = AuthServer()
    ops_token = "ops-static-token-0123456789abcdef"
    tokens = {"ops": {"token": ops_token, "scopes": ["tools:admin"]}, "ci": "ci-static-token-0123456789abcdef"}
    async with auth.running(), protected(auth, tokens=tokens) as (served, config):
        ops = await call_principal(served, ops_token, mode)
        assert ops["identity"] == "ops" and ops["scopes"] == ["tools:admin"] and ops["claims"]["token_name"] == "ops"
        assert (await call_principal(served, "ci-static-token-0123456789abcdef", mode))["identity"] == "ci"
        assert (await call_principal(served, auth.mint("alice", audience=config.resource), mode))["identity"] == "alice"
        assert ops_token not in json.dumps(ops)


# ---- never pass a client's token upstream ---------------------------------------------------------
class RecordAuthorization:
    def __init__(self, app: ASGIApp, seen: list[str | None]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(next((v.decode() for k, v in scope["headers"] if k == b"authorization"), None))
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def recording_upstream() -> AsyncIterator[tuple[str, list[str | None]]]:
    upstream = MCPServer("upstream")

    @upstream.tool()
    def ping() -> str:
        return "pong"

    seen: list[str | None] = []
    port = free_port()
    app = RecordAuthorization(upstream.streamable_http_app(), seen)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}/mcp", seen
        finally:
            server.should_exit = True


async def test_a_clients_token_never_reaches_an_upstream_server(mode: str) -> None:
    auth = AuthServer()
    async with auth.running(), recording_upstream() as (upstream_url, seen):
        port = free_port()
        config = OAuthConfig(issuer=auth.issuer, resource=f"http://127.0.0.1:{port}/mcp")
        gateway = McpWorkbench.http(upstream_url, bearer_token="gateway-own-credential", name="up")
        async with serving(gateway, ServeSettings(transport="http", oauth=config), port=port) as served:
            token = auth.mint("alice", audience=config.resource)
            async with http_client(served.url, mode=mode, headers=bearer(token)) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                result = await client.call_tool(names[0], {})
            assert result.content[0].text == "pong"  # type: ignore[union-attr]
    assert seen, "the upstream was never called"
    assert all(token not in (h or "") for h in seen)
    assert set(seen) == {"Bearer gateway-own-credential"}  # only the gateway's own credential


# ---- configuration ----------------------------------------------------------------------------------
def test_named_tokens_and_oauth_from_the_config_file(tmp_path: Any) -> None:
    from workbench.cli.config import parse_config

    text = """
[serve]
transport = "http"
[serve.tokens]
alice = "${ALICE_TOKEN}"
ci = { token = "${CI_TOKEN}", scopes = ["tools:call"] }
[serve.oauth]
issuer = "https://login.example.com"
resource = "https://tools.example.com/mcp"
required_scopes = ["tools:call"]
"""
    env = {"ALICE_TOKEN": "alice-secret-0123456789", "CI_TOKEN": "ci-secret-0123456789ab"}
    cfg = parse_config(text, source="workbench.toml", fmt="toml", environ=env)
    settings = ServeSettings.from_config(cfg.serve, environ={})
    settings.check()
    assert settings.tokens["ci"].scopes == ["tools:call"] and settings.oauth is not None
    assert settings.oauth.metadata_url() == "https://tools.example.com/.well-known/oauth-protected-resource/mcp"
    assert "alice-secret" not in repr(settings) and "alice-secret" not in str(cfg)


@pytest.mark.parametrize(("tokens", "complaint"), [
    ({"alice": "short"}, "at least 16"),
    ({"alice": ""}, "empty"),
    ({"alice": "same-secret-0123456789", "bob": "same-secret-0123456789"}, "same token"),
])
def test_weak_or_shared_named_tokens_are_refused(tokens: dict[str, str], complaint: str) -> None:
    from servers.settings import ServeError

    with pytest.raises(ServeError, match=complaint):
        ServeSettings(transport="http", tokens=tokens).check()  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["HS256", "none", "RS1"])
def test_only_asymmetric_algorithms_can_be_configured(alg: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        OAuthConfig(issuer="https://as.example", resource="https://rs.example/mcp", algorithms=[alg])


def test_oauth_alone_may_serve_beyond_loopback() -> None:
    config = OAuthConfig(issuer="https://as.example", resource="https://tools.example/mcp")
    ServeSettings(transport="http", host="0.0.0.0", oauth=config, allowed_hosts=["tools.example"]).check()


async def test_doctor_fetches_the_issuers_keys_or_says_why_not() -> None:
    from workbench.cli.config import parse_config
    from workbench.cli.doctor import _check_serve_auth

    auth = AuthServer()
    template = '[serve]\ntransport = "http"\n[serve.oauth]\nissuer = "{issuer}"\nresource = "https://tools.example/mcp"\n'
    async with auth.running():
        ok = await _check_serve_auth(parse_config(template.format(issuer=auth.issuer), source="t.toml", fmt="toml"))
    assert ok.ok and "1 signing key" in ok.detail
    down = await _check_serve_auth(parse_config(template.format(issuer=f"http://127.0.0.1:{free_port()}"),
                                                source="t.toml", fmt="toml"))
    assert not down.ok and "cannot fetch its keys" in down.detail and "serve.oauth" in down.hint


async def test_readyz_shows_its_details_to_an_authenticated_caller_only() -> None:
    auth = AuthServer()
    async with auth.running(), protected(auth) as (served, config), httpx2.AsyncClient(timeout=10) as http:
        ready = f"{served.base}/readyz"
        anonymous = (await http.get(ready)).json()
        forged = (await http.get(ready, headers=bearer(auth.mint("x", audience="http://elsewhere")))).json()
        holder = (await http.get(ready, headers=bearer(auth.mint("alice", audience=config.resource)))).json()
        assert "sessions" not in anonymous and "sessions" not in forged
        assert "sessions" in holder and "inflight_calls" in holder


async def test_the_workbench_serve_command_takes_named_tokens_and_oauth_from_its_config(tmp_path: Any) -> None:
    """The real CLI process: `[serve.tokens]` and `[serve.oauth]` read from the TOML (secrets from the
    environment), the metadata served, each kind of token judged."""
    auth = AuthServer()
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    cfg = tmp_path / "workbench.toml"
    cfg.write_text(f"""
[servers.bench]
command = "{sys.executable}"
args = ["{SCRIPT}", "stdio"]

[sandbox]
enabled = false

[serve]
transport = "http"
port = {port}
[serve.tokens]
ops = "${{OPS_TOKEN}}"
[serve.oauth]
issuer = "{auth.issuer}"
resource = "{resource}"
""")
    ops = "ops-token-from-the-environment-0123"
    env = script_env(OPS_TOKEN=ops)
    env.pop("WORKBENCH_TOKEN", None)
    async with auth.running():
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--config", str(cfg)], env=env,
                                cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            async with httpx2.AsyncClient(timeout=10) as http:
                with anyio.fail_after(60):
                    while True:
                        try:
                            if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                                break
                        except httpx2.TransportError:
                            await anyio.sleep(0.2)
                metadata = await http.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp")
                assert metadata.json()["resource"] == resource

                async def status(token: str | None) -> int:
                    headers = {**HEADERS, **(bearer(token) if token else {})}
                    return (await http.post(resource, json=INIT, headers=headers)).status_code

                assert await status(None) == 401
                assert await status(ops) == 200
                assert await status(auth.mint("alice", audience=resource)) == 200
                assert await status(auth.mint("alice", audience="http://127.0.0.1:1/other")) == 401
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=30)
    assert ops.encode() not in stderr and b"Traceback" not in stderr
