"""Bearer-token authentication for the HTTP endpoint (ASGI middleware).

One shared secret, compared in constant time. Health probes stay open so an orchestrator
can check liveness without the token; everything else needs `Authorization: Bearer <token>`.
Every refused request is logged (reason, client address, path) so an operator can see
guessing or a misconfigured client; the presented token never is, it may be a real secret
sent to the wrong server.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from servers.sessions import client_address
from workbench.core import logger

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def refusal_reason(authorization: str | None, token: str) -> str | None:
    """Why `authorization` does not carry `token` ("missing", "wrong scheme", "invalid"), or None."""
    if not authorization:
        return "missing"
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return "wrong scheme"
    return None if hmac.compare_digest(presented.strip().encode(), token.encode()) else "invalid"


def bearer_ok(authorization: str | None, token: str) -> bool:
    return refusal_reason(authorization, token) is None


class BearerAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        reason = refusal_reason(authorization, self.token)
        if reason is None:
            await self.app(scope, receive, send)
            return
        logger.warning("authentication failed", extra={
            "reason": reason, "client": client_address(scope), "method": scope["method"], "path": scope["path"],
        })
        response = JSONResponse(
            {"error": "unauthorized",
             "error_description": f"authentication failed ({reason}): send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"' if authorization else "Bearer"},
        )
        await response(scope, receive, send)
