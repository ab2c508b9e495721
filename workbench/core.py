"""The workbench core: what a tool is, what a call carries, what a result holds.

Everything in the project — an MCP server, a Docker sandbox, a Python function, an
agent — shows up as a `Workbench` of tools. The wire types are the `mcp` SDK's own
(`ToolSpec` *is* `mcp.types.Tool`), so nothing is converted twice on the way out.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, Self

import mcp.types as mt
import pydantic
from mcp.client.session import ElicitationFnT, ListRootsFnT, SamplingFnT
from mcp.shared.subscriptions import ServerEvent, ToolsListChanged
from mcp_types import SERVER_INFO_META_KEY

logger = logging.getLogger("workbench")

ToolSpec = mt.Tool
"""A tool's public description: name, description, input/output JSON Schema, annotations."""

ContentBlock = mt.ContentBlock
"""Text, image, audio, resource link or embedded resource — exactly MCP's content union."""

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
"""`(progress, total, message)` — the same shape as the SDK's `ProgressFnT`."""

LogCallback = Callable[[mt.LoggingMessageNotificationParams], Awaitable[None]]
"""Receives a tool's log messages (MCP `notifications/message` params)."""

ToolsChangedCallback = Callable[[], Awaitable[None]]

EventCallback = Callable[[ServerEvent, "str | None"], Awaitable[None]]
"""Receives a workbench's change events — the SDK's own vocabulary (`ToolsListChanged`,
`PromptsListChanged`, `ResourcesListChanged`, `ResourceUpdated`) — and the session they
belong to (None: every session; a per-client upstream's events belong to one)."""

CompletionRef = mt.PromptReference | mt.ResourceTemplateReference


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose; its message is meant for people."""


class ConfigError(WorkbenchError):
    """A config that cannot be used; the message names the file, key and line (or the section).
    In the core because every component validates its own section of the config."""


class ToolNotFoundError(WorkbenchError, LookupError):
    def __init__(self, name: str, known: list[str] | None = None) -> None:
        import difflib

        hint = ""
        if known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known tools: {', '.join(sorted(known)[:20])}"
        super().__init__(f"unknown tool {name!r}{hint}")
        self.name = name


class ResourceNotFoundError(WorkbenchError, LookupError):
    pass


class PromptNotFoundError(WorkbenchError, LookupError):
    pass


@dataclass
class ToolResult:
    """What a tool call returns: MCP-shaped content, optional structured data, an error flag.

    A failing tool returns `is_error=True` with a message a model can act on; it does not raise.
    """

    content: list[ContentBlock] = field(default_factory=list)
    structured: Any = None
    is_error: bool = False
    meta: dict[str, Any] | None = None
    task: Any = None
    """Set when the call became an upstream's MCP task instead of producing a result (an
    `adapters.mcp_tasks.UpstreamTask`, for a caller that declared `CallContext.tasks`); the content
    is then only its description for callers that do not relay tasks."""

    @classmethod
    def from_text(cls, text: str, *, structured: Any = None, is_error: bool = False) -> ToolResult:
        return cls(content=[mt.TextContent(type="text", text=text)], structured=structured, is_error=is_error)

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls.from_text(message, is_error=True)

    @property
    def text(self) -> str:
        """All text content joined; structured data as JSON when there is no text."""
        parts = [c.text for c in self.content if isinstance(c, mt.TextContent)]
        if not parts and self.structured is not None:
            return json.dumps(self.structured, ensure_ascii=False)
        return "\n".join(parts)

    @classmethod
    def from_mcp(cls, result: mt.CallToolResult) -> ToolResult:
        return cls(
            content=list(result.content),
            structured=result.structured_content,
            is_error=result.is_error,
            meta=unstamped(result.meta),
        )

    def to_mcp(self) -> mt.CallToolResult:
        return mt.CallToolResult(
            content=self.content, structured_content=self.structured, is_error=self.is_error, _meta=self.meta
        )


def unstamped(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """`_meta` without its `serverInfo` stamp (2026-07-28). The stamp names the server that sent a
    response, so it stays with that response: an upstream's result relayed in a gateway's answer
    carries the gateway's stamp (the SDK stamps only where none is), and upstream names and versions
    are not shown to the gateway's clients."""
    if not meta or SERVER_INFO_META_KEY not in meta:
        return meta
    return {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY} or None


@dataclass
class CallContext:
    """Everything a call carries besides its arguments.

    Cancellation is structural (anyio): cancel the task awaiting `call_tool` and every
    workbench stops the work — an MCP server gets `notifications/cancelled`, a sandbox
    kills the process tree. `deadline` is on the `time.monotonic()` clock.
    """

    session_id: str = "default"
    """The caller's session: sandbox sessions and per-client state are keyed on it."""
    identity: str = "default"
    """Who is calling (a static token's name or hash, an OAuth token's subject); one identity may
    hold several sessions, and per-identity caps (sandboxes, legacy sessions) count by it."""
    scopes: frozenset[str] = frozenset()
    """The OAuth scopes the caller's token grants (empty for static tokens): policy reads them."""
    claims: Mapping[str, Any] = field(default_factory=dict)
    """The caller's verified token claims (groups, email, …) for policy; never a token itself."""
    progress: ProgressCallback | None = None
    log: LogCallback | None = None
    deadline: float | None = None
    trace_context: dict[str, str] = field(default_factory=dict)
    """W3C trace context carrier (`traceparent`, `tracestate`), e.g. from a request's `_meta`."""
    sampling: SamplingFnT | None = None
    elicitation: ElicitationFnT | None = None
    list_roots: ListRootsFnT | None = None
    """Server→client requests relayed from whoever called us (a gateway passes its client's)."""
    protocol_version: str | None = None
    """The MCP protocol version the caller speaks, when it is an MCP client: a gateway reaches an
    upstream in the caller's era where it can (2026 input rounds pass through as they are)."""
    tasks: bool = False
    """The caller takes MCP tasks (its 2026-07-28 request declared the tasks extension): an upstream
    may answer the call with a task, relayed to it (`ToolResult.task`)."""
    log_level: mt.LoggingLevel | None = None
    """The least severe log level the caller wants (its `logging/setLevel`, or a 2026 request's
    log-level `_meta`); None: the caller did not say."""

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress is not None:
            await self.progress(progress, total, message)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None when there is none."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def timeout(self, default: float | None) -> float | None:
        """The tighter of `default` and the time left before the deadline."""
        left = self.remaining()
        if left is None:
            return default
        return left if default is None else min(left, default)

    def with_timeout(self, seconds: float | None) -> CallContext:
        if seconds is None:
            return self
        deadline = time.monotonic() + seconds
        return replace(self, deadline=deadline if self.deadline is None else min(deadline, self.deadline))


@dataclass(frozen=True)
class Health:
    """One source's state, as `workbench doctor` shows it."""

    state: Literal["up", "down", "starting", "stopped"]
    detail: str = ""


class Workbench:
    """A set of tools (and optionally resources and prompts) behind one small async interface.

    Use it as an async context manager: `start` acquires resources (processes,
    connections, containers), `stop` releases them. Subclasses implement
    `list_tools` and `call_tool`; the rest has sensible empty defaults.
    """

    name: str = "workbench"

    def __init__(self) -> None:
        self._event_listeners: list[EventCallback] = []

    async def start(self) -> None:
        """Acquire resources. `start` and `stop` may run in different tasks (a composite starts
        its sources concurrently), so background work must not live in the caller's task
        group: use `workbench.tasks.BackgroundTasks`."""
        return None

    async def stop(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def list_tools(self) -> list[ToolSpec]:
        raise NotImplementedError

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        """Run one tool. Raises `ToolNotFoundError` for an unknown name; any failure of the
        tool itself comes back as `ToolResult(is_error=True)`."""
        raise NotImplementedError

    async def list_resources(self) -> list[mt.Resource]:
        return []

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        return []

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        raise ResourceNotFoundError(f"unknown resource {uri!r}")

    async def list_prompts(self) -> list[mt.Prompt]:
        return []

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, ctx: CallContext | None = None
    ) -> mt.GetPromptResult:
        raise PromptNotFoundError(f"unknown prompt {name!r}")

    def health(self) -> Health:
        return Health("up")

    def health_by_source(self) -> dict[str, Health]:
        """Each source behind this workbench and its health; one source, itself, unless it
        combines several (a composite reports each of them, so a dead one is never hidden)."""
        return {self.name: self.health()}

    def down_source(self, name: str) -> tuple[str, Health] | None:
        """The source that would serve tool `name` if it were not down, and its health — so a
        call to a tool of a dead source says so instead of "unknown tool". None when unknown."""
        return None

    async def close_session(self, session_id: str) -> None:
        """The caller `session_id` is gone (an MCP client disconnected or idled out):
        release what was kept for it, e.g. its sandbox container."""
        return None

    async def complete(
        self,
        ref: CompletionRef,
        argument: mt.CompletionArgument,
        context: mt.CompletionContext | None = None,
        ctx: CallContext | None = None,
    ) -> mt.Completion:
        """Suggestions for a prompt's or resource template's argument (`completion/complete`)."""
        return mt.Completion(values=[])

    async def subscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        """`ctx`'s session wants `ResourceUpdated` events for `uri`. Nothing here ever changes,
        so the default accepts and never fires."""
        return None

    async def unsubscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        return None

    async def set_log_level(self, level: mt.LoggingLevel, ctx: CallContext | None = None) -> None:
        """`ctx`'s session wants log messages at `level` and above (`logging/setLevel`)."""
        return None

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(event, session_id)` on every change event; returns an unsubscribe function."""
        self._event_listeners.append(callback)
        listeners = self._event_listeners
        return lambda: listeners.remove(callback) if callback in listeners else None

    async def publish(self, event: ServerEvent, session_id: str | None = None) -> None:
        for callback in list(self._event_listeners):
            try:
                await callback(event, session_id)
            except Exception:  # a broken listener must not break the source
                logger.exception("event listener failed")

    def on_tools_changed(self, callback: ToolsChangedCallback) -> Callable[[], None]:
        """Call `callback` whenever this workbench's tool list changes; returns an unsubscribe function."""

        async def on_event(event: ServerEvent, session_id: str | None) -> None:
            if isinstance(event, ToolsListChanged):
                await callback()

        return self.on_event(on_event)

    async def notify_tools_changed(self) -> None:
        await self.publish(ToolsListChanged())


class Tool:
    """One tool: a spec plus `run`. Subclass it, or wrap a function with `FunctionTool`."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    annotations: mt.ToolAnnotations | None = None

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            annotations=self.annotations,
        )

    async def run(self, arguments: dict[str, Any], ctx: CallContext) -> ToolResult:
        raise NotImplementedError


def validation_problems(error: pydantic.ValidationError) -> str:
    """'a: Input should be a valid integer; b: Field required' — a validation error as one line a
    model (or a person) can act on: tools answer invalid arguments with it as an is_error result."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in error.errors())


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups — what a person should see
    when anyio task groups wrap a failure."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
