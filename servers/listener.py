"""The HTTP listener: uvicorn configured the way we serve, in one place, so the tests run the
server exactly as `workbench serve` does.

uvicorn's h11 protocol has no timeout for reading a request head: a client that sends half a
request line and then nothing (slowloris) holds its connection, and its buffers, forever.
`HeadTimeoutH11` closes a connection whose request head is not complete within
`serve.header_timeout` — from the moment the connection opens, and on a kept-alive connection
from the first byte of the next request. The head's size stays bounded by h11
(`h11_max_incomplete_event_size`), so a slow head cannot grow either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from contextlib import contextmanager

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from servers.settings import ServeSettings
from workbench.core import logger

MAX_HEAD_BYTES = 16 * 1024
"""Largest request line plus headers accepted (h11's own default, stated so it cannot drift)."""


class HeadTimeoutH11(H11Protocol):
    header_timeout: float = 10.0
    """Seconds; `h11_protocol` makes a subclass per configured value (uvicorn builds the protocol itself)."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows BaseTransport
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is complete: the request is being served
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

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
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        logger.warning("connection closed: request head not complete in time",
                       extra={"client": client, "header_timeout": self.header_timeout})
        self.transport.close()


def h11_protocol(header_timeout: float) -> type[HeadTimeoutH11]:
    return type("HeadTimeoutH11", (HeadTimeoutH11,), {"header_timeout": header_timeout})


class Listener(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # We handle signals ourselves (drain first); uvicorn's would also re-raise the signal
        # after serving, killing the process before the workbench is stopped.
        yield


def http_listener(app: ASGIApp, settings: ServeSettings) -> Listener:
    """uvicorn serving `app` on `settings.host:port` with our protocol limits; `serve()` it."""
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False, lifespan="on",
        http=h11_protocol(settings.header_timeout), h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        # Calls were drained already; this only bounds open SSE streams of idle clients.
        timeout_graceful_shutdown=1,
    )
    return Listener(config)
