"""The tool-call lane: ordinary 2026-07-28 `tools/call` POSTs answered without the SDK's server stack.

**The lane serves only requests it can prove ordinary; anything else takes the SDK's path
unchanged.** It sits in front of the SDK's `StreamableHTTPASGIApp`, inside authentication,
`RequestGate` and the legacy-session guard, so those apply to every request alike. Fidelity is
kept by construction: each check below is the SDK's own (`TransportSecurityMiddleware`,
`check_accept_headers`, `classify_inbound_request`, the per-version surface validation, the
`Mcp-Param-*` validation) or stricter, and a request any of them would not pass untouched goes
to the SDK with its body replayed, so the SDK answers it exactly as it would have.

Ordinary means: a POST with no `Mcp-Session-Id`, an `MCP-Protocol-Version` the SDK serves in the
modern era, no header sent twice, JSON content, an Accept naming both JSON and SSE (the SDK
refuses less with 406), a declared body length within `max_request_bytes`; one JSON-RPC request
(`jsonrpc` "2.0", an int or string id) for `tools/call` whose envelope, headers and params pass
the SDK's checks; no progress token, no log level, no `requestState`/`inputResponses`, no task,
client capabilities that let nothing be asked (no sampling, elicitation or roots), and, where the
server serves MCP tasks, neither the tasks extension declared nor a tool that runs only as a task
(such a call may become a task or be refused, `servers.tasks`). Then no
notification and no input round can arise, and the answer is the one JSON-RPC response the SDK
would send, with its HTTP status mapping. The call itself runs through the same core as the SDK
handler (`WorkbenchServer.serve_call`: drain, session caps, per-client concurrency, in-flight
tracking, unknown-tool suggestions) and the same served chain (policy, rate limits, audit,
Studio recording, jobs); the caller is bound for the policy as the SDK middleware binds it, and
the SDK's OpenTelemetry middleware opens its span when a tracer is installed. A client that
hangs up cancels the call; a call silent for the SDK's keepalive window commits to an SSE
response with pings, as the SDK does, so a proxy's idle timeout cannot cut it.

2025-era POSTs on a session (an `Mcp-Session-Id`) are the session lane's (`servers.session_lane`),
under the same rule; the way both lanes answer and watch a running call is `servers.lane_reply`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import anyio
import mcp.types as mt
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server._streamable_http_modern import _SSE_HEADERS, _sse_event, _write
from mcp.server.connection import Connection
from mcp.server.context import ServerMiddleware
from mcp.server.runner import ServerRunner, modern_error_data
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.inbound import (
    MCP_PARAM_HEADER_PREFIX,
    InboundModernRoute,
    classify_inbound_request,
    validate_mcp_param_headers,
    x_mcp_header_map,
)
from mcp_types import LOG_LEVEL_META_KEY, JSONRPCError, RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_MODERN_VERSION, MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace
from pydantic_core import from_json
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servers.auth import scope_access, scope_identity
from servers.lane_reply import CallWatch, call_params, response_json, send_whole, sse_frame
from servers.mcp_server import WorkbenchServer
from servers.mcp_surface import Ctx
from servers.policy import calling_as
from servers.session_lane import SessionLane
from servers.sessions import stateless_session_id
from servers.settings import SESSION_HEADER
from workbench.core import CallContext

_METHOD = "tools/call"
_SESSION = SESSION_HEADER.lower()
_PARAM_PREFIX = MCP_PARAM_HEADER_PREFIX.lower()
_TRACE_KEYS = ("traceparent", "tracestate")
_ASKING_CAPABILITIES = ("sampling", "elicitation", "roots")
_LENGTH_DIGITS = 20  # a uint64 in decimal
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class _Ordinary:
    """What the lane learned from a request it will answer."""

    request_id: RequestId
    version: str
    params: mt.CallToolRequestParams
    raw_params: dict[str, Any]
    meta: Mapping[str, Any]


@dataclass(frozen=True)
class _SpanSubject:
    """The request as the SDK's OpenTelemetry middleware reads it (`method`, `params`,
    `protocol_version`, `request_id`, `meta`): handing it this runs the SDK's span code as is."""

    method: str
    params: dict[str, Any]
    protocol_version: str
    request_id: RequestId
    meta: Mapping[str, Any]


class ToolCallLane:
    """ASGI app: ordinary `tools/call` POSTs answered here, every other request passed to `sdk_app`."""

    def __init__(self, server: WorkbenchServer, sdk_app: ASGIApp, *, max_request_bytes: int,
                 security: TransportSecuritySettings | None,
                 sessions: StreamableHTTPSessionManager | None = None) -> None:
        self.server = server
        self.sdk_app = sdk_app
        self.max_request_bytes = max_request_bytes
        self.security = TransportSecurityMiddleware(security)
        self._shaper: ServerRunner[Any] | None = None
        self._declares_param_headers: dict[str, tuple[Any, bool]] = {}
        self._middleware_passed: list[ServerMiddleware[Any]] = []
        self._otel: OpenTelemetryMiddleware | None = None
        server.lane = self
        self.sessions = SessionLane(self, sessions) if sessions is not None else None
        """2025-era calls on live sessions (`servers.session_lane`), given the SDK's session manager."""
        self.answered = 0
        """Requests this lane answered itself (the rest went to the SDK): for tests and metrics."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = _session_named(scope) if self.sessions is not None else None
        if session_id is None:
            await self._serve(scope, receive, send, None)
            return
        assert self.sessions is not None
        with self.sessions.serving(scope, session_id):
            await self._serve(scope, receive, send, session_id)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, session_id: str | None) -> None:
        if not self._may_be_ordinary(scope, session_id):
            await self.sdk_app(scope, receive, send)
            return
        chunks: list[bytes] = []
        limit = self.max_request_bytes
        size, complete, trailing = 0, False, None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                trailing = message  # the client left before its body was in: the SDK's to answer
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > limit:  # longer than declared would be the server's bug; never buffer past the limit
                break
            if not message.get("more_body", False):
                complete = True
                break
        body = b"".join(chunks)
        if session_id is None:
            request = await self._ordinary(scope, body) if complete else None
            if request is not None:
                self.answered += 1
                await self._answer(scope, receive, send, request)
                return
        elif complete and await self._transport_passes(scope):
            assert self.sessions is not None
            call = self.sessions.ordinary(session_id, body, _header(scope, b"content-type") or "")
            if call is not None:
                self.answered += 1
                await self.sessions.answer(scope, receive, send, call)
                return
        await self.sdk_app(scope, _replaying(body, complete, trailing, receive), send)

    def _may_be_ordinary(self, scope: Scope, session_id: str | None) -> bool:
        """The checks that need no body: when one fails the request reaches the SDK untouched."""
        if scope["type"] != "http" or scope["method"] != "POST" or not self._own_middleware_only():
            return False
        raw = scope["headers"]
        headers = {k: v for k, v in raw}
        if len(headers) != len(raw):  # a header sent twice: first- and last-copy readers could disagree
            return False
        length = headers.get(b"content-length", b"")
        # llhttp accepts leading zeros, and int() refuses more than 4300 digits: a length no
        # ordinary client would spell is the SDK's to read, never a ValueError (a 500) here.
        if not (length.isdigit() and len(length) <= _LENGTH_DIGITS and 0 < int(length) <= self.max_request_bytes):
            return False
        if session_id is not None:
            return self.sessions is not None and self.sessions.may_be_ordinary(scope, headers, session_id)
        return (b"mcp-session-id" not in headers
                and headers.get(b"mcp-protocol-version", b"").decode("latin-1") in MODERN_PROTOCOL_VERSIONS)

    async def _transport_passes(self, scope: Scope) -> bool:
        """The SDK transports' first checks of a POST: Host and Origin, then an Accept naming JSON and SSE."""
        request = Request(scope)
        if await self.security.validate_request(request, is_post=True) is not None:
            return False
        has_json, has_sse = check_accept_headers(request)
        return has_json and has_sse

    def _own_middleware_only(self) -> bool:
        """The lane stands in for the SDK's handler chain as this server builds it; middleware
        added by anyone else would be skipped, so its presence sends every request to the SDK.
        (Checked in full only when the list differs from the last one passed, element by element.)"""
        middleware = self.server.server.middleware
        if middleware == self._middleware_passed:
            return True
        own = self.server.own_middleware
        if not all(isinstance(m, OpenTelemetryMiddleware) or m in own for m in middleware):
            return False
        self._middleware_passed = list(middleware)
        return True

    async def _ordinary(self, scope: Scope, body: bytes) -> _Ordinary | None:
        """The request, when every check the SDK would make passes and nothing in it needs more
        than one JSON answer; None otherwise."""
        if not await self._transport_passes(scope):
            return None
        try:  # pydantic-core's parser refuses some bodies `json.loads` takes (those go to the SDK), never the reverse
            decoded = from_json(body)
        except ValueError:
            return None
        if not isinstance(decoded, dict) or decoded.get("jsonrpc") != "2.0" or decoded.get("method") != _METHOD:
            return None
        request_id, raw_params = decoded.get("id"), decoded.get("params")
        if not (type(request_id) is int or type(request_id) is str) or not isinstance(raw_params, dict):
            return None
        # What `dict(request.headers)` gives, read once: `_may_be_ordinary` proved no header came twice.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        verdict = classify_inbound_request(decoded, headers=headers)
        if not isinstance(verdict, InboundModernRoute):
            return None
        if (params := call_params(verdict.protocol_version, raw_params)) is None:
            return None
        meta: Mapping[str, Any] = raw_params["_meta"]  # classify_inbound_request proved it a mapping
        capabilities = verdict.client_capabilities
        if (params.task is not None or params.request_state is not None or params.input_responses is not None
                or meta.get("progressToken") is not None or LOG_LEVEL_META_KEY in meta
                or not isinstance(capabilities, dict)
                or any(capabilities.get(c) is not None for c in _ASKING_CAPABILITIES)
                or self.server.tasks.concerns(params.name, capabilities)):
            return None
        if not self._param_headers_agree(params, headers):
            return None
        return _Ordinary(request_id, verdict.protocol_version, params, raw_params, meta)

    def _param_headers_agree(self, params: mt.CallToolRequestParams, headers: Mapping[str, str]) -> bool:
        """The SDK's `Mcp-Param-*` check against the tool's schema, where it would run."""
        arguments = params.arguments or {}
        if not arguments and not any(h.startswith(_PARAM_PREFIX) for h in headers):
            return True
        lookup = self.server.server.get_tool_input_schema
        if lookup is None:  # the SDK would list the tools to find the schema: its path, not ours
            return False
        try:
            schema = lookup(params.name)
        except Exception:  # the SDK fails open here; the lane leaves the request to it
            return False
        if schema is None:
            return True
        # Walking the schema for `x-mcp-header` costs more than the rest of the checks together; a schema
        # that declares none can reject nothing, so that is worked out once per schema (held, so the
        # identity test cannot be fooled by a new schema at a reused address).
        known = self._declares_param_headers.get(params.name)
        if known is None or known[0] is not schema:
            known = self._declares_param_headers[params.name] = (schema, bool(x_mcp_header_map(schema)))
        return not known[1] or validate_mcp_param_headers(schema, arguments, headers) is None

    async def _answer(self, scope: Scope, receive: Receive, send: Send, request: _Ordinary) -> None:
        """Run the call; answer JSON, or SSE with keepalive pings once the SDK's window has passed
        in silence (`servers.lane_reply`). The client hanging up cancels the call, and nothing is
        written then."""
        call = anyio.CancelScope()
        watch = CallWatch(receive, send, call, _SSE_HEADERS)
        reply: bytes | JSONRPCError | None = None
        try:
            with call:
                try:
                    reply = response_json(request.request_id, await self._result(scope, request))
                except Exception as exc:  # the SDK's exception-to-wire mapping (`_to_jsonrpc_response`)
                    reply = JSONRPCError(jsonrpc="2.0", id=request.request_id, error=modern_error_data(exc))
        finally:
            committed = await watch.stop()
        if call.cancel_called or reply is None:
            return  # the client left
        if committed:
            await watch.finish(sse_frame(reply) if isinstance(reply, bytes) else _sse_event(reply))
        elif isinstance(reply, JSONRPCError):
            await _write(reply, scope, receive, send)  # the SDK's status mapping, for the rare error
        else:
            await send_whole(send, 200, _JSON, reply)

    async def _result(self, scope: Scope, request: _Ordinary) -> dict[str, Any]:
        call = self._call_context(scope, request)
        return await self.run_call(call, True, request.version, request.request_id, request.params,
                                   request.raw_params, request.meta)

    async def run_call(self, call: CallContext, stateless: bool, version: str, request_id: RequestId,
                       params: mt.CallToolRequestParams, raw_params: dict[str, Any],
                       meta: Mapping[str, Any]) -> dict[str, Any]:
        """What the SDK's handler chain does with an ordinary call, for either lane: the caller bound for the
        policy (as the SDK middleware `bind_caller` binds it), the SDK's span when tracing, the call served
        by `WorkbenchServer.serve_call`, the result shaped for `version` by the SDK."""
        with calling_as(call):
            otel = self._tracing()
            if otel is None:
                return await self._serve_call(call, stateless, version, params)

            async def inner(_: Ctx) -> dict[str, Any]:
                return await self._serve_call(call, stateless, version, params)

            subject = _SpanSubject(_METHOD, raw_params, version, request_id, meta)
            return cast(dict[str, Any], await otel(cast(Ctx, subject), inner))

    async def _serve_call(self, call: CallContext, stateless: bool, version: str,
                          params: mt.CallToolRequestParams) -> dict[str, Any]:
        answer = await self.server.serve_call(params.name, params.arguments or {}, call.session_id, stateless,
                                              lambda: call)
        if self._shaper is None:
            # The SDK's own result shaping (cache hints, the per-version sieve, `resultType`, the
            # `serverInfo` stamp): private, but the one place it lives, and it reads only the server.
            # (Built on first use: a connection needs a running event loop.)
            connection = Connection.from_envelope(LATEST_MODERN_VERSION, None, None)
            self._shaper = ServerRunner(self.server.server, connection, None)
        return self._shaper._serialize(_METHOD, version, answer)

    def _call_context(self, scope: Scope, request: _Ordinary) -> CallContext:
        """The caller as the SDK handler's `_call_context` sees a 2026-07-28 request that asked for
        no progress and no logs and can be asked nothing."""
        identity = scope_identity(scope)
        session_header = next((v.decode("latin-1") for k, v in scope["headers"] if k == _SESSION.encode()), None)
        access = scope_access(scope)
        meta = request.meta
        return CallContext(
            session_id=stateless_session_id(identity, session_header), identity=identity,
            trace_context={k: v for k in _TRACE_KEYS if isinstance(v := meta.get(k), str)},
            scopes=frozenset(access.scopes) if access else frozenset(),
            claims=access.claims or {} if access else {}, protocol_version=request.version)

    def _tracing(self) -> OpenTelemetryMiddleware | None:
        """The SDK's span middleware, when the server has it and a tracer provider is installed
        (without one its spans are no-ops; once installed, a provider stays)."""
        if self._otel is None and not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            self._otel = next((m for m in self.server.server.middleware if isinstance(m, OpenTelemetryMiddleware)),
                              None)
        return self._otel


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def _session_named(scope: Scope) -> str | None:
    """The `Mcp-Session-Id` of an HTTP request the SDK routes to a 2025-era session (no version header, or
    a handshake-era one: the SDK's own era routing); None for any other request."""
    if scope["type"] != "http":
        return None
    version = _header(scope, b"mcp-protocol-version")
    return _header(scope, b"mcp-session-id") if version is None or version in HANDSHAKE_PROTOCOL_VERSIONS else None


def _replaying(body: bytes, complete: bool, trailing: Message | None, receive: Receive) -> Receive:
    """`receive` as if nothing had been read: what the lane read comes first, then the rest."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]
    if trailing is not None:
        pending.append(trailing)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay

