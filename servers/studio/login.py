"""Who may use Studio: a browser logs in once with the server's token and holds a signed cookie.

Why a cookie, and this one: a browser cannot put `Authorization: Bearer` on a navigation, a
link or an `<img>`, so pages and downloads need an ambient credential. Keeping the token
itself in JavaScript (localStorage) would hand it to any script that ever runs on the page;
a cookie marked HttpOnly is out of every script's reach. The cookie carries no token, only
`issued.nonce.mac`: an HMAC under a key derived from the server's token, so it needs no
server-side store, survives a restart, expires on its own (`SESSION_SECONDS`), and dies when
the token is rotated. SameSite=Strict keeps other sites' pages from sending it at all;
Secure is set when the request came over https. On top of that, every state-changing request
must carry a CSRF token (an HMAC of the session's nonce, put into the page by the server) in
`X-Studio-CSRF` or a `csrf` form field — defence in depth for browsers or proxies that get
SameSite wrong — and passes the same Host/Origin checks as `/mcp` (DNS rebinding).

Scripts and API clients may instead send the bearer header, as for `/mcp`; they need no CSRF
token, since another site's page cannot make a browser send that header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request
from starlette.responses import Response

from servers.auth import bearer_ok
from servers.sessions import ANONYMOUS_IDENTITY, caller_identity
from servers.settings import ServeSettings

COOKIE = "workbench_studio"
SESSION_SECONDS = 12 * 3600
"""A login lasts a working day; then the token is asked for again."""
CSRF_HEADER = "x-studio-csrf"
MAX_COOKIE_CHARS = 200
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class StudioSession:
    """One logged-in browser (or a bearer-authenticated script)."""

    id: str
    """Stable for the login: Studio's tool calls use it as their session (one sandbox per browser)."""
    identity: str
    """Who, as the MCP endpoint would name this caller (per-identity caps count it)."""
    csrf: str
    """What unsafe requests must echo; empty for bearer-header clients, which need none."""


class StudioLogin:
    def __init__(self, settings: ServeSettings) -> None:
        self.token = settings.auth_token
        seed = self.token.encode() if self.token else secrets.token_bytes(32)
        # Derived from the token: a rotated token ends every session; a restart ends none.
        self._key = hmac.new(seed, b"workbench studio session v1", hashlib.sha256).digest()
        self._security = TransportSecurityMiddleware(settings.transport_security())
        self.identity = (caller_identity(f"Bearer {self.token}", authenticated=True) if self.token
                         else ANONYMOUS_IDENTITY)

    @property
    def required(self) -> bool:
        """Whether a token is asked for (no token configured: loopback only, like `/mcp`)."""
        return self.token is not None

    def token_ok(self, presented: str) -> bool:
        return self.token is None or bearer_ok(f"Bearer {presented.strip()}", self.token)

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def new_cookie(self) -> str:
        body = f"{int(time.time())}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac('session.' + body)}"

    def set_cookie(self, response: Response, request: Request, value: str) -> None:
        response.set_cookie(COOKIE, value, max_age=SESSION_SECONDS, path="/ui", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    @staticmethod
    def clear_cookie(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")

    def session(self, request: Request) -> StudioSession | None:
        """The caller's session, or None when it has neither a valid cookie nor the bearer header."""
        authorization = request.headers.get("authorization")
        if authorization is not None:  # a script: the header decides, a cookie beside it does not count
            if self.token is not None and not bearer_ok(authorization, self.token):
                return None
            return StudioSession(id="studio-" + hashlib.sha256(authorization.encode()).hexdigest()[:16],
                                 identity=self.identity, csrf="")
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return None
        body, _, mac = cookie.rpartition(".")
        issued, _, nonce = body.partition(".")
        if not (issued.isdigit() and nonce and hmac.compare_digest(mac, self._mac("session." + body))):
            return None
        if not 0 <= time.time() - int(issued) < SESSION_SECONDS:
            return None
        return StudioSession(id=f"studio-{nonce[:16]}", identity=self.identity, csrf=self._mac("csrf." + nonce))

    async def refusal(self, request: Request) -> Response | None:
        """Host/Origin checks (as for `/mcp`): a response refusing the request, or None."""
        return await self._security.validate_request(request, is_post=False)

    @staticmethod
    def csrf_ok(request: Request, session: StudioSession, form_value: str | None = None) -> bool:
        if request.method in SAFE_METHODS or not session.csrf:
            return True
        presented = request.headers.get(CSRF_HEADER) or form_value or ""
        return hmac.compare_digest(presented.encode(), session.csrf.encode())
