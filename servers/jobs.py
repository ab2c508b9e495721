"""Background runs for tools that outlast a client's request timeout (agents, teams, long builds).

`JobsWorkbench` adds four tools to the workbench it wraps: `jobs__start` runs a long-running
tool in the background and answers at once with a job id; `jobs__status`, `jobs__result`
(optionally waiting) and `jobs__cancel` follow it. A job belongs to the session that started
it — another client cannot see or cancel it — and is cancelled when that session ends. The same
jobs are MCP tasks seen through the tasks wire (`servers.tasks`); a task belongs to its identity
and outlives the session that carried it.
"""

from __future__ import annotations

import fnmatch
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
import mcp.types as mt
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from servers.tasks_inputs import Questions
from workbench.core import CallContext, ToolResult, ToolSpec, Workbench, logger, validation_problems
from workbench.wrapper import WorkbenchWrapper

START, STATUS, RESULT, CANCEL = "jobs__start", "jobs__status", "jobs__result", "jobs__cancel"
JOB_TOOLS = frozenset({START, STATUS, RESULT, CANCEL})
MAX_WAIT = 60.0
"""Longest a single `jobs__result` call waits, so it stays inside common client timeouts."""

RunTool = Callable[[str, dict[str, Any], CallContext], Awaitable[ToolResult]]
Args = TypeVar("Args", bound=BaseModel)


IDENTITY_SESSIONS_FACTOR = 4
MAX_KEPT_PER_IDENTITY = 256
"""Finished jobs kept per identity until their results expire; the oldest go first past it."""
CANCEL_WAIT = 10.0
"""Seconds a cancel waits for the job's work to unwind before answering."""

starting_task: ContextVar[frozenset[str] | None] = ContextVar("starting_task", default=None)
"""Set while `servers.tasks` starts a job for an MCP task, to what the creating request lets it ask
its client ("sampling", "elicitation", "roots"): the job then belongs to its identity, not to the
stateless session that happened to carry the call (`Job.detached`), and its tool's questions wait
in the task for the client to answer (`Job.questions`)."""


@dataclass
class Job:
    id: str
    session_id: str
    identity: str
    """Who started it: the tool runs under the caller's identity (per-identity caps count it)."""
    tool: str
    scopes: frozenset[str] = frozenset()
    claims: dict[str, Any] = field(default_factory=dict)
    """The starter's scopes and claims: the background run is judged (policy) as the call would be."""
    state: Literal["running", "completed", "failed", "cancelled"] = "running"
    progress: float | None = None
    total: float | None = None
    message: str | None = None
    result: ToolResult | None = None
    error: mt.ErrorData | None = None
    """A protocol-level failure (the tool's JSON-RPC error, or a crash): the tasks wire reports it as
    `failed`, apart from a tool's own `isError` result."""
    protocol_version: str | None = None
    """The starter's protocol era: the tool runs as the call would (a source's JSON-RPC error stays one)."""
    detached: bool = False
    """An MCP task: it outlives the session that started it, which a stateless client never ends."""
    questions: Questions | None = None
    """An MCP task's open questions to its client (`servers.tasks_inputs`)."""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    """Wall-clock times, for the tasks wire's `createdAt` / `lastUpdatedAt`."""
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)

    def status(self) -> dict[str, Any]:
        end = self.finished if self.finished is not None else time.monotonic()
        return {
            "job_id": self.id,
            "tool": self.tool,
            "state": self.state,
            "progress": self.progress,
            "total": self.total,
            "message": self.message,
            "elapsed_seconds": round(end - self.started, 3),
        }

    def touch(self) -> None:
        self.updated_at = time.time()


class _JobRef(BaseModel):
    model_config = ConfigDict(title="job")
    job_id: str = Field(description="The id jobs__start returned.")


class _ResultArgs(_JobRef):
    # Not finite or negative would reach anyio's timer as is: nan raised deep inside it.
    wait: float = Field(0.0, ge=0, allow_inf_nan=False,
                        description=f"Seconds to wait for a running job to finish (at most {MAX_WAIT:g}).")


class _StartArgs(BaseModel):
    model_config = ConfigDict(title="background run")
    tool: str = Field(description="The tool to run.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments.")


def _parse(model: type[Args], tool: str, arguments: dict[str, Any]) -> Args | ToolResult:
    """The arguments as `model`, or an `is_error` result naming each problem: the spec asks for
    input validation errors as tool results, so a model can correct its call."""
    try:
        return model.model_validate(arguments)
    except ValidationError as e:
        return ToolResult.error(f"{tool}: invalid arguments: {validation_problems(e)}")


_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "job_id": {"type": "string"},
        "tool": {"type": "string"},
        "state": {"type": "string", "enum": ["running", "completed", "failed", "cancelled"]},
        "progress": {"type": ["number", "null"]},
        "total": {"type": ["number", "null"]},
        "message": {"type": ["string", "null"]},
        "elapsed_seconds": {"type": "number"},
    },
    "required": ["job_id", "tool", "state"],
}


def job_specs(eligible: list[str]) -> list[ToolSpec]:
    start_schema = _StartArgs.model_json_schema()
    start_schema["properties"]["tool"]["enum"] = eligible
    job_schema = _JobRef.model_json_schema()
    return [
        ToolSpec(
            name=START,
            description="Start a long-running tool in the background and return its job id at once. "
            "Follow it with jobs__status, jobs__result (which can wait) and jobs__cancel.",
            input_schema=start_schema,
            output_schema=_STATUS_SCHEMA,
        ),
        ToolSpec(
            name=STATUS,
            description="State and latest progress of a background job.",
            input_schema=job_schema,
            output_schema=_STATUS_SCHEMA,
        ),
        ToolSpec(
            name=RESULT,
            description="The result of a background job, exactly as the tool returned it. Waits up to "
            f"`wait` seconds (at most {MAX_WAIT:g}) for a running job; if it is still running, says so.",
            input_schema=_ResultArgs.model_json_schema(),
        ),
        ToolSpec(
            name=CANCEL,
            description="Cancel a running background job (its work is stopped).",
            input_schema=job_schema,
            output_schema=_STATUS_SCHEMA,
            annotations=mt.ToolAnnotations(destructive_hint=True, idempotent_hint=True),
        ),
    ]


def _status_result(job: Job, text: str) -> ToolResult:
    return ToolResult.from_text(text, structured=job.status())


class JobManager:
    def __init__(self, run: RunTool, *, max_running_per_session: int = 16, keep_seconds: float = 3600.0) -> None:
        self._run = run
        self.max_running_per_session = max_running_per_session
        self.max_running_per_identity = IDENTITY_SESSIONS_FACTOR * max_running_per_session
        """An identity may run jobs from a few sessions at once, not from as many as it can mint."""
        self.keep_seconds = keep_seconds
        self.jobs: dict[str, Job] = {}
        self.task_group: anyio.abc.TaskGroup | None = None
        """Set by the server while it runs: jobs outlive the request that started them."""

    async def call(self, name: str, arguments: dict[str, Any], ctx: CallContext, eligible: list[str]) -> ToolResult:
        if name == START:
            start = _parse(_StartArgs, name, arguments)
            return start if isinstance(start, ToolResult) else self._start(start, ctx, eligible)
        ref = _parse(_ResultArgs if name == RESULT else _JobRef, name, arguments)
        if isinstance(ref, ToolResult):
            return ref
        job = self.jobs.get(ref.job_id)
        # Another session's (or identity's) job does not exist for you: same answer as an unknown id.
        if job is None or job.session_id != ctx.session_id or job.identity != ctx.identity:
            return ToolResult.error(f"no job {ref.job_id!r} in this session (jobs__start returns the id)")
        if name == STATUS:
            return _status_result(job, f"job {job.id} ({job.tool}): {job.state}")
        if name == CANCEL:
            await self.cancel(job)
            return _status_result(job, f"job {job.id} ({job.tool}): {job.state}")
        wait = ref.wait if isinstance(ref, _ResultArgs) else 0.0  # always one here: name is RESULT
        with anyio.move_on_after(min(wait, MAX_WAIT)):
            await job.done.wait()
        if job.result is None:
            return _status_result(job, f"job {job.id} ({job.tool}) is still running; call jobs__result again")
        meta = dict(job.result.meta or {})
        meta["workbench/job"] = job.status()
        return ToolResult(job.result.content, job.result.structured, job.result.is_error, meta)

    def _start(self, start: _StartArgs, ctx: CallContext, eligible: list[str]) -> ToolResult:
        tool = start.tool
        if tool not in eligible:
            return ToolResult.error(
                f"jobs__start: {tool!r} cannot run in the background; choose one of: {', '.join(eligible) or '(none)'}"
            )
        if self.task_group is None:
            return ToolResult.error("jobs__start: the server is not running background jobs (it is shutting down)")
        self._prune()
        session_id = ctx.session_id
        running = [j for j in self.jobs.values() if j.identity == ctx.identity and j.state == "running"]
        in_session = sum(1 for j in running if j.session_id == session_id)
        # Per identity too: a stateless client mints sessions at will (one per Workbench-Session value).
        for where, count, limit in (("session", in_session, self.max_running_per_session),
                                    ("identity", len(running), self.max_running_per_identity)):
            if count >= limit:
                return ToolResult.error(f"jobs__start: this {where} already runs {count} jobs (limit {limit}); "
                                        "wait for one to finish or cancel one")
        self._forget_oldest_finished(ctx.identity)
        # 128 random bits: an id is all a tasks client presents, so it must not be guessable.
        task = starting_task.get()
        job = Job(secrets.token_hex(16), session_id, ctx.identity, tool, ctx.scopes, dict(ctx.claims),
                  protocol_version=ctx.protocol_version, detached=task is not None)
        if task is not None:
            job.questions = Questions(task, job.touch)
        self.jobs[job.id] = job
        self.task_group.start_soon(self._execute, job, start.arguments)
        logger.info("job started", extra={"session": session_id, "identity": ctx.identity, "tool": tool, "job": job.id})
        return _status_result(job, f"started job {job.id} ({tool}); follow it with jobs__status / jobs__result")

    async def _execute(self, job: Job, arguments: dict[str, Any]) -> None:
        async def progress(p: float, total: float | None, message: str | None) -> None:
            job.progress, job.total, job.message = p, total, message
            job.touch()

        try:
            with job.scope:
                ctx = CallContext(session_id=job.session_id, identity=job.identity, scopes=job.scopes,
                                  claims=job.claims, progress=progress, protocol_version=job.protocol_version)
                if job.questions is not None:
                    job.questions.attach(ctx)
                job.result = await self._run(job.tool, arguments, ctx)
                job.state = "failed" if job.result.is_error else "completed"
            if job.result is None:
                job.state, job.result = "cancelled", ToolResult.error(f"job {job.id} ({job.tool}) was cancelled")
        except MCPError as e:  # the tool's source answered with a JSON-RPC error: a protocol-level failure
            job.state, job.error = "failed", e.error
            job.result = ToolResult.error(f"{job.tool} failed: {e.error.message}")
        except Exception as e:  # a crash in the tool is the job's failure, never the server's
            logger.exception("job %s crashed", job.id)
            job.state, job.result = "failed", ToolResult.error(f"{job.tool} failed: {type(e).__name__}: {e}")
            job.error = mt.ErrorData(code=mt.INTERNAL_ERROR, message=f"{job.tool} failed: {type(e).__name__}")
        finally:
            if job.result is None:  # the whole server is being cancelled
                job.state = "cancelled"
                job.result = ToolResult.error(f"job {job.id} was cancelled: server shutting down")
            job.finished = time.monotonic()
            job.touch()
            job.done.set()
            logger.info("job finished",
                        extra={"session": job.session_id, "tool": job.tool, "job": job.id, "outcome": job.state})

    def owned(self, job_id: str, identity: str) -> Job | None:
        """The job `job_id` if `identity` started it and it has not expired; another identity's job is
        not there for the caller at all (the same None as an unknown id)."""
        self._prune()
        job = self.jobs.get(job_id)
        return job if job is not None and job.identity == identity else None

    @staticmethod
    async def cancel(job: Job) -> None:
        """Stop a running job's work, waiting (boundedly) until it has unwound; a finished job stays as it is."""
        if job.state == "running":
            job.scope.cancel()
            with anyio.move_on_after(CANCEL_WAIT):
                await job.done.wait()

    async def close_session(self, session_id: str) -> None:
        for job in [j for j in self.jobs.values() if j.session_id == session_id and not j.detached]:
            job.scope.cancel()
            await job.done.wait()
            self.jobs.pop(job.id, None)

    def _forget_oldest_finished(self, identity: str) -> None:
        """Keep at most MAX_KEPT_PER_IDENTITY finished jobs (and their results) per identity."""
        finished = [j for j in self.jobs.values() if j.identity == identity and j.state != "running"]
        for job in finished[: max(0, len(finished) - MAX_KEPT_PER_IDENTITY + 1)]:  # dicts keep start order
            del self.jobs[job.id]

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.keep_seconds
        for job_id in [j.id for j in self.jobs.values() if j.finished is not None and j.finished < cutoff]:
            del self.jobs[job_id]


class JobsWorkbench(WorkbenchWrapper):
    """`inner`'s tools plus the `jobs__*` tools that run its long-running ones in the background.

    Long-running: a tool whose spec supports tasks (`execution.taskSupport`), or whose name
    matches a `background` glob. The `jobs__*` tools are listed only when one is; an inner
    tool of the same name is hidden. Jobs need `manager.task_group` set (by the server, for as
    long as it serves) — they outlive the request that started them.
    """

    def __init__(self, inner: Workbench, *, background: Sequence[str] = (), max_running_per_session: int = 16) -> None:
        super().__init__(inner)
        self.background = list(background)
        self.manager = JobManager(self._run, max_running_per_session=max_running_per_session)

    def _long_running(self, spec: ToolSpec) -> bool:
        support = spec.execution.task_support if spec.execution else None
        return support in ("optional", "required") or any(fnmatch.fnmatchcase(spec.name, g) for g in self.background)

    async def _inner_tools(self) -> tuple[list[ToolSpec], list[str]]:
        specs = [s for s in await self.inner.list_tools() if s.name not in JOB_TOOLS]
        return specs, [s.name for s in specs if self._long_running(s)]

    async def list_tools(self) -> list[ToolSpec]:
        specs, eligible = await self._inner_tools()
        return specs + job_specs(eligible) if eligible else specs

    async def background_tools(self) -> list[str]:
        """The tools that may run in the background, as the caller sees them."""
        return (await self._inner_tools())[1]

    async def _run(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> ToolResult:
        return await self.inner.call_tool(name, arguments, ctx)

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        if name not in JOB_TOOLS:
            return await self.inner.call_tool(name, arguments, ctx)
        # Only jobs__start needs the eligible tools: status polls skip the listing.
        eligible = (await self._inner_tools())[1] if name == START else []
        return await self.manager.call(name, arguments or {}, ctx or CallContext(), eligible)

    async def close_session(self, session_id: str) -> None:
        await self.manager.close_session(session_id)  # its jobs first: they may hold the session's sandbox
        await self.inner.close_session(session_id)
