"""`McpWorkbench`: any MCP server's tools, resources and prompts as a workbench.

    async with McpWorkbench.stdio("npx", ["-y", "@modelcontextprotocol/server-everything"]) as wb:
        tools = await wb.list_tools()
        result = await wb.call_tool("echo", {"message": "hi"})

The tool catalog is cached and refreshed when the server says it changed; results
come back whole (structured content, images, audio, resource links, `is_error`).
A server that dies fails the call in flight with a clear message and is reconnected
by the next call (see `adapters.mcp_connection`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextvars import Token
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import anyio
import httpx2
import mcp.types as mt
from mcp import Client
from mcp.client.session import ElicitationFnT, ListRootsFnT, SamplingFnT
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types import LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from adapters.config import Mode, SessionMode
from adapters.mcp_client_sessions import ClientSessions, ModernTwin
from adapters.mcp_connection import Connection, ConnectionState, ServerUnavailable
from adapters.mcp_lane import LaneDeclined, UpstreamLane, on_asyncio
from adapters.mcp_routing import CallRouter
from adapters.mcp_subscriptions import Subscriptions
from adapters.mcp_surface import McpSurface, _all_pages
from adapters.mcp_targets import HttpTarget, StdioTarget, Target, describe, is_disconnect, session_expired
from adapters.mcp_tasks import TasksExtension, UpstreamTask, call_as_task, offers_tasks
from workbench.core import (
    CallContext,
    Health,
    LogCallback,
    ToolNotFoundError,
    ToolResult,
    ToolSpec,
    Workbench,
    WorkbenchError,
)
from workbench.tasks import spawn_detached

if TYPE_CHECKING:
    from adapters.config import ServerConfig

logger = logging.getLogger("workbench.mcp")


class McpWorkbench(McpSurface):
    """The tools of one MCP server. Build it with `stdio`, `http`, `sse` or `from_config`.

    Options: `mode` ("auto" negotiates, "legacy" forces the 2025-11-25 handshake,
    "2026-07-28" pins the stateless protocol), `timeout` (default seconds per call),
    `connect_timeout`, `sampling_callback`, `elicitation_callback`, `list_roots_callback`,
    `logging_callback`, `relay_client_requests` (advertise sampling, elicitation and
    roots even without callbacks, answering from each call's `CallContext` — for a
    gateway that relays its own client's), `log_level` (the 2026 per-request log opt-in)
    and `max_backoff` (seconds, the longest wait between reconnect attempts).
    """

    def __init__(
        self,
        target: Target,
        *,
        name: str | None = None,
        mode: Mode = "auto",
        timeout: float | None = 60.0,
        connect_timeout: float = 30.0,
        sampling_callback: SamplingFnT | None = None,
        elicitation_callback: ElicitationFnT | None = None,
        list_roots_callback: ListRootsFnT | None = None,
        logging_callback: LogCallback | None = None,
        relay_client_requests: bool | frozenset[str] = False,
        log_level: mt.LoggingLevel | None = "info",
        max_backoff: float = 30.0,
        session: SessionMode = "shared",
        max_client_sessions: int = 100,
    ) -> None:
        super().__init__()
        if session not in ("shared", "per_client"):
            raise ValueError(f"session must be 'shared' or 'per_client'; got {session!r}")
        if mode not in ("auto", "legacy") and mode not in MODERN_PROTOCOL_VERSIONS:
            raise ValueError(f"mode must be 'auto', 'legacy' or one of {list(MODERN_PROTOCOL_VERSIONS)}; got {mode!r}")
        self.name = name or _default_name(target)
        self.mode = mode
        # A gateway relaying its clients' requests offers the 2025 handshake first: only a 2025-era
        # session lets a server push sampling/elicitation/roots (2026 clients get them as input
        # rounds from the gateway), logging/setLevel and resources/subscribe. A server that
        # refuses it is negotiated with instead.
        # A connection that relays only a caller's declared set (a twin, below) negotiates instead.
        self._offered: Mode = "legacy" if mode == "auto" and relay_client_requests is True else mode
        self.timeout = timeout
        self._log_level = log_level
        self._takes_tasks = isinstance(relay_client_requests, frozenset) and "tasks" in relay_client_requests
        """A twin for callers that take MCP tasks: its client declares the extension (`adapters.mcp_tasks`)."""
        self._router = CallRouter(
            self.name,
            sampling=sampling_callback,
            elicitation=elicitation_callback,
            list_roots=list_roots_callback,
            logging_callback=logging_callback,
            relay=relay_client_requests,
        )
        self._tools: dict[str, ToolSpec] | None = None
        self._protocol_version: str | None = None
        self._subscriptions = Subscriptions()
        options: dict[str, Any] = dict(
            timeout=timeout, connect_timeout=connect_timeout, sampling_callback=sampling_callback,
            elicitation_callback=elicitation_callback, list_roots_callback=list_roots_callback,
            logging_callback=logging_callback, relay_client_requests=relay_client_requests, log_level=log_level,
            max_backoff=max_backoff)
        self._clients: ClientSessions | None = None
        if session == "per_client":
            self._clients = ClientSessions(
                self, lambda: McpWorkbench(target, name=self.name, mode=mode, **options), max_client_sessions)
        # A 2026-07-28 caller's calls go over a connection of their own, opened on first need, while
        # the 2025 session serves 2025 callers: one per set of client capabilities its callers
        # declare, because the upstream must see the caller's capabilities, not ours (it may refuse
        # a call, or ask only what the caller can answer). It negotiates: 2026 where the upstream
        # speaks it (input rounds pass through with their own keys, all at once, and each request
        # carries the set), else a 2025 session whose initialize declares that set.
        self._modern: dict[frozenset[str], ModernTwin] | None = {} \
            if self._offered == "legacy" and mode == "auto" else None

        def twin(declared: frozenset[str]) -> ModernTwin:
            def make() -> McpWorkbench:
                made = McpWorkbench(target, name=self.name, mode="auto",
                                    **{**options, "relay_client_requests": declared})
                # No listen stream: the shared connection hears the server's changes for everyone
                # (nobody listens to a twin), and a twin serves MCP callers only, whose names it
                # passes on even when its catalog is stale. One round trip less on its first call.
                made._listens = False
                return made

            return ModernTwin(make)

        self._make_twin = twin
        # The lean path for ordinary calls (adapters.mcp_lane): a streamable-HTTP upstream without
        # OAuth (its provider refreshes and retries on 401 inside httpx2) or a proxy, and no
        # workbench-level callback that could answer what the upstream asks during a call.
        self._lane = UpstreamLane.for_target(target, connect_timeout=connect_timeout) \
            if sampling_callback is None and elicitation_callback is None and list_roots_callback is None else None
        self._log_to_router = self._router.client_callbacks()["logging_callback"]
        self._listens = True
        self._relisten = anyio.Event()
        """Set when the resource subscriptions change: a 2026 listen stream reopens with the new set."""
        self._conn = Connection(
            self.name,
            target,
            self._make_client,
            self._load_catalog,
            self._listen,
            connect_timeout=connect_timeout,
            backoff=(0.5, max_backoff),
            on_up_or_down=lambda: spawn_detached(self.notify_tools_changed),
            on_refused=self._negotiate_instead,
        )

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        name: str | None = None,
        **options: Any,
    ) -> McpWorkbench:
        """A server run as a child process. It gets the SDK's safe environment (PATH, HOME, …)
        plus `env`: pass what it needs, e.g. `env={"GITHUB_TOKEN": ...}`."""
        return cls(StdioTarget(command, tuple(args), dict(env) if env else None, cwd), name=name, **options)

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        bearer_token: str | None = None,
        auth: httpx2.Auth | None = None,
        name: str | None = None,
        **options: Any,
    ) -> McpWorkbench:
        """A streamable HTTP server at `url` (e.g. http://127.0.0.1:8931/mcp); `auth` is any
        httpx2 auth, e.g. the SDK's `OAuthClientProvider` (see `adapters.oauth`)."""
        return cls(HttpTarget(url, dict(headers or {}), bearer_token, auth=auth), name=name, **options)

    @classmethod
    def sse(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        bearer_token: str | None = None,
        auth: httpx2.Auth | None = None,
        name: str | None = None,
        **options: Any,
    ) -> McpWorkbench:
        """A server on the legacy HTTP+SSE transport (its GET endpoint, e.g. …/sse)."""
        return cls(HttpTarget(url, dict(headers or {}), bearer_token, sse=True, auth=auth), name=name, **options)

    @classmethod
    def from_config(cls, name: str, cfg: ServerConfig, *, base_dir: Path | None = None, **extra: Any) -> McpWorkbench:
        """From a `[servers.NAME]` entry; a relative `cwd` resolves against `base_dir`; `extra`
        takes the options no config file holds (callbacks, `relay_client_requests`, an `auth`
        that replaces the one `[servers.NAME.oauth]` describes)."""
        options: dict[str, Any] = {"name": name, "mode": cfg.mode, "timeout": cfg.timeout,
                                   "connect_timeout": cfg.connect_timeout, "session": cfg.session,
                                   "max_client_sessions": cfg.max_client_sessions, **extra}
        if cfg.transport == "stdio":
            assert cfg.command is not None  # ServerConfig validates exactly one of command/url
            cwd = cfg.cwd
            if cwd is not None and base_dir is not None and not Path(cwd).is_absolute():
                cwd = str(base_dir / cwd)
            return cls.stdio(cfg.command, cfg.args, env=cfg.env or None, cwd=cwd, **options)
        assert cfg.url is not None
        make = cls.sse if cfg.transport == "sse" else cls.http
        auth = options.pop("auth", None)
        if auth is None and cfg.oauth is not None:
            from adapters.oauth import oauth_auth

            auth = oauth_auth(name, cfg.url, cfg.oauth, base_dir=base_dir)
        return make(cfg.url, headers=cfg.headers, bearer_token=cfg.bearer_token, auth=auth, **options)

    def __repr__(self) -> str:
        state = self._conn.state.value
        return f"McpWorkbench(name={self.name!r}, {self._conn.target!r}, mode={self.mode!r}, state={state!r})"

    def _negotiate_instead(self) -> bool:
        if self._offered == self.mode:
            return False
        logger.info("MCP server %s refused the 2025 handshake; negotiating the protocol instead", self.name)
        self._offered = self.mode
        return True

    def _make_client(self, transport: Any) -> Client:
        return Client(
            transport,
            mode=self._offered,
            cache=None,  # the workbench keeps its own catalog; everything else is read live
            message_handler=self._on_message,
            log_level=self._log_level,
            extensions=[TasksExtension()] if self._takes_tasks else None,
            **self._router.client_callbacks(),
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect now. Raises `WorkbenchError` when the server cannot be reached; later calls
        keep trying to reconnect (with backoff), so a composite can start without it."""
        self._conn.reopen()
        await self._conn.client()

    async def _twin_for(self, ctx: CallContext | None) -> Workbench | None:
        if self._modern is None or ctx is None \
                or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return None
        declared = frozenset(name for name, callback in (
            ("sampling", ctx.sampling), ("elicitation", ctx.elicitation), ("roots", ctx.list_roots),
            ("tasks", ctx.tasks)) if callback)
        return await self._twin_declaring(declared)

    async def _twin_declaring(self, declared: frozenset[str]) -> Workbench | None:
        assert self._modern is not None
        if declared not in self._modern:
            self._modern[declared] = self._make_twin(declared)
        return await self._modern[declared].get()

    async def stop(self) -> None:
        for twin in (self._modern or {}).values():
            await twin.close()
        if self._clients is not None:
            await self._clients.close_all()
        await self._conn.close()
        if self._lane is not None:
            await self._lane.aclose()

    def health(self) -> Health:
        conn = self._conn
        if conn.state is ConnectionState.UP:
            return Health("up", f"{len(self._tools or {})} tools, protocol {self.protocol_version}")
        return Health(conn.health_state, conn.last_error or "")

    async def offers_tasks(self) -> bool:
        """Whether the server advertises MCP tasks, which a gateway then relays to clients that take them.
        Asked over the connection that would relay them: the twin whose client declares the extension (a
        2025 session does not carry it). Built for HTTP upstreams in `auto` mode, where that twin costs a
        request; a stdio upstream would cost a second process at every start, so it is not asked."""
        if self._takes_tasks:
            try:
                return offers_tasks(await self._conn.client())
            except ServerUnavailable:
                return False
        target = self._conn.target
        if self._modern is None or not isinstance(target, HttpTarget) or target.sse:
            return False
        twin = await self._twin_declaring(frozenset({"tasks"}))
        return isinstance(twin, McpWorkbench) and await twin.offers_tasks()

    @property
    def protocol_version(self) -> str | None:
        """The protocol version negotiated on the live connection (None while down)."""
        return self._protocol_version if self._conn.state is ConnectionState.UP else None

    # -- tools ----------------------------------------------------------------------------------

    async def list_tools(self) -> list[ToolSpec]:
        """The cached catalog (fetched on connect and on `tools/list_changed`). While the
        server is down this reconnects (within the backoff) or raises `ServerUnavailable`:
        a dead server's tools are not offered to agents. Listeners of `on_tools_changed`
        hear when it goes down and when it comes back."""
        await self._conn.client()
        return list((self._tools or {}).values())

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        if self._clients is not None and ctx is not None:  # per_client: the caller's own upstream session
            try:
                own = await self._clients.get(ctx)
            except WorkbenchError as e:
                return ToolResult.error(str(e))
            return await own.call_tool(name, arguments, ctx)
        if (twin := await self._twin_for(ctx)) is not None:
            return await twin.call_tool(name, arguments, ctx)
        ctx = ctx or CallContext()
        try:
            client = await self._conn.client()
        except ServerUnavailable as e:
            if self._tools is not None and name not in self._tools:
                raise ToolNotFoundError(name, list(self._tools)) from None
            return ToolResult.error(str(e))
        tools = self._tools or {}
        # An MCP client behind a gateway gets the server's own answer to a name it does not list,
        # as it is (a JSON-RPC error from one server, an `isError` result from another), without
        # a relisting first: the answer is the server's either way, and a list_changed refreshes.
        if name not in tools and ctx.protocol_version is None:
            try:  # the server may have grown it without telling
                tools = await self._refresh_catalog(client, notify=True)
            except Exception as e:
                return await self._call_failed(name, e)
            if name not in tools:
                raise ToolNotFoundError(name, list(tools))
        with self._router.calling(ctx):
            try:
                try:
                    return await self._call_once(client, name, arguments, ctx)
                except Exception as e:
                    if not session_expired(e):
                        raise
                    # The server forgot our legacy session (restart, idle expiry) and refused
                    # the request before running it, so one retry on a fresh session is safe.
                    await self._conn.lost(e, reconnect_now=True)
                    try:
                        client = await self._conn.client()
                    except ServerUnavailable as unavailable:
                        return ToolResult.error(str(unavailable))
                    return await self._call_once(client, name, arguments, ctx)
            except MCPError as e:
                if ctx.protocol_version is not None and not is_disconnect(e):
                    raise  # an MCP client behind a gateway gets the server's JSON-RPC error as it is
                return await self._call_failed(name, e)
            except Exception as e:
                return await self._call_failed(name, e)

    async def _call_once(
        self, client: Client, name: str, arguments: dict[str, Any] | None, ctx: CallContext
    ) -> ToolResult:
        timeout = ctx.timeout(self.timeout)
        token = _continuing(ctx.trace_context)
        try:
            with anyio.move_on_after(timeout):
                if ctx.tasks and self._takes_tasks:
                    return _task_or_result(await call_as_task(
                        client, self.name, name, arguments or {}, _request_meta(ctx), self._conn.client))
                if (lane := self._lane_for(ctx, client)) is not None:
                    try:
                        return ToolResult.from_mcp(await lane.call_tool(
                            client, name, arguments or {}, _request_meta(ctx),
                            on_notification=self._on_lane_notification,
                            session_id=None if client.protocol_version in MODERN_PROTOCOL_VERSIONS
                            else self._conn.http_session_id))
                    except LaneDeclined as e:
                        logger.debug("MCP server %s: %s", self.name, e)
                result = await client.call_tool(
                    name,
                    arguments or {},
                    progress_callback=_progress_relay(ctx) if ctx.progress is not None else None,
                    # Continue the caller's trace (W3C traceparent/tracestate) on the server; its log level.
                    meta=_request_meta(ctx),
                )
                return ToolResult.from_mcp(result)
            return ToolResult.error(
                f"tool {name!r} on MCP server {self.name!r} timed out after {round(timeout or 0, 2):g} s and was "
                "cancelled on the server; retry with a longer timeout if it needs more time"
            )
        finally:
            if token is not None:
                otel_context.detach(token)

    def _lane_for(self, ctx: CallContext, client: Client) -> UpstreamLane | None:
        """The upstream lane when this call is provably ordinary: a negotiated version, no progress
        asked for, and nothing the upstream may ask during it (sampling, elicitation, roots) that the
        SDK path would answer otherwise than by declining, which the lane does through the same
        session's callbacks. Everything else takes the SDK path unchanged."""
        if self._lane is None or ctx.progress is not None or ctx.sampling is not None \
                or ctx.elicitation is not None or ctx.list_roots is not None or ctx.tasks:
            return None
        if client.protocol_version is None:
            return None
        return self._lane if on_asyncio() else None  # aiohttp runs on asyncio only

    async def _on_lane_notification(self, notification: mt.ServerNotification) -> None:
        """A notification on a lane call's stream, delivered as `ClientSession` delivers it."""
        if isinstance(notification, mt.LoggingMessageNotification):
            await self._log_to_router(notification.params)
        await self._on_message(notification)

    async def _call_failed(self, name: str, error: Exception) -> ToolResult:
        if is_disconnect(error):
            if self._conn.state is ConnectionState.CLOSED:
                return ToolResult.error(f"MCP server {self.name!r} was stopped while tool {name!r} was running")
            await self._conn.lost(error)
            return ToolResult.error(
                f"MCP server {self.name!r} disconnected: {describe(error)}; will reconnect on the next call"
            )
        # A JSON-RPC error (e.g. -32602 invalid params from a strict server), a result that
        # breaks the tool's own output schema, a callback that declined: the call failed, the
        # connection is fine.
        return ToolResult.error(f"tool {name!r} on MCP server {self.name!r} failed: {describe(error)}")

    async def _load_catalog(self, client: Client) -> None:
        # Kept here: the client's own property raises once its owner task has exited it.
        self._protocol_version = client.protocol_version
        reconnected = self._tools is not None
        await self._refresh_catalog(client, notify=reconnected)
        if reconnected:
            await self._restore_subscriptions(client)

    async def _refresh_catalog(self, client: Client, *, notify: bool) -> dict[str, ToolSpec]:
        with anyio.fail_after(self._conn.connect_timeout):
            tools = await _all_pages(lambda cursor: client.list_tools(cursor=cursor), "tools")
        catalog = {tool.name: tool for tool in tools}
        changed = self._tools is None or _dump(self._tools) != _dump(catalog)
        self._tools = catalog
        if notify and changed:
            await self.notify_tools_changed()
        return catalog

    async def _on_tools_changed(self, client: Client) -> None:
        try:
            await self._refresh_catalog(client, notify=True)
        except Exception as e:  # the next call or listing retries; nothing to crash here
            logger.warning("MCP server %s: cannot refresh tools after list_changed: %s", self.name, describe(e))



def _task_or_result(answer: mt.CallToolResult | UpstreamTask) -> ToolResult:
    if isinstance(answer, mt.CallToolResult):
        return ToolResult.from_mcp(answer)
    return ToolResult(content=[mt.TextContent(
        type="text", text=f"the call became task {answer.task_id!r} on MCP server {answer.source!r}")], task=answer)


def _progress_relay(ctx: CallContext) -> ProgressFnT:
    async def relay(progress: float, total: float | None, message: str | None) -> None:
        try:
            await ctx.report_progress(progress, total, message)
        except Exception:  # a broken listener must not break the call
            logger.exception("progress callback failed")

    return relay


def _continuing(carrier: Mapping[str, str]) -> Token[otel_context.Context] | None:
    """Makes the caller's trace (its W3C `traceparent`) the current OpenTelemetry context, unless a
    span of that trace is current already (`workbench serve`'s request span); the token to detach, or
    None. With a tracer installed, the SDK client's span — and the `_meta` it injects, which replaces
    ours — would otherwise start a new trace for a library caller that handed its trace over in the
    `CallContext`. (Not a context manager: most calls carry no trace, and pay nothing for it.)"""
    if not carrier:
        return None
    extracted = propagate.extract(carrier)
    wanted = trace.get_current_span(extracted).get_span_context()
    current = trace.get_current_span().get_span_context()
    if not wanted.is_valid or (current.is_valid and current.trace_id == wanted.trace_id):
        return None
    return otel_context.attach(extracted)


def _request_meta(ctx: CallContext) -> mt.RequestParamsMeta | None:
    """The caller's W3C trace context (traceparent/tracestate) as request `_meta`, so the
    server continues the trace, and the caller's log level (a 2026 server's per-request
    opt-in; a legacy server ignores it). `RequestParamsMeta` takes such extra keys (PEP 728's
    `extra_items`), which mypy does not model yet: hence the cast."""
    if not ctx.trace_context and ctx.log_level is None:
        return None
    meta: dict[str, str] = dict(ctx.trace_context)
    if ctx.log_level is not None:
        meta[LOG_LEVEL_META_KEY] = ctx.log_level
    return cast(mt.RequestParamsMeta, meta)


def _dump(catalog: dict[str, ToolSpec]) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json", exclude_none=True) for tool in catalog.values()]


_LAUNCHERS = ("python", "node", "npx", "uv", "uvx", "bunx", "deno", "pipx")


def _default_name(target: Target) -> str:
    if isinstance(target, StdioTarget):
        command = Path(target.command).stem
        if command.startswith(_LAUNCHERS):  # `npx -y @scope/server-x`, `python server.py`: name it after the script
            script = [a for a in target.args if not a.startswith("-")]
            if script:
                return Path(script[0]).stem.rsplit("/", 1)[-1] or command
        return command or "mcp"
    return urlsplit(target.url).hostname or "mcp"
