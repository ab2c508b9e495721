"""Where an MCP server is (`StdioTarget`, `HttpTarget`) and what its errors mean: whether
the connection is gone (`is_disconnect`, `session_expired`) and one line to show people
(`describe`). Kept apart from the connection itself, which only consumes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from workbench.core import first_error


@dataclass(frozen=True, repr=False)
class StdioTarget:
    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    cwd: str | None = None

    def __repr__(self) -> str:  # env values and args may hold secrets: show their shape only
        env = f", env keys={sorted(self.env)}" if self.env else ""
        return f"stdio:{self.command} (+{len(self.args)} args){env}"


@dataclass(frozen=True, repr=False)
class HttpTarget:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    bearer_token: str | None = None
    sse: bool = False
    auth: httpx2.Auth | None = field(default=None, compare=False)
    """Any httpx2 auth, e.g. the SDK's `OAuthClientProvider`; kept across reconnects."""

    def __repr__(self) -> str:
        parts = urlsplit(self.url)
        netloc = parts.hostname or "" if parts.port is None else f"{parts.hostname}:{parts.port}"
        url = urlunsplit(parts._replace(netloc=netloc))
        auth = ", bearer token set" if self.bearer_token else f", auth={self.auth!r}" if self.auth else ""
        headers = f", header keys={sorted(self.headers)}" if self.headers else ""
        return f"{'sse' if self.sse else 'http'}:{url}{headers}{auth}"


Target = StdioTarget | HttpTarget


_SESSION_GONE = ("Session terminated", "Session not found")


def session_expired(exc: BaseException) -> bool:
    """A legacy HTTP session the server forgot (restart, idle expiry): it answered 404.

    Matched by message because nothing else survives: the SDK's transport drops the HTTP
    status and raises an `MCPError` with either its own stand-in ("Session terminated",
    INVALID_REQUEST) or the server's body, whose code differs by server (-32600 from the
    Python SDK, -32001 from the TypeScript SDK) while the message is "Session not found"."""
    return isinstance(exc, MCPError) and any(s in exc.message for s in _SESSION_GONE)


def _client_exited(exc: BaseException) -> bool:
    """The call raced the owner task closing the client. The SDK signals that with a plain
    `RuntimeError` and no attribute to tell it from other runtime errors, so only its text."""
    return isinstance(exc, RuntimeError) and "within an async context manager" in str(exc)


def is_disconnect(exc: BaseException) -> bool:
    """Does this error mean the connection is gone (as opposed to one request failing)?"""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_disconnect(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED or session_expired(exc)
    if _client_exited(exc):
        return True
    if isinstance(exc, TimeoutError):  # a subclass of OSError, but a slow server is not a gone one
        return False
    return isinstance(
        exc, (httpx2.TransportError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)
    )


def describe(exc: BaseException) -> str:
    """One line for people: the innermost meaningful error, no traceback."""
    exc = first_error(exc)
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
