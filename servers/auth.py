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

Wrong tokens are counted per client address (`FailedAuthentications`), one budget for every door
that asks the same verifier — `/mcp`, the health probes, Studio's login form and its bearer header
— so none of them is a faster way to guess a token: past `serve.failed_auth_per_minute` an
address is answered 429 with Retry-After (and the 401's challenge, so OAuth clients still find the
metadata) before its token is looked at. The address is the TCP peer's: behind a reverse proxy,
uvicorn puts the forwarded client there only when the peer is one of `serve.trusted_proxies`
(servers/listener.py), never on anyone's word.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from weakref import WeakKeyDictionary

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
FAILED_AUTHENTICATIONS_PER_MINUTE = 10.0
"""Default of `serve.failed_auth_per_minute`: wrong tokens one address may present a minute (and at once)."""
MAX_GUESSING_ADDRESSES = 10_000
"""Addresses whose wrong tokens are remembered; past it, newcomers share one budget (`FailedAuthentications`)."""


class TokenRejected(Exception):
    """A presented token is not accepted; `reason` is safe to log and to tell the client.
    `judged` is False when the token could not be judged at all (the authorization server could
    not be asked): that is no wrong guess, and is not counted against the client's address."""

    def __init__(self, reason: str, *, status: int = 401, error: str = "invalid_token", judged: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.error = error
        self.judged = judged


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


class TooManyFailures(Exception):
    """The client's address presented too many wrong tokens; its next one is not even checked."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentications from this address: retry in {retry_after} s")
        self.retry_after = retry_after


@functools.lru_cache(maxsize=4096)  # parsing is microseconds, and the same few clients ask again and again
def guesser_of(host: str) -> str:
    """Who is guessing, for counting: an IPv4 address, or an IPv6 client's /64 — one machine is
    commonly given a whole /64, so counting single addresses would hand it 2**64 budgets."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"  # not an IP (a unix socket's name): as it is, bounded
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return f"{ipaddress.IPv6Address(ip.packed[:8] + bytes(8))}/64"
    return str(ip)


def peer_host(scope: Scope) -> str:
    """The address a request's wrong tokens count against: the peer's host, without its per-connection port."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class FailedAuthentications:
    """Wrong tokens per client address (`guesser_of`), a leaky bucket each: `per_minute` of them at
    once, then one more every 60/`per_minute` s. An address past it is refused before its token is
    looked at, so a guess cannot be told right from wrong; a right token costs nothing.

    Addresses are the attacker's to choose (IPv6 has plenty), so the table is bounded: only
    failures make entries, forgiven ones are dropped, and with `max_addresses` entries still owing,
    every further address shares one overflow budget — a guesser spread over many addresses gets
    that budget, not one each. (The price, only while such an attack fills the table: a newcomer
    whose overflow budget is spent waits like a guesser.)"""

    _OVERFLOW = "\0overflow"
    """The shared slot of addresses the full table has no room for (no host name holds a NUL)."""

    def __init__(self, per_minute: float, *, max_addresses: int = MAX_GUESSING_ADDRESSES) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.burst = float(max(1, math.floor(per_minute)))
        self.max_addresses = max_addresses
        self._owing: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """Guesser → (wrong tokens not yet forgiven, when counted): the least recently failed first."""

    async def verify(self, verifier: Verifier, authorization: str | None, host: str) -> AccessToken:
        """`verify_bearer`, counted against `host`: `TooManyFailures` while it owes too many (the
        token is not looked at), and a token refused as wrong (401) adds to what it owes."""
        if authorization:  # no credential, nothing guessed: the 401 that tells a client where to get one
            self.check(host)
        try:
            return await verify_bearer(verifier, authorization)
        except TokenRejected as e:
            # A right token lacking a scope (403) guessed nothing; nor did one nobody could judge.
            if authorization and e.status == 401 and e.judged:
                self.failed(host)
            raise

    def check(self, host: str) -> None:
        """Raise `TooManyFailures` while `host` may not present another token."""
        if not self._owing:  # nobody failed lately: the common case costs nothing
            return
        now = time.monotonic()
        self._forget_forgiven(now)  # so that it is the common case again once they are forgiven
        owed = self._owed(self._slot(host), now)
        if owed > self.burst - 1.0:
            raise TooManyFailures(max(1, math.ceil((owed - (self.burst - 1.0)) / self.rate)))

    def failed(self, host: str) -> None:
        now = time.monotonic()
        self._forget_forgiven(now)  # room for this address, if the table was full
        slot = self._slot(host)
        self._owing[slot] = (self._owed(slot, now) + 1.0, now)
        self._owing.move_to_end(slot)

    def _slot(self, host: str) -> str:
        guesser = guesser_of(host[:64])  # an IP address is at most 45 characters: the cache keeps short keys only
        return guesser if guesser in self._owing or len(self._owing) < self.max_addresses else self._OVERFLOW

    def _owed(self, slot: str, now: float) -> float:
        owed, at = self._owing.get(slot, (0.0, now))
        return max(0.0, owed - (now - at) * self.rate)

    def _forget_forgiven(self, now: float) -> None:
        # From the least recently failed on, up to the first still owing: a step per entry ever made.
        while self._owing:
            slot = next(iter(self._owing))
            if self._owed(slot, now) > 0.0:
                return
            del self._owing[slot]


_BUDGETS: WeakKeyDictionary[Verifier, FailedAuthentications] = WeakKeyDictionary()


def failed_authentications(verifier: Verifier, per_minute: float) -> FailedAuthentications:
    """The wrong-token budget of `verifier`: one per verifier, so every door asking it (`/mcp`,
    Studio's form and header) counts against the same table; it lives as long as the verifier."""
    budget = _BUDGETS.get(verifier)
    if budget is None:
        budget = _BUDGETS[verifier] = FailedAuthentications(per_minute)
    return budget


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
    `required_scopes` are named in the challenge (the OAuth verifiers enforce them); an address
    past `failed_per_minute` wrong tokens is refused with 429 before its token is looked at."""

    def __init__(self, app: ASGIApp, verifier: Verifier, *, required_scopes: Sequence[str] = (),
                 resource_metadata_url: str | None = None,
                 failed_per_minute: float = FAILED_AUTHENTICATIONS_PER_MINUTE) -> None:
        self.app = app
        self.verifier = verifier
        self.required_scopes = list(required_scopes)
        self.resource_metadata_url = resource_metadata_url
        self.failures = failed_authentications(verifier, failed_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        host = peer_host(scope)
        if path in OPEN_PATHS or path.startswith(METADATA_PREFIX):
            # Open to all; a valid token still says who asks (a health probe shows its holder more,
            # which makes it a guessing oracle too: its tokens count, and past the budget are ignored).
            if authorization is not None:
                try:
                    self._authenticated(scope, await self.failures.verify(self.verifier, authorization, host))
                except (TokenRejected, TooManyFailures):
                    pass
            await self.app(scope, receive, send)
            return
        try:
            access = await self.failures.verify(self.verifier, authorization, host)
        except TooManyFailures as e:
            # Info, not warning: a guesser kept at bay must not flood the log either.
            logger.info("authentication refused: too many failed attempts", extra={
                "client": client_address(scope), "method": scope["method"], "path": path,
            })
            await self._throttled(e)(scope, receive, send)
            return
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

    def _challenge(self, error: str | None) -> str:
        # RFC 6750 §3: no error code when no credentials were presented; RFC 9728 §5.1: name the metadata.
        params = [f'error="{error}"'] if error else []
        if self.resource_metadata_url:
            params.append(f'resource_metadata="{self.resource_metadata_url}"')
        if self.required_scopes:
            params.append(f'scope="{" ".join(self.required_scopes)}"')
        return "Bearer " + ", ".join(params) if params else "Bearer"

    def _refusal(self, error: TokenRejected, *, presented: bool) -> JSONResponse:
        hint = ("get a token with the scopes named in WWW-Authenticate" if error.status == 403
                else "send 'Authorization: Bearer <token>'")
        return JSONResponse(
            {"error": error.error if presented else "unauthorized",
             "error_description": f"authentication failed ({error.reason}): {hint}"},
            status_code=error.status,
            headers={"WWW-Authenticate": self._challenge(error.error if presented else None)},
        )

    def _throttled(self, error: TooManyFailures) -> JSONResponse:
        # The 401's challenge still names the metadata: an OAuth client learns where to get a good token.
        return JSONResponse(
            {"error": "too_many_failed_attempts",
             "error_description": f"{error}; check the token you send (serve.failed_auth_per_minute)"},
            status_code=429,
            headers={"WWW-Authenticate": self._challenge(None), "Retry-After": str(error.retry_after)},
        )
