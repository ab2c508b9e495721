"""The upstream lane: an ordinary `tools/call` to a streamable-HTTP MCP server, sent without the SDK's
client stack.

The SDK's client path costs a gateway ~6 ms of CPU per call (ClientSession, the JSON-RPC
dispatcher, the streamable-HTTP transport's task hand-offs, httpx2/httpcore2/h11, result validation
against the negotiated revision); the same POST over one long-lived aiohttp session costs well
under a millisecond. The rule that keeps it faithful:

    **A lane serves only requests it can prove ordinary; anything else takes the SDK's path
    unchanged.**

`McpWorkbench` decides what is ordinary (no progress token, no OAuth, a live connection, nothing
the upstream could ask that would not be declined, asyncio); the lane builds the request from the
SDK's own pieces (the live session's stamp for `_meta`/headers of the negotiated era, its tracer's
client span and W3C context injection; the messages themselves in `adapters.mcp_lane_messages`,
as the `mcp.types` models would dump and parse them) and reads the answer as
`application/json` or an SSE stream, parsed incrementally within the bounds of
`adapters.mcp_lane_read` (a total, and the SDK's own per-event bound). What arrives on the stream
besides the answer is handled as the SDK handles it: notifications go to the same callbacks
(logging, `message_handler`), a server→client request is answered through the session's own
callback table (`dispatch_input_request`), an `InputRequiredResult` goes through the SDK's own
round driver. A response the lane cannot use without having run the call twice is refused with a
clear message; one that proves the upstream did not run it (a redirect, a 2026 header mismatch) is
handed back (`LaneDeclined`) for the SDK path to send.

Cancellation (the caller's timeout, or a cancelled caller) aborts the POST; on a 2025 session it
also sends `notifications/cancelled`, as the SDK does (on the 2026 wire closing the request is the
signal).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import select
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import aiohttp
import anyio
import mcp.types as mt
from aiohttp.connector import Connection
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import (
    DEFAULT_RECONNECTION_DELAY_MS,
    MAX_RECONNECTION_ATTEMPTS,
    MCP_SESSION_ID,
)
from mcp.shared import _otel as sdk_otel
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import HEADER_MISMATCH
from mcp_types import methods as wire
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from multidict import CIMultiDict
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError
from pydantic_core import to_json
from yarl import URL

from adapters.mcp_lane_messages import (
    call_tool_answer,
    first_error,
    inject_trace_context,
    mcp_error,
    request_params,
    result_of,
)
from adapters.mcp_lane_read import (
    SseStream,
    UpstreamProtocolError,
    clip,
    drain,
    json_of,
    read_all,
)
from adapters.mcp_targets import HttpTarget, Target
from adapters.tls import tls_trust

if TYPE_CHECKING:
    from mcp import Client

logger = logging.getLogger("workbench.mcp")

MAX_CONNECTIONS = 100
"""Open connections to one upstream; more concurrent calls wait for a free one."""
KEEPALIVE_SECONDS = 4.0
"""Below uvicorn's 5 s idle close, so a pooled connection is not reused as the server drops it."""
READ_TIMEOUT = 300.0
"""Seconds without a byte from the upstream (the SDK path's httpx2 read timeout)."""
MAX_RESUMPTIONS = 8
"""Times one call's stream may be resumed (the SDK allows 2 failed attempts in a row, unbounded successes)."""
_CANCEL_WRITE_TIMEOUT = 5.0  # the SDK's bound on its courtesy cancel (jsonrpc_dispatcher._ABANDON_WRITE_TIMEOUT)
_ACCEPT = "application/json, text/event-stream"

Notify = Callable[[Any], Awaitable[None]]


class LaneDeclined(Exception):  # noqa: N818 - a signal, not a failure: the SDK path takes the call
    """The upstream provably did not run the call (a redirect, a 2026 header mismatch): send it
    the SDK's way instead."""


class UpstreamLane:
    """Sends ordinary `tools/call` requests to one streamable-HTTP upstream over a long-lived
    aiohttp session: keep-alive, a bounded pool, TCP_NODELAY (aiohttp's default), no redirects,
    the SDK path's TLS trust (`adapters.tls`) and timeouts."""

    def __init__(self, url: str, headers: Mapping[str, str], *, connect_timeout: float) -> None:
        self.url = url
        self._url = URL(url)  # parsed once, not per request
        # Sent with every request; ours replace a caller's spelling of the same name in any case.
        self._headers = CIMultiDict(headers)
        self._headers["Accept"] = _ACCEPT
        self._headers["Content-Type"] = "application/json"
        self._connect_timeout = connect_timeout
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # an aiohttp session serves the loop that made it
        self._ids = itertools.count(1)
        self.calls = 0
        """Calls this lane answered (tests and benchmarks read it to prove the lane was taken)."""

    @classmethod
    def for_target(cls, target: Target, *, connect_timeout: float) -> UpstreamLane | None:
        """A lane to `target` when it can have one: streamable HTTP (not stdio, not the old SSE
        transport), no httpx2 `auth` (an OAuth provider refreshes and retries inside httpx2), and no
        proxy from the environment (httpx2 honours one; the lane would go around it)."""
        if not isinstance(target, HttpTarget) or target.sse or target.auth is not None:
            return None
        parts = urlsplit(target.url)
        if parts.scheme not in ("http", "https") or _proxied(parts.scheme, parts.hostname or ""):
            return None
        headers = dict(target.headers)
        if target.bearer_token:
            headers["Authorization"] = f"Bearer {target.bearer_token}"
        return cls(target.url, headers, connect_timeout=connect_timeout)

    async def _session(self) -> aiohttp.ClientSession:
        http, loop = self._http, asyncio.get_running_loop()
        if http is not None and not http.closed and self._loop is loop:
            return http
        self._loop = loop
        # The SDK path's TLS trust (the process's one context), for https only.
        tls = tls_trust() if self.url.lower().startswith("https:") else True
        connector = _FreshConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS, ssl=tls,
                                    enable_cleanup_closed=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=READ_TIMEOUT)
        self._http = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self._headers,
                                           auto_decompress=True, trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return self._http

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None and not http.closed and self._loop is asyncio.get_running_loop():
            await http.close()

    async def call_tool(
        self,
        client: Client,
        name: str,
        arguments: dict[str, Any],
        meta: mt.RequestParamsMeta | None,
        *,
        session_id: str | None,
        on_notification: Notify,
    ) -> mt.CallToolResult:
        """One `tools/call` (and, for an `InputRequiredResult`, its further rounds through the
        SDK's own driver). Raises `MCPError` for the upstream's JSON-RPC error, `LaneDeclined`,
        `UpstreamProtocolError`, or a `ConnectionError` when the connection failed."""

        async def send(responses: mt.InputResponses | None, state: str | None) -> Any:
            return await self._send(client, name, request_params(name, arguments, meta, responses, state),
                                    session_id, on_notification)

        first = await send(None, None)
        if isinstance(first, mt.InputRequiredResult):
            # Rounds go through the very driver (and callback table) `Client.call_tool` uses.
            first = await client._drive_input_required(first, send)
        self.calls += 1
        return cast(mt.CallToolResult, first)

    async def _send(
        self, client: Client, name: str, params: dict[str, Any], session_id: str | None, on_notification: Notify
    ) -> mt.CallToolResult | mt.InputRequiredResult:
        version = client.protocol_version
        data = {"method": "tools/call", "params": params}
        headers: dict[str, str] = {}
        # The session's own stamp: the negotiated era's `_meta` keys (2026: protocol version, client
        # info and capabilities, the log-level default) and headers (MCP-Protocol-Version, Mcp-Method,
        # Mcp-Name, Mcp-Param-*), exactly as `ClientSession.send_request` applies it.
        client.session._stamp(data, cast(Any, {"headers": headers}))
        if session_id is not None:
            headers[MCP_SESSION_ID] = session_id
        request_id = f"wb-{next(self._ids)}"  # a string: never one of the SDK dispatcher's integer ids
        # The SDK dispatcher's client span, on the SDK's own tracer, ended when the answer is read.
        span = sdk_otel._tracer.start_span(
            f"MCP send tools/call {name}", kind=SpanKind.CLIENT,
            attributes={"mcp.method.name": "tools/call", "jsonrpc.request.id": request_id})
        try:
            inject_trace_context(params, span)
            body = to_json({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
            sent = False
            try:
                http = await self._session()
                sent = True  # as the SDK's dispatcher: a started write counts as issued (cancel it)
                try:
                    # Sent once: a connection that closes before the answer may have carried the call,
                    # which the upstream may have run, and POST is not idempotent (RFC 9112 §9.3.1):
                    # a disconnect for the caller, as on the SDK path (httpcore resends nothing it wrote).
                    async with http.post(self._url, data=body, headers=headers, allow_redirects=False) as response:
                        raw = await self._answer(response, request_id, client, session_id, on_notification)
                except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                    # A connection error (OSError) is what `is_disconnect` knows as a gone connection.
                    raise ConnectionError(f"MCP request failed: {type(e).__name__}: {e}".rstrip(": ")) from e
            except anyio.get_cancelled_exc_class():
                if sent and version not in MODERN_PROTOCOL_VERSIONS:
                    await self._cancel(request_id, headers, "caller cancelled")
                raise
            except MCPError as e:  # the upstream's JSON-RPC error, recorded as the SDK's dispatcher records it
                span.set_attributes({"error.type": str(e.code), "rpc.response.status_code": str(e.code)})
                span.set_status(StatusCode.ERROR, e.message)
                if e.code == HEADER_MISMATCH and version in MODERN_PROTOCOL_VERSIONS:
                    raise LaneDeclined("header mismatch: the SDK path re-lists the tool and resends") from e
                raise
        except Exception as e:  # as `opentelemetry.trace.use_span` records what leaves a span
            if span.is_recording():
                span.record_exception(e)
                span.set_status(StatusCode.ERROR, f"{type(e).__name__}: {e}")
            raise
        finally:
            span.end()
        return call_tool_answer(raw, version)

    async def _answer(
        self, response: aiohttp.ClientResponse, request_id: str, client: Client, session_id: str | None,
        on_notification: Notify,
    ) -> dict[str, Any]:
        """The JSON-RPC result of `request_id`, read from `response`; raises for anything else."""
        status = response.status
        content_type = response.headers.get("Content-Type", "").lower()
        if 300 <= status < 400:
            raise LaneDeclined(f"redirected ({status}): the SDK path decides whether to follow")
        if status == 202:
            raise MCPError(mt.INVALID_REQUEST, "server answered a request with 202 Accepted")
        if status >= 400:
            if content_type.startswith("application/json"):
                message = json_of(await read_all(response), "error body")
                error = message.get("error") if isinstance(message, dict) else None
                if isinstance(error, dict):
                    raise mcp_error(error)
            if status == 404:  # the SDK transport's spellings, which `session_expired` recognises
                if session_id is not None:
                    raise MCPError(mt.INVALID_REQUEST, "Session terminated")
                raise MCPError(mt.METHOD_NOT_FOUND, "Not Found")
            raise MCPError(mt.INTERNAL_ERROR, f"Server returned an error response (HTTP {status})")
        if content_type.startswith("application/json"):
            return result_of(json_of(await read_all(response), "answer"), request_id)
        if content_type.startswith("text/event-stream"):
            return await self._stream_answer(response, request_id, client, session_id, on_notification)
        raise UpstreamProtocolError(f"answered with content type {content_type or 'none'!r}; "
                                    "an MCP server answers application/json or text/event-stream")

    async def _stream_answer(
        self, response: aiohttp.ClientResponse, request_id: str, client: Client, session_id: str | None,
        on_notification: Notify,
    ) -> dict[str, Any]:
        """The answer on an SSE stream; a stream that ends before it, having named its events, is
        resumed with a GET and `Last-Event-ID` as the SDK transport resumes it (SEP-1699)."""
        stream = SseStream()
        try:
            return await self._resumed(stream, response, request_id, client, session_id, on_notification)
        finally:
            if stream.response is not None:
                stream.response.release()  # the last one read: its connection goes back to the pool, or closes

    async def _resumed(
        self, stream: SseStream, response: aiohttp.ClientResponse, request_id: str, client: Client,
        session_id: str | None, on_notification: Notify,
    ) -> dict[str, Any]:
        failures = resumptions = 0
        while True:
            stream.response = response
            if response.status == 200 and response.headers.get("Content-Type", "").lower().startswith(
                    "text/event-stream"):
                # Closed here, not by the event loop's async-generator finalizer (a thread-safe wake-up).
                async with aclosing(stream.messages(response)) as events:
                    async for event in events:
                        result = await self._on_event(event, request_id, client, session_id, on_notification)
                        if result is not None:
                            await drain(response)
                            return result
                failures = 0
            else:
                failures += 1
            response.release()
            if stream.last_event_id is None:
                raise MCPError(mt.CONNECTION_CLOSED, "SSE stream ended without a response")
            resumptions += 1
            if failures >= MAX_RECONNECTION_ATTEMPTS or resumptions > MAX_RESUMPTIONS:
                raise MCPError(mt.CONNECTION_CLOSED, "SSE stream ended and reconnection attempts were exhausted")
            delay_ms = stream.retry_ms if stream.retry_ms is not None else DEFAULT_RECONNECTION_DELAY_MS
            await anyio.sleep(delay_ms / 1000)
            headers = {"Last-Event-ID": stream.last_event_id}
            if client.protocol_version is not None:
                headers[MCP_PROTOCOL_VERSION_HEADER] = client.protocol_version
            if session_id is not None:
                headers[MCP_SESSION_ID] = session_id
            response = await (await self._session()).get(self._url, headers=headers, allow_redirects=False)

    async def _on_event(
        self, event: bytes, request_id: str, client: Client, session_id: str | None, on_notification: Notify,
    ) -> dict[str, Any] | None:
        """One message on the call's stream: the answer's result, or None once a notification was
        delivered or a server→client request answered."""
        message = json_of(event, "SSE event")
        if not isinstance(message, dict):
            raise UpstreamProtocolError(f"sent an SSE event that is not a JSON-RPC message: {clip(event)}")
        method = message.get("method")
        if method is not None and not isinstance(method, str):
            raise UpstreamProtocolError(f"sent a message whose method is not a string: {clip(event)}")
        if method is None:
            return result_of(message, request_id)
        if "id" in message:
            await self._answer_request(client, message, session_id)
        else:
            await _deliver(client, method, message.get("params"), on_notification)
        return None

    async def _answer_request(self, client: Client, message: dict[str, Any], session_id: str | None) -> None:
        """A server→client request on the call's stream: answered through the session's callback
        table as `ClientSession._on_request` answers it (ping: an empty result; sampling,
        elicitation, roots: the callbacks, which for a lane call can only decline)."""
        request_id, method, params = message["id"], message["method"], message.get("params")
        version = client.protocol_version or "2025-11-25"
        reply: dict[str, Any]
        try:
            request = wire.parse_server_request(method, version, params)
            if isinstance(request, mt.PingRequest):
                reply = {"result": {}}
            else:
                context = ClientRequestContext(session=client.session, request_id=request_id,
                                               meta=request.params.meta if request.params else None)
                answer = await client.session.dispatch_input_request(context, cast(mt.InputRequest, request))
                dumped = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
                reply = {"error": dumped} if isinstance(answer, mt.ErrorData) else {"result": dumped}
        except KeyError:
            reply = {"error": {"code": mt.METHOD_NOT_FOUND, "message": "Method not found", "data": method}}
        except (ValidationError, ValueError) as e:
            reply = {"error": {"code": mt.INVALID_PARAMS, "message": f"invalid {method} request: {first_error(e)}"}}
        headers: dict[str, str] = {}
        if client.protocol_version is not None:
            headers[MCP_PROTOCOL_VERSION_HEADER] = client.protocol_version
        if session_id is not None:
            headers[MCP_SESSION_ID] = session_id
        await self._post_quietly({"jsonrpc": "2.0", "id": request_id, **reply}, headers)

    async def _cancel(self, request_id: str, request_headers: Mapping[str, str], reason: str) -> None:
        """The SDK's courtesy `notifications/cancelled` for an abandoned 2025-era request, shielded
        and bounded as the SDK's is."""
        headers = {k: v for k, v in request_headers.items()
                   if k.lower() in (MCP_SESSION_ID.lower(), MCP_PROTOCOL_VERSION_HEADER.lower())}
        message = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": request_id, "reason": reason}}
        with anyio.move_on_after(_CANCEL_WRITE_TIMEOUT, shield=True):
            await self._post_quietly(message, headers)

    async def _post_quietly(self, message: dict[str, Any], headers: Mapping[str, str]) -> None:
        try:
            http = await self._session()
            async with http.post(self._url, data=to_json(message),
                                 headers=headers, allow_redirects=False) as response:
                await read_all(response)
        except (TimeoutError, aiohttp.ClientError, UpstreamProtocolError) as e:
            logger.debug("posting %s to %s failed: %s", message.get("method", "a response"), self.url, e)


class _FreshConnector(aiohttp.TCPConnector):
    """Never sends on a pooled connection whose socket already shows the server's close (an idle
    close, a restart) that the event loop has not processed yet: httpcore's check (the SDK path),
    made before anything is written, so a call is never sent twice (see `_send`)."""

    async def _get(self, key: Any, traces: list[Any]) -> Connection | None:  # aiohttp's, private: hence aiohttp>=3.14
        while (connection := await super()._get(key, traces)) is not None and _shows_close(connection):
            connection.close()
        return connection


def _shows_close(connection: Connection) -> bool:
    """An idle HTTP/1.1 connection is never readable: if it is, the server closed it (or sent
    something unasked, which makes it as unusable)."""
    transport = connection.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is None or bool(select.select([sock], [], [], 0)[0])


def on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio: the SDK path serves
        return False
    return True


def _proxied(scheme: str, host: str) -> bool:
    proxies = urllib.request.getproxies()
    return (scheme in proxies or "all" in proxies) and not urllib.request.proxy_bypass(host)


async def _deliver(client: Client, method: str, params: Any, on_notification: Notify) -> None:
    """A notification on the call's stream, validated for the negotiated era as the SDK's
    `ClientSession._on_notify` does; progress (the lane never asks for it) and cancellations of
    ours are dropped as the SDK's dispatcher drops them."""
    if method in ("notifications/progress", "notifications/cancelled"):
        return
    try:
        notification = wire.parse_server_notification(method, client.protocol_version or "2025-11-25", params)
    except KeyError:
        logger.debug("dropped %r: not defined at %s", method, client.protocol_version)
        return
    except (ValidationError, ValueError):
        logger.warning("Failed to validate notification: %s", method, exc_info=True)
        return
    try:
        await on_notification(notification)
    except Exception:  # a raising callback costs only that delivery, as in the SDK
        logger.exception("notification callback for %r raised", method)
