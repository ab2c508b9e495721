"""A real OAuth 2.1 authorization server for the tests, on a loopback port in the test's event loop.

Built on joserfc (keys, JWKS, signed JWT access tokens, RS256 and ES256) and authlib (PKCE
S256, token generation); served by uvicorn over real HTTP. It speaks:

- RFC 8414 metadata (`/.well-known/oauth-authorization-server`) and the JWKS (`/jwks`);
- dynamic client registration (RFC 7591, `/register`);
- the authorization code grant with PKCE (S256 only), approved headlessly: `/authorize`
  redirects straight back with a code for `default_subject` (a test sets who "logs in");
- refresh tokens, the client-credentials grant (client_secret_basic / client_secret_post);
- RFC 8707 resource indicators: an access token's `aud` is the `resource` the client asked for;
- RFC 7662 introspection (`/introspect`, for registered resource servers) and RFC 7009 revocation.

Access tokens are JWTs by default, or opaque (`opaque=True`, only introspection knows them).
`mint()` signs arbitrary tokens with the server's keys, so tests can craft exactly the bad
token they mean; `rotate()` replaces the signing key (the old one stays published until
`retire()`); `requests` counts the hits per path (to prove the JWKS is not hammered).
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import anyio
import uvicorn
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

Key = RSAKey | ECKey


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Client:
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    auth_method: str
    scope: str | None = None


@dataclass
class Grant:
    """An authorization code, or a refresh token, or an opaque access token: who, for what."""

    client_id: str
    subject: str
    scope: str
    resource: str | None
    expires_at: float
    code_challenge: str | None = None
    redirect_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AuthServer:
    def __init__(self, *, alg: str = "RS256", opaque: bool = False, token_lifetime: int = 300,
                 scopes: tuple[str, ...] = ("tools:call", "tools:admin")) -> None:
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.alg = alg
        self.opaque = opaque
        self.token_lifetime = token_lifetime
        self.scopes = scopes
        self.default_subject = "alice"
        self.default_claims: dict[str, Any] = {}
        self.keys: list[Key] = [self._new_key()]
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.opaque_tokens: dict[str, Grant] = {}
        self.revoked: set[str] = set()
        self.requests: Counter[str] = Counter()
        self.introspection_delay = 0.0
        self.introspecting = self.most_introspecting = 0
        self.app = Starlette(routes=[
            Route("/.well-known/oauth-authorization-server", self._metadata, methods=["GET"]),
            Route("/jwks", self._jwks, methods=["GET"]),
            Route("/register", self._register, methods=["POST"]),
            Route("/authorize", self._authorize, methods=["GET"]),
            Route("/token", self._token, methods=["POST"]),
            Route("/introspect", self._introspect, methods=["POST"]),
            Route("/revoke", self._revoke, methods=["POST"]),
        ])

    # ---- keys and tokens the tests craft --------------------------------------------------
    def _new_key(self) -> Key:
        key: Key = RSAKey.generate_key(2048) if self.alg.startswith(("RS", "PS")) else ECKey.generate_key("P-256")
        key.ensure_kid()
        return key

    @property
    def signing_key(self) -> Key:
        return self.keys[-1]

    def rotate(self) -> Key:
        """A new signing key; the old ones stay in the JWKS until `retire()`."""
        self.keys.append(self._new_key())
        return self.signing_key

    def retire(self) -> None:
        self.keys = [self.signing_key]

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet(list(self.keys)).as_dict(private=False))

    def mint(self, subject: str = "alice", *, audience: str | list[str] | None, scope: str = "tools:call",
             lifetime: int | None = None, header: dict[str, Any] | None = None, key: Any = None,
             **claims: Any) -> str:
        """A JWT access token signed with the current key (or `key`), with the given claims on top."""
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.issuer, "sub": subject, "client_id": f"client-of-{subject}",
                                   "iat": now, "exp": now + (lifetime or self.token_lifetime), "scope": scope,
                                   "jti": secrets.token_hex(8), **self.default_claims}
        if audience is not None:
            payload["aud"] = audience
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}  # None: leave the claim out
        signing = key if key is not None else self.signing_key
        head = {"alg": self.alg, "typ": "at+jwt", "kid": signing.kid, **(header or {})}
        return jwt.encode(head, payload, signing, algorithms=[head["alg"]])

    def _access_token(self, grant: Grant) -> str:
        if self.opaque:
            token = secrets.token_urlsafe(32)
            self.opaque_tokens[token] = Grant(grant.client_id, grant.subject, grant.scope, grant.resource,
                                              time.time() + self.token_lifetime)
            return token
        return self.mint(grant.subject, audience=grant.resource, scope=grant.scope, client_id=grant.client_id)

    # ---- serving ---------------------------------------------------------------------------
    @asynccontextmanager
    async def running(self) -> AsyncIterator[AuthServer]:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield self
            finally:
                server.should_exit = True

    def register_resource_server(self, client_id: str = "resource-server") -> tuple[str, str]:
        """Credentials a resource server introspects with."""
        secret = secrets.token_urlsafe(16)
        self.clients[client_id] = Client(client_id, secret, [], "client_secret_basic")
        return client_id, secret

    def register_client(self, client_id: str, secret: str, scope: str = "tools:call") -> None:
        """A confidential machine client (client credentials grant)."""
        self.clients[client_id] = Client(client_id, secret, [], "client_secret_basic", scope)

    # ---- endpoints -------------------------------------------------------------------------
    async def _metadata(self, request: Request) -> Response:
        self.requests["metadata"] += 1
        return JSONResponse({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "registration_endpoint": f"{self.issuer}/register",
            "jwks_uri": f"{self.issuer}/jwks",
            "introspection_endpoint": f"{self.issuer}/introspect",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": list(self.scopes),
            "authorization_response_iss_parameter_supported": True,
        })

    async def _jwks(self, request: Request) -> Response:
        self.requests["jwks"] += 1
        return JSONResponse(self.jwks())

    async def _register(self, request: Request) -> Response:
        body = await request.json()
        redirect_uris = body.get("redirect_uris") or []
        if not redirect_uris:
            return _error("invalid_redirect_uri", "redirect_uris required")
        method = body.get("token_endpoint_auth_method") or "client_secret_post"
        client = Client(secrets.token_hex(8), None if method == "none" else secrets.token_urlsafe(24),
                        list(redirect_uris), method, body.get("scope"))
        self.clients[client.client_id] = client
        answer = {**body, "client_id": client.client_id, "token_endpoint_auth_method": method,
                  "client_id_issued_at": int(time.time())}
        if client.client_secret:
            answer["client_secret"] = client.client_secret
        return JSONResponse(answer, status_code=201)

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        client = self.clients.get(q.get("client_id", ""))
        if client is None or q.get("redirect_uri") not in client.redirect_uris:
            return _error("invalid_request", "unknown client or redirect_uri")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return _error("invalid_request", "PKCE with S256 is required")
        code = secrets.token_urlsafe(24)
        # Headless consent: the "user" is `default_subject`, and approves at once.
        self.codes[code] = Grant(client.client_id, self.default_subject, q.get("scope") or " ".join(self.scopes),
                                 q.get("resource"), time.time() + 60, q["code_challenge"], q["redirect_uri"])
        query = urlencode({"code": code, "state": q.get("state", ""), "iss": self.issuer})
        return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=302)

    def _client_auth(self, request: Request, form: Any) -> Client | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        client = self.clients.get(client_id)
        if client is None:
            return None
        if client.client_secret is None:
            return client  # a public client: PKCE is its proof
        return client if secret and secrets.compare_digest(secret, client.client_secret) else None

    async def _token(self, request: Request) -> Response:
        self.requests["token"] += 1
        form = await request.form()
        client = self._client_auth(request, form)
        if client is None:
            return _error("invalid_client", "client authentication failed", 401)
        grant_type = form.get("grant_type")
        self.requests[f"grant:{grant_type}"] += 1
        if grant_type == "authorization_code":
            grant = self.codes.pop(str(form.get("code", "")), None)
            verifier = str(form.get("code_verifier", ""))
            if (grant is None or grant.client_id != client.client_id or grant.expires_at < time.time()
                    or grant.redirect_uri != form.get("redirect_uri")
                    or create_s256_code_challenge(verifier) != grant.code_challenge):
                return _error("invalid_grant", "bad code, redirect_uri or code_verifier")
            resource = form.get("resource") or grant.resource
            grant.resource = str(resource) if resource else None
        elif grant_type == "refresh_token":
            grant = self.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if grant is None or grant.client_id != client.client_id:
                return _error("invalid_grant", "unknown refresh token")
        elif grant_type == "client_credentials":
            if client.client_secret is None:
                return _error("unauthorized_client", "public clients cannot use client credentials")
            resource = form.get("resource")
            grant = Grant(client.client_id, client.client_id, str(form.get("scope") or client.scope or ""),
                          str(resource) if resource else None, 0)
        else:
            return _error("unsupported_grant_type", str(grant_type))
        answer: dict[str, Any] = {"access_token": self._access_token(grant), "token_type": "Bearer",
                                  "expires_in": self.token_lifetime, "scope": grant.scope}
        if grant_type != "client_credentials":
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = grant
            answer["refresh_token"] = refresh
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def _introspect(self, request: Request) -> Response:
        self.requests["introspect"] += 1
        self.introspecting += 1
        self.most_introspecting = max(self.most_introspecting, self.introspecting)
        try:
            await anyio.sleep(self.introspection_delay)
        finally:
            self.introspecting -= 1
        form = await request.form()
        if self._client_auth(request, form) is None:
            return _error("invalid_client", "introspection needs client authentication", 401)
        token = str(form.get("token", ""))
        grant = self.opaque_tokens.get(token)
        if grant is None or token in self.revoked or grant.expires_at < time.time():
            return JSONResponse({"active": False})
        return JSONResponse({
            "active": True, "iss": self.issuer, "sub": grant.subject, "client_id": grant.client_id,
            "scope": grant.scope, "aud": grant.resource, "exp": int(grant.expires_at), "token_type": "Bearer",
            **self.default_claims,
        })

    async def _revoke(self, request: Request) -> Response:
        form = await request.form()
        if self._client_auth(request, form) is None:
            return _error("invalid_client", "revocation needs client authentication", 401)
        token = str(form.get("token", ""))
        self.revoked.add(token)
        self.refresh_tokens.pop(token, None)
        return Response(status_code=200)

    def issue_opaque(self, subject: str, resource: str, scope: str = "tools:call") -> str:
        """An opaque access token as the token endpoint would issue it."""
        token = secrets.token_urlsafe(32)
        self.opaque_tokens[token] = Grant(f"client-of-{subject}", subject, scope, resource,
                                          time.time() + self.token_lifetime)
        return token


def _error(code: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)
