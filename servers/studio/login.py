"""Who may use Studio: a browser logs in once with a token `/mcp` accepts and holds a signed cookie.

Why a cookie, and this one: a browser cannot put `Authorization: Bearer` on a navigation, a
link or an `<img>`, so pages and downloads need an ambient credential. Keeping the token
itself in JavaScript (localStorage) would hand it to any script that ever runs on the page;
a cookie marked HttpOnly is out of every script's reach.

The login asks the very verifier chain `/mcp` uses (`servers.auth`: `WORKBENCH_TOKEN`, the named
`[serve.tokens]`, OAuth access tokens), so the console lets in exactly whom `/mcp` does, with no
second comparison. The cookie carries no token, only the principal the verifier found — identity,
scopes and the claims the policy reads — with its issue and expiry times and a nonce, HMAC'd
under a key derived from the server's static tokens: it needs no server-side store, survives a
restart, expires on its own (`SESSION_SECONDS`, and never after the token's own `exp`), and dies
when a static token is rotated (with OAuth only, the key is per process: a restart ends sessions).
SameSite=Strict keeps other sites' pages from sending it at all; Secure is set when the request
came over https. On top of that, every state-changing request must carry a CSRF token (an HMAC
of the session's nonce, put into the page by the server) in `X-Studio-CSRF` or a `csrf` form
field — defence in depth for browsers or proxies that get SameSite wrong — and passes the same
Host/Origin checks as `/mcp` (DNS rebinding).

Scripts and API clients may instead send the bearer header, as for `/mcp`; it is verified on
every request, and needs no CSRF token, since another site's page cannot make a browser send it.

Wrong tokens, at the form or in a header, are counted per client address by the budget `/mcp`
counts against (`servers.auth.FailedAuthentications`, one per verifier): past
`serve.failed_auth_per_minute` an address is answered 429 with Retry-After before its token is
looked at, so the console is no second, faster way to guess a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request
from starlette.responses import Response

from servers.auth import TokenRejected, Verifier, failed_authentications, identity_of, peer_host
from servers.sessions import ANONYMOUS_IDENTITY
from servers.settings import ServeSettings
from workbench.core import CallContext

COOKIE = "workbench_studio"
SESSION_SECONDS = 12 * 3600
"""A login lasts a working day at most; then the token is asked for again."""
CSRF_HEADER = "x-studio-csrf"
MAX_COOKIE_CHARS = 3800
"""Browsers keep about 4 KB per cookie; a principal whose claims do not fit logs in with the header."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRefused(Exception):
    """The presented credential does not open a console session; the message says why and what to do."""


@dataclass(frozen=True)
class StudioSession:
    """One logged-in browser (or a bearer-authenticated script)."""

    id: str
    """Stable for the login: Studio's tool calls use it as their session (one sandbox per browser)."""
    identity: str
    """Who, as the MCP endpoint names this caller (policy, limits, audit and per-identity caps use it)."""
    csrf: str
    """What unsafe requests must echo; empty for bearer-header clients, which need none."""
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    """The verified claims the server's policy reads (only those), never a token."""

    def caller(self, **more: Any) -> CallContext:
        """This caller as the served workbench sees an MCP client (policy, limits, audit)."""
        return replace(CallContext(session_id=self.id, identity=self.identity, scopes=self.scopes,
                                   claims=dict(self.claims)), **more)


def client_host(request: Request) -> str:
    """The address failed logins are counted by: the peer's host, without its (per-connection) port."""
    return peer_host(request.scope)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StudioLogin:
    def __init__(self, settings: ServeSettings, verifier: Verifier | None) -> None:
        self.verifier = verifier
        secrets_ = sorted(([settings.auth_token] if settings.auth_token else [])
                          + [f"{name}\0{t.token.get_secret_value()}" for name, t in settings.tokens.items()])
        seed = "\0\0".join(secrets_).encode() if secrets_ else secrets.token_bytes(32)
        # Derived from the static tokens: rotating one ends every session; a restart ends none.
        self._key = hmac.new(seed, b"workbench studio session v2", hashlib.sha256).digest()
        self._security = TransportSecurityMiddleware(settings.transport_security())
        policy = settings.policy
        self._claim_keys = frozenset(path.split(".")[0] for rule in (policy.rules if policy else [])
                                     for path in rule.claims)
        self.failures = failed_authentications(verifier, settings.failed_auth_per_minute) if verifier else None

    @property
    def required(self) -> bool:
        """Whether a token is asked for (none configured: loopback only, like `/mcp`)."""
        return self.verifier is not None

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    async def verify(self, token: str, address: str) -> AccessToken | None:
        """The principal `token`, presented from `address`, stands for, by `/mcp`'s own verifiers
        (None: no auth configured); `TooManyFailures` after too many wrong ones from there."""
        if self.verifier is None or self.failures is None:
            return None
        return await self.failures.verify(self.verifier, f"Bearer {token.strip()}", address)

    def new_cookie(self, access: AccessToken | None) -> tuple[str, int]:
        """A session cookie for `access` (None: the anonymous loopback user) and its lifetime in seconds."""
        now = int(time.time())
        expires = now + SESSION_SECONDS
        if access is not None and access.expires_at is not None:
            expires = min(expires, int(access.expires_at))
        if expires <= now:
            raise LoginRefused("That token has expired: get a new one.")
        payload = {
            "i": now, "e": expires, "n": secrets.token_urlsafe(16),
            "id": identity_of(access) if access else ANONYMOUS_IDENTITY,
            "s": sorted(access.scopes) if access else [],
            "c": {k: v for k, v in (access.claims or {}).items() if k in self._claim_keys} if access else {},
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        cookie = f"{body}.{self._mac('session.' + body)}"
        if len(cookie) > MAX_COOKIE_CHARS:
            raise LoginRefused("That token's claims are too large for a browser session: "
                               "call the API with 'Authorization: Bearer <token>' instead.")
        return cookie, expires - now

    def set_cookie(self, response: Response, request: Request, value: str, max_age: int) -> None:
        response.set_cookie(COOKIE, value, max_age=max_age, path="/ui", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    @staticmethod
    def clear_cookie(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")

    async def session(self, request: Request) -> StudioSession | None:
        """The caller's session, or None when it has neither a valid cookie nor an accepted bearer
        header; `TooManyFailures` after too many wrong headers from the client's address."""
        authorization = request.headers.get("authorization")
        if authorization is not None:  # a script: the header decides, a cookie beside it does not count
            if self.verifier is None or self.failures is None:
                return StudioSession(id=self._header_session(authorization), identity=ANONYMOUS_IDENTITY, csrf="")
            try:
                access = await self.failures.verify(self.verifier, authorization, client_host(request))
            except TokenRejected:
                return None
            return StudioSession(id=self._header_session(authorization), identity=identity_of(access), csrf="",
                                 scopes=frozenset(access.scopes), claims=access.claims or {})
        return self._cookie_session(request.cookies.get(COOKIE, ""))

    @staticmethod
    def _header_session(authorization: str) -> str:
        return "studio-" + hashlib.sha256(authorization.encode()).hexdigest()[:16]

    def _cookie_session(self, cookie: str) -> StudioSession | None:
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return None
        body, _, mac = cookie.rpartition(".")
        if not (body and hmac.compare_digest(mac.encode(), self._mac("session." + body).encode())):
            return None
        try:  # ours (the MAC says so), but read it as carefully as anything else
            payload = json.loads(_unb64(body))
            issued, expires, nonce = int(payload["i"]), int(payload["e"]), str(payload["n"])
            identity, scopes, claims = str(payload["id"]), frozenset(map(str, payload["s"])), dict(payload["c"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not issued <= time.time() < min(expires, issued + SESSION_SECONDS):
            return None
        return StudioSession(id=f"studio-{nonce[:16]}", identity=identity, csrf=self._mac("csrf." + nonce),
                             scopes=scopes, claims=claims)

    async def refusal(self, request: Request) -> Response | None:
        """Host/Origin checks (as for `/mcp`): a response refusing the request, or None."""
        return await self._security.validate_request(request, is_post=False)

    @staticmethod
    def csrf_ok(request: Request, session: StudioSession, form_value: str | None = None) -> bool:
        if request.method in SAFE_METHODS or not session.csrf:
            return True
        presented = request.headers.get(CSRF_HEADER) or form_value or ""
        return hmac.compare_digest(presented.encode(), session.csrf.encode())
