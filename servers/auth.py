"""Who is calling over HTTP: one authentication middleware with pluggable token verifiers.

Every request but the health probes and the protected-resource metadata carries
`Authorization: Bearer <token>`. A verifier turns the token into the SDK's `AccessToken`
(`mcp.server.auth.provider`), or refuses it with a reason:

- `StaticTokens`: named shared secrets (`WORKBENCH_TOKEN` for one person, `[serve.tokens]`
  for a small team), compared in constant time; the identity is the token's name.
- `JwtVerifier` / `IntrospectionVerifier` (servers/oauth_resource.py): OAuth 2.1 access tokens
  from an authorization server; the identity is the token's subject.

The middleware puts the principal where the SDK looks for it (`scope["user"]` as an
`AuthenticatedUser`, `scope["auth"]`): the SDK's session manager then answers a 2025-era
`Mcp-Session-Id` presented with another principal's credential with 404, as if unknown. A
refusal is 401 with `WWW-Authenticate` naming the protected-resource metadata (RFC 9728) and
the scope, or 403 `insufficient_scope`. Every refusal is logged (reason, client address, path);
the presented token never is: it may be a real secret sent to the wrong server.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from servers.sessions import ANONYMOUS_IDENTITY, client_address
from workbench.core import logger

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
"""RFC 9728 metadata is public: a client reads it to learn where to get a token."""
MAX_TOKEN_CHARS = 16 * 1024
"""Longer bearer tokens are refused before any parsing (real JWTs are a few KB at most)."""
UNNAMED_TOKEN_PREFIX = "token-"


class TokenRejected(Exception):
    """A presented token is not accepted; `reason` is safe to log and to tell the client."""

    def __init__(self, reason: str, *, status: int = 401, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.error = error


class NotOurs(TokenRejected):
    """The verifier does not know this token; the next one may (`FirstOf`)."""

    def __init__(self) -> None:
        super().__init__("invalid")


class Verifier:
    """Turns a bearer token into the principal it stands for (the SDK's `AccessToken`), or raises
    `TokenRejected`."""

    async def check(self, token: str) -> AccessToken:
        raise NotImplementedError

    def claims_token(self, token: str) -> bool:
        """Whether this verifier is the one to judge `token` (the first that claims it decides)."""
        return True


def fingerprint(token: str) -> str:
    """A stable stand-in for a token in `AccessToken.token`: the secret itself is not carried
    past this middleware, so nothing downstream (an upstream call, a log line) can leak it."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


class StaticTokens(Verifier):
    """Named shared secrets. Each presented token is compared with every configured one in
    constant time (no early exit), so timing reveals neither a secret nor which name matched."""

    def __init__(self, tokens: Mapping[str, str], scopes: Mapping[str, Sequence[str]] | None = None) -> None:
        self._tokens = [(name, secret.strip().encode()) for name, secret in tokens.items()]
        self._scopes = {name: list(s) for name, s in (scopes or {}).items()}

    @classmethod
    def single(cls, token: str) -> StaticTokens:
        """`WORKBENCH_TOKEN`: one person. Its identity is a stable pseudonym of the token (never the token)."""
        return cls({UNNAMED_TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:16]: token})

    async def check(self, token: str) -> AccessToken:
        presented = token.encode()
        matched: str | None = None
        for name, secret in self._tokens:
            if hmac.compare_digest(presented, secret) and matched is None:
                matched = name
        if matched is None:
            raise NotOurs()
        return AccessToken(token=fingerprint(token), client_id=matched, subject=matched,
                           scopes=self._scopes.get(matched, []), claims={"token_name": matched})


class FirstOf(Verifier):
    """Static tokens first (cheap), then the OAuth verifier that claims the token's shape."""

    def __init__(self, verifiers: Sequence[Verifier]) -> None:
        self.verifiers = list(verifiers)

    async def check(self, token: str) -> AccessToken:
        for verifier in self.verifiers:
            if verifier.claims_token(token):
                try:
                    return await verifier.check(token)
                except NotOurs:
                    continue
        raise TokenRejected("invalid")


def identity_of(access: AccessToken) -> str:
    """The identity of an authenticated principal: a static token's name, or the token's subject."""
    return access.subject or access.client_id


def scope_identity(scope: Scope) -> str:
    """The identity the middleware authenticated for this request; `anonymous` with auth off
    (an unverified header could be anything, so it must not pick an identity)."""
    user = scope.get("user")
    return identity_of(user.access_token) if isinstance(user, AuthenticatedUser) else ANONYMOUS_IDENTITY


def scope_access(scope: Scope) -> AccessToken | None:
    user = scope.get("user")
    return user.access_token if isinstance(user, AuthenticatedUser) else None


async def verify_bearer(verifier: Verifier, authorization: str | None) -> AccessToken:
    """The principal an `Authorization` header's bearer token stands for (also Studio's login)."""
    if not authorization:
        raise TokenRejected("missing")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise TokenRejected("wrong scheme")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected("invalid")
    return await verifier.check(token)


class Authenticate:
    """ASGI middleware: every request but the open paths carries a token `verifier` accepts.
    `required_scopes` are named in the challenge (the OAuth verifiers enforce them)."""

    def __init__(self, app: ASGIApp, verifier: Verifier, *, required_scopes: Sequence[str] = (),
                 resource_metadata_url: str | None = None) -> None:
        self.app = app
        self.verifier = verifier
        self.required_scopes = list(required_scopes)
        self.resource_metadata_url = resource_metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        if path in OPEN_PATHS or path.startswith(METADATA_PREFIX):
            # Open to all; a valid token still says who asks (a health probe shows its holder more).
            if authorization is not None:
                try:
                    self._authenticated(scope, await self._authenticate(authorization))
                except TokenRejected:
                    pass
            await self.app(scope, receive, send)
            return
        try:
            access = await self._authenticate(authorization)
        except TokenRejected as e:
            logger.warning("authentication failed", extra={
                "reason": e.reason, "client": client_address(scope), "method": scope["method"], "path": path,
            })
            await self._refusal(e, presented=authorization is not None)(scope, receive, send)
            return
        self._authenticated(scope, access)
        await self.app(scope, receive, send)

    @staticmethod
    def _authenticated(scope: Scope, access: AccessToken) -> None:
        # Where the SDK looks: its session manager ties each 2025-era session to this principal.
        scope["user"] = AuthenticatedUser(access)
        scope["auth"] = AuthCredentials(access.scopes)

    async def _authenticate(self, authorization: str | None) -> AccessToken:
        return await verify_bearer(self.verifier, authorization)

    def _refusal(self, error: TokenRejected, *, presented: bool) -> JSONResponse:
        # RFC 6750 §3: no error code when no credentials were presented; RFC 9728 §5.1: name the metadata.
        params = []
        if presented:
            params.append(f'error="{error.error}"')
        if self.resource_metadata_url:
            params.append(f'resource_metadata="{self.resource_metadata_url}"')
        if self.required_scopes:
            params.append(f'scope="{" ".join(self.required_scopes)}"')
        challenge = "Bearer " + ", ".join(params) if params else "Bearer"
        hint = ("get a token with the scopes named in WWW-Authenticate" if error.status == 403
                else "send 'Authorization: Bearer <token>'")
        return JSONResponse(
            {"error": error.error if presented else "unauthorized",
             "error_description": f"authentication failed ({error.reason}): {hint}"},
            status_code=error.status,
            headers={"WWW-Authenticate": challenge},
        )
