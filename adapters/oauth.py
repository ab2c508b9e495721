"""OAuth 2.1 for upstream MCP servers, built on the SDK's `OAuthClientProvider`.

The SDK runs the MCP authorization flow itself: protected-resource discovery from a 401's
`WWW-Authenticate` (with the well-known fallbacks), authorization-server metadata (RFC 8414
and OpenID discovery), client registration (pre-registered, Client ID Metadata Document or
RFC 7591), PKCE S256, resource indicators, scope selection and step-up, `iss` checks and
refresh. This module only chooses the provider a `[servers.X.oauth]` section asks for and
gives it what the SDK leaves to the application:

- the tokens' store (`adapters.token_store`), with the expiry restored on start, so a
  restarted workbench refreshes an expired token instead of sending it and starting over;
- what happens when a person is needed: in `workbench login` a browser (`adapters.oauth_login`);
  anywhere else (`serve`, `tools`, `doctor`) `LoginRequired`, which says which command to run,
  instead of waiting for a person who is not there.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata
from pydantic import AnyUrl

from adapters.tls import tls_trust
from adapters.token_store import FileTokenStorage, token_path
from workbench.core import WorkbenchError

if TYPE_CHECKING:
    from adapters.config import OAuthConfig

REDIRECT_PATH = "/callback"

RedirectHandler = Callable[[str], Awaitable[None]]
CallbackHandler = Callable[[], Awaitable[AuthorizationCodeResult]]


class LoginRequired(WorkbenchError):
    """The server wants a person to authorize this client, and none is at hand."""


class _OneLineFlowErrors(logging.Filter):
    """The SDK logs every failed OAuth flow with its traceback (`logger.exception`) before raising.
    The error reaches the caller anyway, with a message that says what to do; the log keeps one
    line of it, and the traceback only when debugging."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not logging.getLogger().isEnabledFor(logging.DEBUG):
            record.msg = f"{record.getMessage()}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            record.args = None
            record.exc_info = None
        return True


logging.getLogger("mcp.client.auth.oauth2").addFilter(_OneLineFlowErrors())


@dataclass(frozen=True)
class Interaction:
    """How the authorization-code flow reaches a person: `redirect` shows them the URL,
    `callback` waits for the code to come back to `redirect_uri`."""

    redirect_uri: str
    redirect: RedirectHandler
    callback: CallbackHandler


def login_hint(name: str) -> str:
    return f"MCP server {name!r} needs a login: run `workbench login {name}`"


def storage_for(name: str, url: str, cfg: OAuthConfig, base_dir: Path | None = None) -> FileTokenStorage:
    token_dir = None
    if cfg.token_dir is not None:
        token_dir = Path(cfg.token_dir).expanduser()
        if not token_dir.is_absolute() and base_dir is not None:
            token_dir = base_dir / token_dir
    return FileTokenStorage(token_path(name, url, token_dir))


def oauth_auth(
    name: str,
    url: str,
    cfg: OAuthConfig,
    *,
    base_dir: Path | None = None,
    storage: FileTokenStorage | None = None,
    interaction: Interaction | None = None,
) -> httpx2.Auth:
    """The `httpx2.Auth` for `McpWorkbench.http(url, auth=…)` that `cfg` describes.

    Without `interaction`, a flow that needs a person raises `LoginRequired`."""
    storage = storage or storage_for(name, url, cfg, base_dir)
    scope = " ".join(cfg.scopes) or None
    if cfg.grant == "client_credentials":
        assert cfg.client_id is not None  # OAuthConfig validates it
        if cfg.auth_method == "private_key_jwt":
            assert cfg.private_key_file is not None
            signer = SignedJWTParameters(issuer=cfg.client_id, subject=cfg.client_id,
                                         signing_key=_read_key(name, cfg.private_key_file, base_dir),
                                         signing_algorithm=cfg.signing_algorithm)
            return _PrivateKeyJwt(url, storage, cfg.client_id, signer.create_assertion_provider(), scope=scope,
                                  issuer=cfg.issuer)
        assert cfg.client_secret is not None and cfg.auth_method in ("client_secret_basic", "client_secret_post")
        return _ClientCredentials(url, storage, cfg.client_id, cfg.client_secret.get_secret_value(),
                                  cfg.auth_method, scope=scope, issuer=cfg.issuer)
    if cfg.grant == "identity_assertion":
        assert cfg.client_id and cfg.client_secret and cfg.issuer  # OAuthConfig validates them
        assert cfg.auth_method in ("client_secret_basic", "client_secret_post")
        return _IdentityAssertion(url, storage, cfg.client_id, cfg.client_secret.get_secret_value(), cfg.issuer,
                                  _IdJagExchange(name, cfg), scope=scope,
                                  token_endpoint_auth_method=cfg.auth_method)
    if interaction is None:
        interaction = _no_person(name, cfg)
    metadata = OAuthClientMetadata(
        client_name=cfg.client_name,
        redirect_uris=[AnyUrl(interaction.redirect_uri)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=cfg.auth_method,
        scope=scope,
    )
    fixed = None
    if cfg.client_id and not cfg.metadata_url:  # pre-registered: never register, never store the secret
        secret = cfg.client_secret.get_secret_value() if cfg.client_secret else None
        fixed = OAuthClientInformationFull(client_id=cfg.client_id, client_secret=secret,
                                           redirect_uris=[AnyUrl(interaction.redirect_uri)],
                                           token_endpoint_auth_method=cfg.auth_method, scope=scope)
    return _AuthorizationCode(url, metadata, storage, interaction.redirect, interaction.callback,
                              client_metadata_url=cfg.metadata_url, fixed_client=fixed)


def _read_key(name: str, path: str, base_dir: Path | None) -> str:
    key = Path(path).expanduser()
    if not key.is_absolute() and base_dir is not None:
        key = base_dir / key
    try:
        return key.read_text(encoding="utf-8")
    except OSError as e:
        raise WorkbenchError(f"servers.{name}.oauth.private_key_file: cannot read {key}: {e.strerror}") from None


def _no_person(name: str, cfg: OAuthConfig) -> Interaction:
    async def refuse(_url: str) -> None:
        raise LoginRequired(login_hint(name))

    async def never() -> AuthorizationCodeResult:  # pragma: no cover - `refuse` raised first
        raise LoginRequired(login_hint(name))

    # A registration made here (before the flow finds no person) is reused by `workbench login`,
    # which then listens on the port it names.
    return Interaction(loopback_uri(cfg.redirect_port or _free_port()), refuse, never)


def loopback_uri(port: int) -> str:
    return f"http://127.0.0.1:{port}{REDIRECT_PATH}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class InsecureAuthorizationServer(WorkbenchError):
    """The upstream sent the OAuth flow to an authorization server over plain http."""


def _cleartext(url: httpx2.URL) -> bool:
    """http:// to anything but this machine (OAuth 2.1 allows plain http for loopback only)."""
    if url.scheme != "http":
        return False
    if url.host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(url.host).is_loopback
    except ValueError:
        return True


async def _https_only(
    flow: AsyncGenerator[httpx2.Request, httpx2.Response], request: httpx2.Request, server_url: str,
) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
    """`flow` (an SDK provider's `_auth_flow`), refusing every request of it except the MCP
    request itself that would go to a non-loopback plain-http URL."""
    try:
        outgoing = await flow.__anext__()
        while True:
            if outgoing is not request and _cleartext(outgoing.url):
                raise _insecure(server_url, outgoing.url)
            response = yield outgoing
            outgoing = await flow.asend(response)
    except StopAsyncIteration:
        return
    finally:
        await flow.aclose()


def _insecure(server_url: str, url: httpx2.URL) -> InsecureAuthorizationServer:
    where = url.copy_with(query=None, fragment=None, userinfo=b"")
    return InsecureAuthorizationServer(
        f"the OAuth flow of {server_url} leads to {where}, which is plain http: refused (codes, tokens and "
        "secrets would cross the network in cleartext); the authorization server must use https")


class _HttpsOnly(OAuthClientProvider):
    """The MCP server names the authorization server (its protected-resource metadata), and that
    server's metadata names the token endpoint: an upstream could send codes, refresh tokens and
    client secrets there in cleartext. The SDK checks no scheme, so every request of the flow
    except the MCP request itself must be https (or loopback)."""

    def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        return _https_only(super()._auth_flow(request), request, self.context.server_url)


# The SDK keeps a token's expiry in memory only; these restore it from the file on start.


class _AuthorizationCode(_HttpsOnly):
    def __init__(
        self,
        server_url: str,
        metadata: OAuthClientMetadata,
        storage: FileTokenStorage,
        redirect: RedirectHandler,
        callback: CallbackHandler,
        *,
        client_metadata_url: str | None,
        fixed_client: OAuthClientInformationFull | None,
    ) -> None:
        super().__init__(server_url, metadata, storage, redirect, callback, client_metadata_url=client_metadata_url)
        self._fixed_client = fixed_client

    async def _initialize(self) -> None:
        await super()._initialize()
        if self._fixed_client is not None:
            self.context.client_info = self._fixed_client
        await _restore_expiry(self)

    def __repr__(self) -> str:
        return f"OAuth(authorization_code, {self.context.storage!r})"


class _ClientCredentials(_HttpsOnly, ClientCredentialsOAuthProvider):
    async def _initialize(self) -> None:
        await super()._initialize()
        await _restore_expiry(self)

    def __repr__(self) -> str:
        return f"OAuth(client_credentials, {self.context.storage!r})"


class _PrivateKeyJwt(_HttpsOnly, PrivateKeyJWTOAuthProvider):
    async def _initialize(self) -> None:
        await super()._initialize()
        await _restore_expiry(self)

    def __repr__(self) -> str:
        return f"OAuth(client_credentials with private_key_jwt, {self.context.storage!r})"


class _IdentityAssertion(IdentityAssertionOAuthProvider):
    """The SDK's SEP-990 provider sends the ID-JAG and the client secret only to the configured
    issuer; the configured issuer may still be plain http, which this refuses."""

    def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        return _https_only(super()._auth_flow(request), request, str(request.url))

    def __repr__(self) -> str:
        return f"OAuth(identity_assertion, {self._storage!r})"


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
_MAX_IDP_RESPONSE = 64 * 1024  # an ID-JAG is a JWT of a few kilobytes
IDP_TIMEOUT = 15.0


class _IdJagExchange:
    """SEP-990 leg 1, which the SDK leaves to the application: the user's ID token, exchanged at
    the enterprise IdP (RFC 8693) for an ID-JAG naming the MCP authorization server (`audience`)
    and the MCP server (`resource`). The IdP's answer is untrusted: size-bounded, and its shape
    checked before the ID-JAG goes anywhere."""

    def __init__(self, name: str, cfg: OAuthConfig) -> None:
        assert cfg.id_token and cfg.idp_token_endpoint and cfg.idp_client_id
        self._where = f"servers.{name}.oauth.idp_token_endpoint"
        self._endpoint = httpx2.URL(cfg.idp_token_endpoint)
        self._id_token = cfg.id_token
        self._client_id = cfg.idp_client_id
        self._client_secret = cfg.idp_client_secret

    async def __call__(self, audience: str, resource: str) -> str:
        if _cleartext(self._endpoint):
            raise _insecure(resource, self._endpoint)
        data = {"grant_type": TOKEN_EXCHANGE, "subject_token": self._id_token.get_secret_value(),
                "subject_token_type": ID_TOKEN_TYPE, "requested_token_type": ID_JAG_TYPE,
                "audience": audience, "resource": resource, "client_id": self._client_id}
        if self._client_secret is not None:
            data["client_secret"] = self._client_secret.get_secret_value()
        try:
            async with httpx2.AsyncClient(timeout=IDP_TIMEOUT, follow_redirects=False, verify=tls_trust()) as http:
                async with http.stream("POST", self._endpoint, data=data,
                                       headers={"Accept": "application/json"}) as response:
                    body = await _read_bounded(response, self._where)
        except httpx2.HTTPError as e:
            raise WorkbenchError(f"{self._where}: the ID-JAG exchange failed: {type(e).__name__}: {e}") from None
        if response.status_code != 200:
            raise WorkbenchError(f"{self._where}: the IdP refused the ID token ({response.status_code}: "
                                 f"{body[:300].decode(errors='replace')}); get a fresh ID token and retry")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("issued_token_type") != ID_JAG_TYPE \
                or not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
            raise WorkbenchError(f"{self._where}: the IdP's answer is not an ID-JAG (RFC 8693 response with "
                                 f"issued_token_type {ID_JAG_TYPE})")
        jag: str = answer["access_token"]
        return jag


async def _read_bounded(response: httpx2.Response, where: str) -> bytes:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > _MAX_IDP_RESPONSE:
            raise WorkbenchError(f"{where}: the IdP's answer exceeds {_MAX_IDP_RESPONSE} bytes: refused")
    return body


async def _restore_expiry(provider: OAuthClientProvider) -> None:
    storage = provider.context.storage
    if isinstance(storage, FileTokenStorage) and provider.context.current_tokens is not None:
        provider.context.token_expiry_time = await storage.expires_at()
