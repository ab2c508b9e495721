"""A `Workbench` as an MCP server: the SDK's low-level `Server` with handlers that forward
to the workbench, over either protocol era.

Per call, the handler builds a `CallContext` whose callbacks reach back to the calling
client: progress notifications, log messages, and (on 2025-era connections, the only
ones with a server→client request channel) sampling, elicitation and roots requests
relayed from upstream servers. Tool failures come back as `isError` results, an unknown
or unexposed tool as a JSON-RPC error, exactly as MCP asks.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp.types as mt
from mcp.client.session import ClientRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import (
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Scope

from adapters.mcp_tasks import CreatedTask
from servers.audit import Audited
from servers.auth import scope_access, scope_identity
from servers.input_rounds import InputRounds
from servers.jobs import JobsWorkbench
from servers.mcp_surface import (
    _LEVEL_KEY,
    _SUBSCRIBED_KEY,
    Ctx,
    R,
    SessionBus,
    SurfaceHandlers,
    T,
    _connection,
)
from servers.policy import PolicyWorkbench, bind_caller
from servers.rate_limit import RateLimited
from servers.session_cap import LegacySessionCap
from servers.sessions import (
    STDIO_IDENTITY,
    SessionLimitError,
    SessionRegistry,
    stateless_session_id,
)
from servers.settings import SESSION_HEADER, ServeSettings
from servers.task_relay import upstreams_offer_tasks
from servers.tasks import TaskSurface
from workbench.core import (
    CallContext,
    ToolNotFoundError,
    ToolResult,
    ToolSpec,
    Workbench,
    logger,
)
from workbench.shaped import Globs, Shaped

_SESSION_KEY = "workbench.session_id"
OWNER_KEY = "workbench.owner"
"""A 2025-era HTTP session's `Connection.state` key: the credential that owns it, as the SDK compares it."""
_LEVELS: tuple[mt.LoggingLevel, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_TRACE_KEYS = ("traceparent", "tracestate")
Answer = mt.CallToolResult | mt.InputRequiredResult | CreatedTask
"""A `tools/call` answer; `CreatedTask`: a relayed upstream task (`servers.task_relay`)."""


class _Server(Server[Any]):
    """The SDK server, advertising `listChanged` to 2025-era clients: we do send it."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = notification_options or NotificationOptions(
            tools_changed=True, prompts_changed=True, resources_changed=True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)


class WorkbenchServer(SurfaceHandlers):
    """Owns the SDK server for one workbench, the client sessions, and in-flight calls."""

    def __init__(self, workbench: Workbench, settings: ServeSettings) -> None:
        self.workbench = workbench
        """As given (its owner starts and stops it); clients reach it through `served`."""
        self.settings = settings
        expose = Globs(tuple(settings.expose))
        self.policy = PolicyWorkbench(Shaped(workbench, tools=expose, prompts=expose), settings.policy)
        self.jobs = JobsWorkbench(self.policy, background=settings.background,
                                  max_running_per_session=settings.max_concurrent_calls_per_client)
        from servers.studio.recording import RecordingWorkbench, RunStore  # here: servers.studio imports this module

        # The recorder outside the limits and the policy: a refused call (rate limit, policy) is a run too.
        self.recorder = RecordingWorkbench(Audited(RateLimited(self.jobs, settings.limits), settings.audit),
                                           RunStore.open(settings.runs_path))
        self.served: Workbench = self.recorder
        """The workbench as clients see it: the `expose` allowlist and the policy applied, background jobs
        added, rate limited, audited, calls recorded."""
        self.sessions = SessionRegistry(self.served, settings.session_idle_timeout, settings.max_sessions)
        self.legacy_cap = LegacySessionCap(settings.max_sessions_per_identity,
                                           idle_timeout=settings.session_idle_timeout)
        self.bus = SessionBus()
        self.rounds = InputRounds()
        self._listen = ListenHandler(self.bus)
        self.stdio_session_id: str | None = None
        """Set while serving stdio: the one client of this process."""
        self.draining = False
        self._inflight: set[anyio.CancelScope] = set()
        self._legacy: set[Connection] = set()
        self.legacy_sessions: dict[str, Connection] = {}
        """2025-era HTTP sessions' connections by their `Mcp-Session-Id`, while they live: the session lane's
        (`servers.session_lane`) view of them."""
        self.lane: ASGIApp | None = None
        """The HTTP app's tool-call lane (`servers.call_lane`), once mounted: it registers itself."""
        self.server = _Server(
            settings.server_name,
            version=settings.server_version,
            # Without this the SDK runs the whole tools/list handler on every 2026-era tools/call
            # to validate Mcp-Param headers; the schemas of the last listing answer it instead.
            get_tool_input_schema=self.policy.input_schema,
            on_list_tools=self._list_tools,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_resource_templates,
            on_read_resource=self._read_resource,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_completion=self._complete,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_subscriptions_listen=self._listen_stream,
        )
        # Logging is deprecated at 2026-07-28 but is the 2025 era's: registered here, without the warning.
        self.server.add_request_handler("logging/setLevel", mt.SetLevelRequestParams, self._set_level)
        # Registered here rather than as `on_call_tool`: its answer may be a task (`CreateTaskResult`).
        self.server.add_request_handler("tools/call", mt.CallToolRequestParams, self._call_tool)
        self.tasks = TaskSurface(self.jobs, self.identity, required=settings.tasks_required)
        """`serve.background` tools as MCP tasks for 2026-07-28 clients that declare the extension."""
        self.tasks.install(self.server)
        self.own_middleware: tuple[ServerMiddleware[Any], ...] = (
            self._track_legacy_connection,
            bind_caller(lambda ctx: self._call_context(ctx, self.session_id(ctx)[0])),
        )
        """What this server adds to the SDK's middleware: `servers.call_lane` does their part itself."""
        self.server.middleware.extend(self.own_middleware)

    # ---- lifecycle -------------------------------------------------------------------
    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Background work for as long as the server serves: jobs, the idle reaper, change relay."""
        unsubscribe = self.served.on_event(self._on_event)
        try:
            await self.listed_tools()  # learn the input schemas before the first call
        except Exception as e:  # a source that cannot list yet is retried on the clients' listings
            logger.warning("cannot list tools at start: %s", e)
        try:
            async with anyio.create_task_group() as tg:
                self.jobs.manager.task_group = self.rounds.task_group = tg
                tg.start_soon(self.sessions.reap_idle)
                tg.start_soon(self._relay_upstream_tasks)  # in the background: an upstream may be slow to answer
                tg.start_soon(self.tasks.relay.cancel_abandoned)
                try:
                    yield
                finally:
                    self.jobs.manager.task_group = self.rounds.task_group = None
                    await self.sessions.close_all()
                    tg.cancel_scope.cancel()
        finally:
            unsubscribe()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def drain(self, grace: float) -> None:
        """Stop taking calls; let running ones finish for `grace` seconds, then cancel the rest
        (their clients get an `isError` result saying so)."""
        self.draining = True
        with anyio.move_on_after(grace):
            while self._inflight:
                await anyio.sleep(0.05)
        await self.cancel_calls()

    async def cancel_calls(self) -> None:
        self.draining = True
        for scope in list(self._inflight):
            scope.cancel()
        with anyio.move_on_after(2.0):  # let the cancelled calls write their answers
            while self._inflight:
                await anyio.sleep(0.01)

    async def tools_changed(self) -> None:
        """The workbench's tool list changed: tell every client, in both eras."""
        await self._on_event(ToolsListChanged(), None)

    async def _relay_upstream_tasks(self) -> None:
        """Advertise the tasks extension once an upstream does (asked again when the tools change: an
        upstream that was down at start says it came back that way)."""
        try:
            offered = await upstreams_offer_tasks(self.workbench)
        except Exception as e:  # a probe that fails leaves the advertisement as it was
            logger.warning("cannot learn whether upstreams serve MCP tasks: %s", e)
            return
        self.tasks.relay_upstreams(offered)

    async def _on_event(self, event: ServerEvent, session_id: str | None) -> None:
        """A change in the workbench, to the clients it concerns, in both eras: 2026-07-28 clients
        on their `subscriptions/listen` streams (which filter by kind and URI), 2025-era ones on
        their session's standalone channel — a resource update only to those that subscribed."""
        if isinstance(event, ToolsListChanged) and session_id is None \
                and (tg := self.jobs.manager.task_group) is not None:
            tg.start_soon(self._relay_upstream_tasks)
        await self.bus.publish(event, session_id)
        if isinstance(event, ResourceUpdated):
            method, params = "notifications/resources/updated", {"uri": event.uri}
        else:
            method, params = _LIST_CHANGED[type(event)], None
        for connection in list(self._legacy):
            if session_id is not None and connection.state.get(_SESSION_KEY) != session_id:
                continue
            if isinstance(event, ResourceUpdated) and event.uri not in connection.state.get(_SUBSCRIBED_KEY, ()):
                continue
            await connection.notify(method, params)  # best effort: never raises

    # ---- who is calling --------------------------------------------------------------
    async def _track_legacy_connection(self, ctx: Ctx, call_next: CallNext) -> HandlerResult:
        # Middleware sees `initialize`, so a 2025-era client is known (and told about list
        # changes) from its first message; its session ends when its connection closes.
        connection = _connection(ctx)
        session = connection.session_id
        if ctx.request is not None and session is not None and self.legacy_cap.claim(ctx.request.scope, session):
            # The request that opened this session reserved a per-identity slot; it is the session's
            # until the SDK ends the session, which unwinds this exit stack however that happens.
            connection.exit_stack.callback(self.legacy_cap.release, session)
        if _SESSION_KEY not in connection.state and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            session_id = f"http-{connection.session_id}" if connection.session_id else self.stdio_session_id
            if session_id is not None and connection.has_standalone_channel:
                connection.state[_SESSION_KEY] = session_id
                self.sessions.touch(session_id, stateless=False)
                self._legacy.add(connection)
                if ctx.request is not None and connection.session_id is not None:
                    # The SDK lets only its creator's credential reach a session, so any request of it names the owner.
                    connection.state[OWNER_KEY] = requestor(ctx.request.scope)
                    self.legacy_sessions[connection.session_id] = connection
                connection.exit_stack.push_async_callback(self._connection_closed, connection, session_id)
        return await call_next(ctx)

    async def _connection_closed(self, connection: Connection, session_id: str) -> None:
        self._legacy.discard(connection)
        if connection.session_id is not None:
            self.legacy_sessions.pop(connection.session_id, None)
        if session_id != self.stdio_session_id:  # stdio's session ends with the process's serve loop
            await self.sessions.close(session_id)

    def session_id(self, ctx: Ctx) -> tuple[str, bool]:
        """The caller's session id, and whether it is stateless (ended by idling, not by a connection)."""
        known = _connection(ctx).state.get(_SESSION_KEY)
        if known is not None:
            return known, False
        if ctx.request is None:  # stdio, either era
            return self.stdio_session_id or "stdio", False
        return stateless_session_id(self.identity(ctx), ctx.request.headers.get(SESSION_HEADER)), True

    def identity(self, ctx: Ctx) -> str:
        """Who is calling, apart from which session (one identity may hold several): the principal
        servers.auth authenticated, never anything a client merely sends."""
        if ctx.request is None:
            return STDIO_IDENTITY
        return scope_identity(ctx.request.scope)

    # ---- tools -----------------------------------------------------------------------
    async def listed_tools(self) -> list[ToolSpec]:
        """The tools clients see (the SDK's per-call schema lookups are answered by the policy)."""
        return await self.served.list_tools()

    async def _list_tools(self, ctx: Ctx, params: mt.PaginatedRequestParams | None) -> mt.ListToolsResult:
        return mt.ListToolsResult(tools=await self.listed_tools())

    async def _run_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> ToolResult:
        try:
            return await self.served.call_tool(name, arguments, ctx)
        except (ToolNotFoundError, MCPError):  # an unknown tool; an upstream's JSON-RPC error, passed on
            raise
        except Exception as e:  # the workbench promised is_error results; keep the server up if it slips
            logger.exception("tool %s raised", name)
            return ToolResult.error(f"{name} failed: {type(e).__name__}: {e}")

    async def _call_tool(self, ctx: Ctx, params: mt.CallToolRequestParams) -> Answer | dict[str, Any]:
        """The SDK's `tools/call` handler: this transport's way of running the call, around `serve_call`
        (a background tool called by a client that takes tasks becomes one, `servers.tasks`)."""
        name, arguments = params.name, params.arguments or {}
        session_id, stateless = self.session_id(ctx)
        if self.tasks.enabled:
            created = await self.tasks.call(name, arguments, ctx, lambda tool, args: self.serve_call(
                tool, args, session_id, stateless, lambda: self._call_context(ctx, session_id)))
            if created is not None:
                return created

        async def run(call: CallContext) -> Answer | None:
            if not ctx.session.can_send_request:  # no back-channel (2026-07-28): questions become input rounds
                # An upstream's task, for a client that takes tasks, is relayed (`servers.task_relay`).
                return await self._in_rounds(ctx, params, call, lambda: self._run_tool(name, arguments, call),
                                             lambda result: self.tasks.answer(result, call))
            if ctx.request is not None and _connection(ctx).session_id is not None:
                result = await self._until_disconnect(ctx.request, self._run_tool(name, arguments, call))
                return None if result is None else result.to_mcp()
            return (await self._run_tool(name, arguments, call)).to_mcp()

        return await self.serve_call(name, arguments, session_id, stateless,
                                     lambda: self._call_context(ctx, session_id), run)

    async def serve_call(
        self, name: str, arguments: dict[str, Any], session_id: str, stateless: bool,
        context: Callable[[], CallContext], run: Callable[[CallContext], Awaitable[Answer | None]] | None = None,
    ) -> Answer:
        """One tool call, whichever transport brought it (the SDK's handler, `servers.call_lane`):
        refused while draining, over the session caps or the per-client concurrency cap; else
        run through the served chain with the caller's context — by `run` where the transport
        adds to that (input rounds, a disconnect watch; None: its scope was cancelled) — tracked
        in flight so drain and shutdown can cancel it. An unknown tool is a JSON-RPC -32602
        naming the tools this caller may see."""
        if self.draining:
            return ToolResult.error("the server is shutting down; retry the call on a running server").to_mcp()
        try:
            session = self.sessions.touch(session_id, stateless=stateless)
        except SessionLimitError as e:
            return ToolResult.error(str(e)).to_mcp()
        if session.active_calls >= self.settings.max_concurrent_calls_per_client:
            return ToolResult.error(
                f"too many concurrent calls from this client (limit {self.settings.max_concurrent_calls_per_client}); "
                "wait for one to finish and retry"
            ).to_mcp()
        call = context()
        answer: Answer | None = None
        with anyio.CancelScope() as scope:
            self._inflight.add(scope)
            session.active_calls += 1
            try:
                if run is not None:
                    answer = await run(call)
                else:
                    answer = (await self._run_tool(name, arguments, call)).to_mcp()
            except ToolNotFoundError:
                specs = await self.listed_tools()  # suggest only names this client may see
                raise MCPError(mt.INVALID_PARAMS, str(ToolNotFoundError(name, [s.name for s in specs]))) from None
            finally:
                self._inflight.discard(scope)
                session.active_calls -= 1
                session.last_seen = time.monotonic()
        # No per-call info line: the audit line (servers.audit) is the record of every call.
        if answer is None:  # our own scope was cancelled: shutdown ran out of grace, or the client left
            return ToolResult.error(f"{name} was cancelled: the server is shutting down").to_mcp()
        return answer

    async def _in_rounds(
        self, ctx: Ctx, params: mt.InputResponseRequestParams, call: CallContext,
        run: Callable[[], Awaitable[T]], to_wire: Callable[[T], R],
    ) -> R | mt.InputRequiredResult:
        """A request from a client without a back-channel; see `servers.input_rounds`."""
        if params.request_state is not None:  # a retry carrying answers: the first request's kind of result
            resumed = await self.rounds.resume(call.identity, params.request_state, params.input_responses,
                                               call.progress)
            return resumed  # type: ignore[return-value]
        parked = self.rounds.park(call, ctx.session.client_capabilities)

        async def wire() -> R:
            return to_wire(await run())

        return await self.rounds.start(parked, wire)

    @staticmethod
    async def _until_disconnect(request: Any, call: Awaitable[ToolResult]) -> ToolResult | None:
        """Run `call`, cancelling it if the client drops the HTTP request that carries it.

        A 2025-era session outlives its requests, and the SDK keeps serving a request whose
        client went away (it could resume the stream), so a vanished client's tool — an agent,
        a sandbox run — would run on. The modern era aborts on disconnect by itself."""
        result: ToolResult | None = None
        not_found: ToolNotFoundError | MCPError | None = None
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                result = await call
            except (ToolNotFoundError, MCPError) as e:  # raised past the task group, it would arrive wrapped
                not_found = e
            tg.cancel_scope.cancel()
        if not_found is not None:
            raise not_found
        return result

    def _call_context(self, ctx: Ctx, session_id: str) -> CallContext:
        session = ctx.session
        # `_meta` is an open map: the trace keys are extra items, which mypy's TypedDict cannot index.
        meta: Mapping[str, object] = ctx.meta or {}
        trace = {k: v for k in _TRACE_KEYS if isinstance(v := meta.get(k), str)}

        connection = _connection(ctx)
        level: mt.LoggingLevel | None = connection.state.get(_LEVEL_KEY)
        if connection.protocol_version in MODERN_PROTOCOL_VERSIONS:  # per request; the SDK filters by it
            asked = meta.get(LOG_LEVEL_META_KEY)
            level = asked if isinstance(asked, str) and asked in _LEVELS else None

        async def log(params: mt.LoggingMessageNotificationParams) -> None:
            if level is not None and _LEVELS.index(params.level) < _LEVELS.index(level):
                return  # below what this client asked for
            with warnings.catch_warnings():  # logging is deprecated at 2026-07-28 but still relayed where asked for
                warnings.simplefilter("ignore")
                await session.send_log_message(params.level, params.data, params.logger,
                                               related_request_id=ctx.request_id)

        # Progress only when the client asked for it (a token): an upstream is then not asked either.
        progress = session.report_progress if meta.get("progress_token") is not None else None
        access = scope_access(ctx.request.scope) if ctx.request is not None else None
        call = CallContext(session_id=session_id, identity=self.identity(ctx), progress=progress, log=log,
                           trace_context=trace, scopes=frozenset(access.scopes) if access else frozenset(),
                           claims=access.claims or {} if access else {}, log_level=level,
                           protocol_version=connection.protocol_version, tasks=self.tasks.takes_tasks(ctx))
        return self._relaying(ctx, call)

    def _relaying(self, ctx: Ctx, call: CallContext) -> CallContext:
        """`call` with the client's sampling, elicitation and roots attached, as far as it declared them:
        2025-era clients are asked directly (2026 ones in input rounds, `_in_rounds`)."""
        session = ctx.session
        related = ServerMessageMetadata(related_request_id=ctx.request_id)
        if session.can_send_request:

            async def relay(request: mt.ServerRequest, result_type: type[R]) -> R | mt.ErrorData:
                try:
                    return await session.send_request(request, result_type, metadata=related)
                except MCPError as e:
                    return e.error

            # Shaped like the SDK's client callbacks (SamplingFnT, ...) so upstream connections can take them;
            # the upstream's request context is not needed to relay.
            async def sampling(
                context: ClientRequestContext, params: mt.CreateMessageRequestParams
            ) -> mt.CreateMessageResult | mt.ErrorData:
                return await relay(mt.CreateMessageRequest(params=params), mt.CreateMessageResult)

            async def elicitation(
                context: ClientRequestContext, params: mt.ElicitRequestParams
            ) -> mt.ElicitResult | mt.ErrorData:
                return await relay(mt.ElicitRequest(params=params), mt.ElicitResult)

            async def list_roots(context: ClientRequestContext) -> mt.ListRootsResult | mt.ErrorData:
                return await relay(mt.ListRootsRequest(), mt.ListRootsResult)

            capabilities = session.client_capabilities
            if capabilities is not None:
                call.sampling = sampling if capabilities.sampling is not None else None
                call.elicitation = elicitation if capabilities.elicitation is not None else None
                call.list_roots = list_roots if capabilities.roots is not None else None
        return call


def requestor(scope: Scope) -> AuthorizationContext | None:
    """Who a request comes from, as the SDK's session manager compares it with a session's creator."""
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


_LIST_CHANGED: dict[type[ServerEvent], str] = {
    ToolsListChanged: "notifications/tools/list_changed",
    PromptsListChanged: "notifications/prompts/list_changed",
    ResourcesListChanged: "notifications/resources/list_changed",
}
