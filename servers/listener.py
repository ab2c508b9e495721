"""The HTTP listener: uvicorn configured the way we serve, in one place, so the tests run the
server exactly as `workbench serve` does.

uvicorn parses requests with httptools (llhttp): about half the CPU per request of h11
(0.30 ms against 0.54 ms measured on a raw ASGI echo), which matters on the gateway's hot path.
h11 is not kept as a fallback: httptools is a dependency, and a second protocol would need a
second set of defences, each tested.

uvicorn's httptools protocol has none of the three defences a request needs:
- **time**: a client that sends half a request line and then nothing (slowloris) would hold its
  connection forever. `GuardedHttpTools` closes a connection whose request head is not complete
  within `serve.header_timeout` — from the moment the connection opens, and on a kept-alive
  connection from the first byte of the next request; trickling bytes does not reset it.
- **size**: llhttp has no limit on a head, and httptools buffers a header's name and value in
  Python bytes until the value ends. A head longer than `MAX_HEAD_BYTES` is refused with 431:
  counted from the parser's callbacks (request target, header names and values) for a head that
  completes, and from the bytes received for one still incomplete, so buffering stays bounded
  by the limit plus one read.
- **body time**: a client that sends a valid head announcing a body and then trickles it (or
  never sends it) would hold its connection and an ASGI task waiting in `receive()` forever.
  The whole body must arrive within `serve.body_timeout` of the head's end; past it the client
  gets 408 (when no response has started) and the connection is closed, which the waiting app
  sees as a disconnect. Only receiving is timed: a slow *response* (a long tool call, an SSE
  stream) is not, nor is a body we stopped reading ourselves (flow control while the app has
  not taken what came, a pipelined request waiting its turn).

`X-Forwarded-For` is believed only from `serve.trusted_proxies` (uvicorn's default believes any
local process): the client address is what failed authentications are counted by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from contextlib import contextmanager

import httptools
import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from servers.settings import ServeSettings
from workbench.core import logger

MAX_HEAD_BYTES = 16 * 1024
"""Largest request line plus headers accepted (what h11 allowed by default before us)."""


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past `MAX_HEAD_BYTES`."""


class GuardedHttpTools(HttpToolsProtocol):
    header_timeout: float = 10.0
    """Seconds; `guarded_protocol` makes a subclass per configured value (uvicorn builds the protocol)."""
    body_timeout: float = 60.0
    """Seconds from the end of a head to the end of its body (as `header_timeout`)."""

    _head_timer: asyncio.TimerHandle | None = None
    _head_parsed = 0
    """Bytes of the current head the parser has handed over (target, header names and values)."""
    _head_received: int | None = None
    """Bytes received since the current head began; None between heads."""
    _body_timer: asyncio.TimerHandle | None = None
    _reading_body = False
    """Between a head's end and its message's end: the parser waits for body bytes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows BaseTransport
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, plus telling our refusal apart from a malformed request.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, HeadTooLarge):  # httptools wraps what a callback raised
                self._refuse_head()
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # we serve no websockets (`ws="none"`)
            return
        if self._head_received is not None:  # a head still incomplete: this read counts whole (it began here or before)
            self._head_received += len(data)
            if self._head_received > MAX_HEAD_BYTES:
                self._refuse_head()
        # Armed only for a body that did not come with its head (most do): nothing to time otherwise.
        if self._reading_body and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_parsed, self._head_received = 0, 0
        if self._head_timer is None:  # the first byte of the next request on a kept-alive connection
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        # llhttp hands a value over with its trailing whitespace; RFC 9110 §5.5 leaves the optional
        # whitespace around a field value out of the value (h11 strips it). Kept, `Mcp-Name: add ` no
        # longer matched the body's tool name, and the SDK refused the request (-32020).
        super().on_header(name, value.strip(b" \t"))

    def on_headers_complete(self) -> None:
        self._head_received = None
        self._disarm_head_timer()
        self._reading_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm_body_timer()
        super().on_message_complete()

    def _count_head(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def _refuse_head(self) -> None:
        self._head_received = None
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        logger.warning("connection closed: request head too large",
                       extra={"client": self._client_name(), "max_head_bytes": MAX_HEAD_BYTES})
        message = b"Request head too large."
        self.transport.write(STATUS_LINE[431] + b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
                             + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message)
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        logger.warning("connection closed: request head not complete in time",
                       extra={"client": self._client_name(), "header_timeout": self.header_timeout})
        self.transport.close()

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._reading_body:
            return
        if self.flow.read_paused:  # we stopped reading, not the client sending: its clock restarts when we read
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)
            return
        logger.warning("connection closed: request body not complete in time",
                       extra={"client": self._client_name(), "body_timeout": self.body_timeout})
        if self.cycle is not None and not self.cycle.response_started:
            message = b"Request body not received in time."
            self.transport.write(STATUS_LINE[408] + b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
                                 + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message)
        # The app waiting in receive() is told the client disconnected (uvicorn's connection_lost).
        self.transport.close()

    def _client_name(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"


def guarded_protocol(header_timeout: float, body_timeout: float = GuardedHttpTools.body_timeout
                     ) -> type[GuardedHttpTools]:
    return type("GuardedHttpTools", (GuardedHttpTools,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


class QuietDisconnects:
    """ASGI: a request whose client went away before its body was read (it closed, or the body
    timeout closed it) just ends. Starlette's `Request.body()` raises `ClientDisconnect` then, and
    uvicorn would log it as a traceback — one per dropped connection, for any client to trigger."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            logger.debug("client disconnected before its request body was read", extra={"path": scope.get("path")})


class Listener(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # We handle signals ourselves (drain first); uvicorn's would also re-raise the signal
        # after serving, killing the process before the workbench is stopped.
        yield


def http_listener(app: ASGIApp, settings: ServeSettings) -> Listener:
    """uvicorn serving `app` on `settings.host:port` with our protocol limits; `serve()` it."""
    config = uvicorn.Config(
        QuietDisconnects(app), host=settings.host, port=settings.port, log_config=None, access_log=False, lifespan="on",
        http=guarded_protocol(settings.header_timeout, settings.body_timeout), ws="none",
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, so any local process
        # could pick the address its wrong tokens count against: only the configured proxies are believed.
        proxy_headers=bool(settings.trusted_proxies), forwarded_allow_ips=list(settings.trusted_proxies),
        # Calls were drained already; this only bounds open SSE streams of idle clients.
        timeout_graceful_shutdown=1,
    )
    return Listener(config)
