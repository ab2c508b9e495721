"""MCP tasks (the `io.modelcontextprotocol/tasks` extension, SEP-2663) on the 2026-07-28 wire: a
background job (`servers.jobs`) seen through the tasks wire.

When `serve.background` names tools, the server advertises the extension under
`capabilities.extensions` (at 2026-07-28 only: 2025-era clients keep the `jobs__*` tools). A
`tools/call` of a background tool from a request whose `_meta` client capabilities declare the
extension starts the tool as a job — through the served chain as `jobs__start`, so policy, rate
limits, audit, Studio's runs and the per-session and per-identity job caps hold exactly as for
`jobs__start` — and answers a flat `CreateTaskResult` at once. Without the extension declared the
same call runs synchronously, unless the tool matches `serve.tasks_required`: then it is refused
with -32021 (MissingRequiredClientCapability) naming the extension. `tasks/get` reports the job
as a `DetailedTask` (a finished tool's result inlined, a protocol-level failure as `error`),
`tasks/cancel` stops its work. A task's tool may ask its client what the creating request declared
(sampling, elicitation, roots): the task is then `input_required`, `tasks/get` lists the questions
under `inputRequests`, `tasks/update` answers them (`servers.tasks_inputs`).
Upstream servers' tasks are relayed through the same methods (`servers.task_relay`): the extension is
advertised when `serve.background` names tools or an upstream advertises it (`relay_upstreams`).
`tasks/result` and `tasks/list` are gone in this version of the extension and stay unknown methods.

A task belongs to the identity that created it, not to the stateless session that carried the
call; another identity's task id gets the answer an unknown id gets. Task ids are 128 random bits.

Not built: `notifications/tasks/status` on `subscriptions/listen` streams (clients poll), and a call
that first asks in input-required rounds and then becomes a task (whether a call is a task is decided
before it runs).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import mcp.types as mt
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types.jsonrpc import HEADER_MISMATCH, MISSING_REQUIRED_CLIENT_CAPABILITY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from adapters.mcp_tasks import TASKS_EXTENSION, CreatedTask
from servers.jobs import START, Job, JobsWorkbench, starting_task
from servers.mcp_surface import Ctx
from servers.task_relay import TaskRelay, unknown_task
from workbench.core import CallContext, ToolResult

__all__ = ["TASKS_EXTENSION", "TaskSurface", "declares_tasks"]
MAX_TASK_ID_CHARS = 64
"""Longer ids are refused before any lookup (ours are 32 hex digits)."""
MAX_INPUT_RESPONSES = 64
POLL_INTERVAL_MS = 500
"""How often a client is told to poll `tasks/get`."""

Status = Literal["working", "input_required", "completed", "failed", "cancelled"]
_REQUIRED: dict[str, Any] = {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
"""The -32021 error's data: what the client must declare."""


class TaskParams(mt.RequestParams):
    task_id: str = Field(min_length=1, max_length=MAX_TASK_ID_CHARS)


class UpdateTaskParams(TaskParams):
    input_responses: dict[str, Any] = Field(default_factory=dict, max_length=MAX_INPUT_RESPONSES)


def declares_tasks(capabilities: object) -> bool:
    """Whether a request's client capabilities (raw `_meta` or the SDK's model) declare the extension."""
    extensions = (capabilities.get("extensions") if isinstance(capabilities, Mapping)
                  else getattr(capabilities, "extensions", None))
    return isinstance(extensions, Mapping) and isinstance(extensions.get(TASKS_EXTENSION), Mapping)


def _askable(capabilities: mt.ClientCapabilities | None) -> frozenset[str]:
    """What a task may ask the client whose request created it."""
    if capabilities is None:
        return frozenset()
    declared = {"sampling": capabilities.sampling, "elicitation": capabilities.elicitation, "roots": capabilities.roots}
    return frozenset(kind for kind, capability in declared.items() if capability is not None)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_of(job: Job) -> Status:
    """The tasks wire's status: a tool that ran and reported an error is `completed` (its result says
    `isError`); `failed` is kept for protocol-level failures."""
    if job.state == "running":
        return "input_required" if job.questions is not None and job.questions.open else "working"
    if job.state == "cancelled":
        return "cancelled"
    return "failed" if job.error is not None else "completed"


class TaskSurface:
    """The tasks extension for one server's background jobs."""

    def __init__(self, jobs: JobsWorkbench, identity: Callable[[Ctx], str], *, required: Sequence[str] = ()) -> None:
        self.jobs = jobs
        self.manager = jobs.manager
        self.identity = identity
        self.required = tuple(required)
        """Globs of tools a 2026-07-28 client may run only as tasks (`serve.tasks_required`)."""
        self.enabled = bool(jobs.background)
        """Tasks are served when `serve.background` names tools."""
        self.relay = TaskRelay()
        self.relaying = False
        """An upstream advertises tasks: they are relayed (`servers.task_relay`)."""
        self._server: Server[Any] | None = None

    @property
    def advertised(self) -> bool:
        return self.enabled or self.relaying

    def install(self, server: Server[Any]) -> None:
        """Route the extension's methods; advertise it when enabled (or relaying, `relay_upstreams`)."""
        self._server = server
        self.relay_upstreams(False)
        server.add_request_handler("tasks/get", TaskParams, self._get)
        server.add_request_handler("tasks/cancel", TaskParams, self._cancel)
        server.add_request_handler("tasks/update", UpdateTaskParams, self._update)

    def relay_upstreams(self, offered: bool) -> None:
        """Whether an upstream advertises tasks: the extension is advertised once one does (and kept: an
        upstream that is down for a while must not take the methods from clients polling its tasks; a
        client that declares the extension to an upstream without tasks just gets its result) or while
        we serve tasks."""
        self.relaying = self.relaying or offered
        if self._server is not None:
            if self.advertised:
                self._server.extensions[TASKS_EXTENSION] = {}
            else:
                self._server.extensions.pop(TASKS_EXTENSION, None)

    def concerns(self, name: str, capabilities: object) -> bool:
        """Whether a 2026-07-28 `tools/call` of `name` is this surface's to decide (it may become a task,
        or be refused for want of the extension), by the request's raw or parsed client capabilities."""
        return (self.advertised and declares_tasks(capabilities)) or (self.enabled and self.requires_task(name))

    def takes_tasks(self, ctx: Ctx) -> bool:
        """Whether the request may get a task for an answer: a 2026-07-28 request that declares the extension."""
        return self.advertised and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS \
            and declares_tasks(ctx.session.client_capabilities)

    def answer(self, result: ToolResult, call: CallContext) -> mt.CallToolResult | CreatedTask:
        """A tool's result on the wire: an upstream's task, relayed under our id, for a caller that takes tasks."""
        if result.task is None:
            return result.to_mcp()
        if not call.tasks:  # never sent for such a caller (the upstream was not told it may)
            return ToolResult.error("the upstream answered with a task, which this client did not ask for").to_mcp()
        return CreatedTask.model_validate(self.relay.created(result.task, call.identity))

    def requires_task(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.required)

    async def call(self, name: str, arguments: dict[str, Any], ctx: Ctx,
                   start: Callable[[str, dict[str, Any]], Awaitable[mt.Result]],
                   ) -> dict[str, Any] | None:
        """For a 2026-07-28 `tools/call` of a background tool: a `CreateTaskResult` when the request takes
        tasks (or the refusal `jobs__start` gave, e.g. over a cap), -32021 when it does not but the tool
        runs only as a task; None when the call runs synchronously. `start` runs a call through the served
        chain."""
        capabilities = ctx.session.client_capabilities
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or not self.concerns(name, capabilities):
            return None
        if name not in await self.jobs.background_tools():  # as this caller may see them
            return None
        if not declares_tasks(capabilities):
            raise MCPError(MISSING_REQUIRED_CLIENT_CAPABILITY,
                           f"{name} runs only as a task: declare the {TASKS_EXTENSION} extension in the "
                           "request's client capabilities", _REQUIRED)
        token = starting_task.set(_askable(capabilities))
        try:
            answer = await start(START, {"tool": name, "arguments": arguments})
        finally:
            starting_task.reset(token)
        job = None
        if isinstance(answer, mt.CallToolResult) and answer.structured_content and not answer.is_error:
            job = self.manager.jobs.get(str(answer.structured_content.get("job_id")))
        if job is None:  # refused (a cap, the policy, shutting down): the refusal is the call's result
            return answer.model_dump(by_alias=True, mode="json", exclude_none=True)
        return {"resultType": "task", **self._task(job)}

    def _task(self, job: Job) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskId": job.id,
            "status": status_of(job),
            "createdAt": _iso(job.created_at),
            "lastUpdatedAt": _iso(job.updated_at),
            "ttlMs": int(self.manager.keep_seconds * 1000),
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if job.message is not None:
            task["statusMessage"] = job.message
        return task

    # ---- the extension's methods -----------------------------------------------------
    def _checked(self, ctx: Ctx, params: TaskParams) -> None:
        """The checks every tasks method makes."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or not self.advertised:
            raise MCPError(mt.METHOD_NOT_FOUND, "Method not found", ctx.method)
        if not declares_tasks(ctx.session.client_capabilities):
            raise MCPError(MISSING_REQUIRED_CLIENT_CAPABILITY,
                           f"{ctx.method} needs the {TASKS_EXTENSION} extension in the request's client capabilities",
                           _REQUIRED)
        # SEP-2663 puts the task id in `Mcp-Name` for routing intermediaries; the SDK checks it for its
        # own methods only. A proxy that routes on the header must see the body's task.
        if ctx.request is not None and decode_header_value(ctx.request.headers.get(MCP_NAME_HEADER)) != params.task_id:
            raise MCPError(HEADER_MISMATCH, f"{MCP_NAME_HEADER} header does not match the request body's taskId")

    async def _relayed(self, ctx: Ctx, params: TaskParams, forwarded: dict[str, Any]) -> dict[str, Any] | None:
        """The upstream's answer when `params` names a task relayed for the caller; None for our own ids."""
        self._checked(ctx, params)
        relayed = self.relay.owned(params.task_id, self.identity(ctx))
        if relayed is None:  # ours, or unknown (another identity's too): the own tasks' answer
            return None
        assert ctx.method is not None
        return await self.relay.forward(params.task_id, relayed, ctx.method, forwarded)

    def _owned(self, ctx: Ctx, params: TaskParams) -> Job:
        """The caller's task named by `params`, after the checks every tasks method makes."""
        self._checked(ctx, params)
        job = self.manager.owned(params.task_id, self.identity(ctx))
        # Unknown, expired, another identity's, or a jobs__start job (not a task): one answer, so no
        # existence oracle.
        if job is None or not job.detached:
            raise unknown_task(params.task_id)
        return job

    async def _get(self, ctx: Ctx, params: TaskParams) -> dict[str, Any]:
        if (relayed := await self._relayed(ctx, params, {})) is not None:
            return relayed
        job = self._owned(ctx, params)
        task = self._task(job)
        status = task["status"]
        if status == "input_required" and job.questions is not None:
            task["inputRequests"] = job.questions.requests()
        elif status == "completed" and job.result is not None:
            task["result"] = job.result.to_mcp().model_dump(by_alias=True, mode="json", exclude_none=True)
        elif status == "failed" and job.error is not None:
            task["error"] = job.error.model_dump(by_alias=True, mode="json", exclude_none=True)
        return task

    async def _cancel(self, ctx: Ctx, params: TaskParams) -> dict[str, Any]:
        if (relayed := await self._relayed(ctx, params, {})) is not None:
            return relayed
        await self.manager.cancel(self._owned(ctx, params))
        return {}  # an empty ack (the SDK adds `resultType`); the outcome is read with tasks/get

    async def _update(self, ctx: Ctx, params: UpdateTaskParams) -> dict[str, Any]:
        if (relayed := await self._relayed(ctx, params, {"inputResponses": params.input_responses})) is not None:
            return relayed
        job = self._owned(ctx, params)
        if job.questions is not None:
            try:
                job.questions.answer(params.input_responses)
            except ValueError as e:
                raise MCPError(mt.INVALID_PARAMS, str(e)) from None
        return {}  # an empty ack; answers to questions not (or no longer) open are ignored

