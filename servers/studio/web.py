"""Small request/response helpers the Studio API modules share."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from servers.studio.login import StudioSession


def session_of(request: Request) -> StudioSession:
    """The caller's session; Studio's guard has already refused requests without one."""
    session: StudioSession = request.scope["state"]["studio_session"]
    return session


def api_error(status: int, error: str, description: str) -> JSONResponse:
    """An error the page shows as it is: `error_description` says what to do."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def json_body_limit(request: Request, limit: int) -> Response | None:
    """A refusal for a body over `limit` bytes (by its declared length), or None."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return api_error(413, "too_large", f"the request body is over {limit} bytes")
    return None


async def read_json_object(request: Request, limit: int) -> dict[str, Any] | Response:
    """The body as a JSON object (at most `limit` bytes, counted as it arrives), or an error response."""
    if (refused := json_body_limit(request, limit)) is not None:
        return refused
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return api_error(413, "too_large", f"the request body is over {limit} bytes")
    if not body:
        return {}
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return api_error(400, "bad_json", f"the body is not valid JSON: {e}")
    if not isinstance(value, dict):
        return api_error(400, "bad_json", f"the body must be a JSON object, not {type(value).__name__}")
    return value
