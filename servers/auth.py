"""Bearer-token authentication for the HTTP endpoint (ASGI middleware).

One shared secret, compared in constant time. Health probes stay open so an orchestrator
can check liveness without the token; everything else needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def bearer_ok(authorization: str | None, token: str) -> bool:
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


class BearerAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        if bearer_ok(authorization, self.token):
            await self.app(scope, receive, send)
            return
        reason = "missing bearer token" if not authorization else "invalid bearer token"
        response = JSONResponse(
            {"error": "unauthorized", "error_description": f"{reason}: send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"' if authorization else "Bearer"},
        )
        await response(scope, receive, send)
