"""The session lane: ordinary 2025-era `tools/call` POSTs on a live session, answered without the
SDK's session stack (its transport's SSE machinery, message router and dispatcher).

The rule is the tool-call lane's (`servers.call_lane`): **serve only what is provably ordinary;
anything else takes the SDK's path unchanged.** What a session adds, and how it is kept:

- **The session is known, live and the caller's.** Its transport is the one the SDK's manager
  holds for the `Mcp-Session-Id` (`_server_instances`: the one private name this reads, pinned
  by a test), not terminated, not expiring; its connection (`WorkbenchServer.legacy_sessions`)
  finished `initialize`; the request's credential is the one that created it, compared as the
  SDK compares it (`authorization_context`), so another principal's request never gets further
  than the SDK's 404.
- **Idle expiry sees every request.** The SDK expires a session once no request of its own has
  been in flight for `session_idle_timeout`, through the transport's public `idle_scope`. Every
  request naming a live session passes this lane first, so it counts them all (the ones it hands
  to the SDK too) and holds the scope's deadline off while any is in flight, restarting the
  countdown when the last ends, exactly the SDK's rule.
- **Cancellation reaches the call.** A `notifications/cancelled` POST naming a call this lane
  runs cancels it, and the call's stream ends with the SDK's `REQUEST_CANCELLED` error; the
  notification still goes on to the SDK, which acknowledges it (202).
- **What the call may send on its stream.** Logs are relayed as the SDK relays them on a 2025
  session (every level, unless `logging/setLevel` asked for fewer) as SSE events before the
  answer. A progress token, or client capabilities that let the call ask the client something
  (sampling, elicitation, roots: requests whose answers come back through the SDK's dispatcher),
  send the request to the SDK.

The answer is the SDK's: an SSE `message` event with the JSON-RPC response (its 2025 shaping,
the legacy exception-to-wire mapping), with the session header, committed early with pings for a
long call (`servers.lane_reply`); a client that hangs up cancels the call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import mcp.types as mt
from mcp.server.streamable_http import CONTENT_TYPE_JSON, REQUEST_CANCELLED, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params, handler_exception_to_error_data
from mcp_types import ErrorData, JSONRPCRequest, RequestId, jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from pydantic_core import from_json, to_json
from starlette.types import Receive, Scope, Send

from servers.auth import scope_access, scope_identity
from servers.lane_reply import CallWatch, call_params, response_json, send_whole, sse_frame
from servers.mcp_server import _LEVELS, _SESSION_KEY, OWNER_KEY, requestor
from servers.mcp_surface import _LEVEL_KEY
from workbench.core import CallContext

if TYPE_CHECKING:
    from mcp.server.connection import Connection

    from servers.call_lane import ToolCallLane

_METHOD = "tools/call"
_TRACE_KEYS = ("traceparent", "tracestate")


@dataclass(frozen=True)
class SessionCall:
    """An ordinary call on a live session, as the lane will run it."""

    session_id: str
    connection: Connection
    request_id: RequestId
    params: mt.CallToolRequestParams
    raw_params: dict[str, Any]
    meta: Mapping[str, Any]


class SessionLane:
    """The 2025-era half of `ToolCallLane`: requests that name an `Mcp-Session-Id`."""

    def __init__(self, lane: ToolCallLane, manager: StreamableHTTPSessionManager) -> None:
        self.lane = lane
        self.manager = manager
        self._in_flight: Counter[str] = Counter()
        """Requests naming each session that are being served, by this lane or the SDK."""
        self._calls: dict[tuple[str, RequestId], anyio.CancelScope] = {}

    def transport(self, session_id: str) -> StreamableHTTPServerTransport | None:
        """The SDK's live transport for `session_id`. Private to the SDK's manager, and the one private
        name this lane reads: `tests/servers/test_session_lane.py` fails loudly if it changes."""
        transport: StreamableHTTPServerTransport | None = self.manager._server_instances.get(session_id)
        return transport

    @contextmanager
    def serving(self, scope: Scope, session_id: str) -> Iterator[None]:
        """A request naming `session_id` is in flight: its session does not expire meanwhile, and its idle
        countdown restarts when the session's last request ends (the SDK's rule, for its requests and ours).
        Only its owner's requests count, as only they reach the SDK's transport: another principal naming
        the session gets the SDK's 404 and must not keep the session alive."""
        connection = self.lane.server.legacy_sessions.get(session_id)
        if connection is None or connection.state.get(OWNER_KEY) != requestor(scope):
            yield
            return
        self._in_flight[session_id] += 1
        self._hold(session_id)
        try:
            yield
        finally:
            self._in_flight[session_id] -= 1
            if self._in_flight[session_id] <= 0:
                del self._in_flight[session_id]
            self._hold(session_id)

    def _hold(self, session_id: str) -> None:
        transport = self.transport(session_id)
        timeout = self.manager.session_idle_timeout
        if transport is None or transport.idle_scope is None or timeout is None or transport.idle_scope.cancel_called:
            return
        # After the SDK served a request it restarts the countdown when *its* count reaches zero;
        # this runs after it and knows of the lane's requests too.
        busy = self._in_flight[session_id] > 0  # a Counter reads 0 for a session it does not hold
        transport.idle_scope.deadline = float("inf") if busy else anyio.current_time() + timeout

    def may_be_ordinary(self, scope: Scope, headers: Mapping[bytes, bytes], session_id: str) -> bool:
        """The checks that need no body (`ToolCallLane._may_be_ordinary` made the HTTP ones)."""
        manager = self.manager
        if manager.event_store is not None or manager.json_response or manager.stateless:
            return False  # resumable streams and JSON answers are the SDK's to write
        transport = self.transport(session_id)
        if transport is None or transport.is_terminated or (
                transport.idle_scope is not None and transport.idle_scope.cancel_called):
            return False
        connection = self.lane.server.legacy_sessions.get(session_id)
        if connection is None or not connection.initialize_accepted:
            return False
        version = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS or version != connection.protocol_version:
            return False
        capabilities = connection.client_capabilities
        if capabilities is not None and (capabilities.sampling is not None or capabilities.elicitation is not None
                                         or capabilities.roots is not None):
            return False
        return connection.state.get(OWNER_KEY) == requestor(scope)

    def _cancel_named(self, session_id: str, decoded: Any) -> None:
        """A `notifications/cancelled` for a call this lane runs on `session_id` cancels it."""
        if isinstance(decoded, dict) and decoded.get("method") == "notifications/cancelled" and "id" not in decoded:
            params = decoded.get("params")
            request_id = cancelled_request_id_from_params(params if isinstance(params, dict) else None)
            scope = self._calls.get((session_id, request_id)) if request_id is not None else None
            if scope is not None:
                scope.cancel()

    def ordinary(self, session_id: str, body: bytes, content_type: str) -> SessionCall | None:
        """The call, when the SDK's transport and handler would take it as is and it can ask nothing;
        on the way, a `notifications/cancelled` for a call of this lane's cancels it."""
        if CONTENT_TYPE_JSON not in (part.strip() for part in content_type.split(";")[0].split(",")):
            return None
        try:  # as the SDK's transport parses it
            decoded = from_json(body)
        except ValueError:
            return None
        self._cancel_named(session_id, decoded)
        try:
            message = jsonrpc_message_adapter.validate_python(decoded, by_name=False)
        except ValidationError:
            return None
        if not isinstance(message, JSONRPCRequest) or message.method != _METHOD:
            return None
        raw_params = message.params
        connection = self.lane.server.legacy_sessions.get(session_id)  # gone while the body came in: the SDK's
        if not isinstance(raw_params, dict) or connection is None:
            return None
        if (params := call_params(connection.protocol_version, raw_params)) is None:
            return None
        meta = raw_params.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        if params.task is not None or meta.get("progressToken") is not None or (session_id, message.id) in self._calls:
            return None
        return SessionCall(session_id, connection, message.id, params, raw_params, meta)

    async def answer(self, scope: Scope, receive: Receive, send: Send, request: SessionCall) -> None:
        """Run the call and answer on an SSE stream, as the SDK's transport does."""
        headers = [(b"cache-control", b"no-cache, no-transform"), (b"connection", b"keep-alive"),
                   (b"content-type", b"text/event-stream"), (b"mcp-session-id", request.session_id.encode()),
                   (b"x-accel-buffering", b"no")]
        call = anyio.CancelScope()
        watch = CallWatch(receive, send, call, headers)
        key = (request.session_id, request.request_id)
        self._calls[key] = call
        reply: bytes | None = None
        try:
            with call:
                try:
                    result = await self.lane.run_call(
                        self._call_context(scope, request, watch), False, request.connection.protocol_version,
                        request.request_id, request.params, request.raw_params, request.meta)
                    reply = response_json(request.request_id, result)
                except Exception as exc:  # the legacy dispatcher's exception-to-wire mapping
                    error = handler_exception_to_error_data(exc) or ErrorData(code=0, message=str(exc))
                    reply = _error_json(request.request_id, error)
        finally:
            self._calls.pop(key, None)
            committed = await watch.stop()
        if reply is None:  # cancelled: the client left (nothing to write), or asked to cancel
            if watch.hung_up:
                return
            reply = _error_json(request.request_id, ErrorData(code=REQUEST_CANCELLED, message="Request cancelled"))
        if committed:
            await watch.finish(sse_frame(reply))
        else:
            await send_whole(send, 200, headers, sse_frame(reply))

    def _call_context(self, scope: Scope, request: SessionCall, watch: CallWatch) -> CallContext:
        """The caller as `WorkbenchServer._call_context` sees a 2025-era session request that asked for
        no progress and declared nothing the call could ask."""
        connection = request.connection
        level: mt.LoggingLevel | None = connection.state.get(_LEVEL_KEY)

        async def log(params: mt.LoggingMessageNotificationParams) -> None:
            if level is not None and _LEVELS.index(params.level) < _LEVELS.index(level):
                return
            notification = {"jsonrpc": "2.0", "method": "notifications/message",
                            "params": params.model_dump(by_alias=True, mode="json", exclude_none=True)}
            await watch.emit(sse_frame(to_json(notification, inf_nan_mode="constants")))

        access = scope_access(scope)
        meta = request.meta
        return CallContext(
            session_id=connection.state[_SESSION_KEY], identity=scope_identity(scope), log=log,
            trace_context={k: v for k in _TRACE_KEYS if isinstance(v := meta.get(k), str)},
            scopes=frozenset(access.scopes) if access else frozenset(),
            claims=access.claims or {} if access else {}, log_level=level,
            protocol_version=connection.protocol_version)


def _error_json(request_id: RequestId, error: ErrorData) -> bytes:
    return to_json({"jsonrpc": "2.0", "id": request_id,
                    "error": error.model_dump(by_alias=True, mode="json", exclude_unset=True)})
