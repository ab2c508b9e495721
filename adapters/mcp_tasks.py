"""An upstream's MCP tasks (the `io.modelcontextprotocol/tasks` extension, SEP-2663), client side:
what a gateway needs to relay them.

A 2026-07-28 caller that declares the extension has its calls sent over an upstream connection
whose client declares it too (`TasksExtension`, a twin connection of `adapters.mcp`); the SDK
then parses the upstream's `CreateTaskResult` (`resultType: "task"`, flat task fields) as this
extension's claimed shape (`CreatedTask`) instead of failing on it as a `CallToolResult`. The call
answers an `UpstreamTask`: the task as the upstream sent it, and the way to send `tasks/get`,
`tasks/cancel` and `tasks/update` for it back to that upstream, over the same connection (the
SDK's `ClientSession.send_request` with a typed request, so the stamp — `_meta` protocol version
and client capabilities, `Mcp-Method` and `Mcp-Name` headers — is the SDK's own).

An upstream is untrusted: its `CreateTaskResult` and `tasks/get` answers are checked against
SEP-2663's `Task` (a status the spec has, positive integer durations, string ids and timestamps) and
the inlined result against a tool result's shape; anything else is `MalformedTask`, never relayed.

The SDK (2.3) has no tasks API: only this extension's result claim and its typed requests are ours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import mcp.types as mt
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.shared.exceptions import MCPError
from pydantic import ConfigDict, Field, StrictInt, StrictStr, ValidationError

from workbench.core import ToolResult, WorkbenchError, validation_problems

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_METHODS = ("tasks/get", "tasks/cancel", "tasks/update")
TASK_REQUEST_TIMEOUT = 30.0
"""Seconds an upstream has to answer a `tasks/*` request (they only read or signal a task)."""
MAX_UPSTREAM_TASK_ID_CHARS = 256
"""An upstream's task id longer than this is not relayed (the call fails): the id is kept in memory."""


MAX_MS = 2**53 - 1
"""The largest integer every JSON reader keeps exact (I-JSON): a larger `ttlMs` is no duration."""
Millis = Annotated[StrictInt, Field(gt=0, le=MAX_MS)]
"""SEP-2663's durations: positive integer milliseconds (no fractions, no booleans, no strings)."""
Timestamp = Annotated[StrictStr, Field(max_length=64, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")]


class TaskFields(mt.Result):
    """SEP-2663's `Task`, checked: an upstream's task reaches clients only in the spec's shape (its
    other fields are kept, to be relayed as sent)."""

    model_config = ConfigDict(extra="allow")
    task_id: StrictStr = Field(min_length=1, max_length=MAX_UPSTREAM_TASK_ID_CHARS)
    status: Literal["working", "input_required", "completed", "failed", "cancelled"]
    status_message: StrictStr | None = None
    created_at: Timestamp
    last_updated_at: Timestamp
    ttl_ms: Millis | None = None
    poll_interval_ms: Millis | None = None


class CreatedTask(TaskFields):
    """A `CreateTaskResult` as the upstream sent it (every field kept, for relaying as is)."""

    result_type: Literal["task"] = "task"


class DetailedTask(TaskFields):
    """A `tasks/get` answer: the task, with its inlined result, error or open questions."""

    result: mt.CallToolResult | None = None
    error: mt.ErrorData | None = None
    input_requests: dict[str, dict[str, Any]] | None = None


class MalformedTask(WorkbenchError):
    """The upstream answered a tasks request, or a call made over a connection that takes tasks, with
    something that is not SEP-2663's (or a tool result's) shape."""

    def __init__(self, method: str, error: ValidationError) -> None:
        super().__init__(f"answered {method} with a malformed result ({validation_problems(error)})")


class TaskAnswer(mt.Result):
    """A `tasks/*` result, every field kept: the gateway relays it as the upstream sent it."""

    model_config = ConfigDict(extra="allow")


class TaskRequestParams(mt.RequestParams):
    model_config = ConfigDict(extra="allow")  # `inputResponses` of tasks/update, passed as the caller sent them
    task_id: str


class TaskRequest(mt.Request[TaskRequestParams, str]):
    """`tasks/get`, `tasks/cancel` or `tasks/update`: SEP-2663 routes them by `Mcp-Name`, the task id."""

    name_param = "taskId"


async def _not_here(result: CreatedTask, context: ClaimContext) -> mt.CallToolResult:
    # The gateway reads claimed results itself (`call_as_task`); `Client.call_tool` would wait here
    # for the task to finish, which a relay must never do.
    raise MCPError(mt.INTERNAL_ERROR, f"upstream tool {context.tool_name!r} became a task, which this call cannot take")


class TasksExtension(ClientExtension):
    """Declares the tasks extension on an upstream connection, and claims its `CreateTaskResult`."""

    identifier = TASKS_EXTENSION

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return (ResultClaim(result_type="task", model=CreatedTask, resolve=_not_here),)


@dataclass(frozen=True)
class UpstreamTask:
    """An upstream's task that a call became: `created` is its `CreateTaskResult` as sent; `send`
    sends a `tasks/*` request (method, params without `_meta`) for it to that upstream."""

    source: str
    created: dict[str, Any]
    send: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
    reshapes: tuple[Callable[[ToolResult], ToolResult], ...] = ()
    """What the wrappers the call came back through do to a tool's result (a prefixed source's resource
    URIs), done to the task's result when `tasks/get` inlines it, innermost first."""

    @property
    def task_id(self) -> str:
        return str(self.created["taskId"])

    def through(self, reshape: Callable[[ToolResult], ToolResult]) -> UpstreamTask:
        """This task as seen through one more wrapper that reshapes results."""
        return replace(self, reshapes=(*self.reshapes, reshape))

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """`method` for this task at its upstream: for `tasks/get` the answer as sent once it has the spec's
        shape (else `MalformedTask`), its inlined result reshaped; for the others the spec's empty ack."""
        answer = await self.send(method, {**params, "taskId": self.task_id})
        if method != "tasks/get":
            return {}  # tasks/cancel and tasks/update answer an empty ack, whatever else the upstream put in it
        try:
            task = DetailedTask.model_validate(answer)
        except ValidationError as e:
            raise MalformedTask(method, e) from None
        if self.reshapes and task.result is not None:
            result = ToolResult.from_mcp(task.result)
            for reshape in self.reshapes:
                result = reshape(result)
            answer["result"] = result.to_mcp().model_dump(by_alias=True, mode="json", exclude_none=True)
        return answer


def offers_tasks(client: Client) -> bool:
    """Whether the server behind `client` advertised the extension (in `server/discover`, or a
    2025-era `initialize` that carried it)."""
    try:
        extensions = client.server_capabilities.extensions
    except RuntimeError:  # not connected
        return False
    return extensions is not None and TASKS_EXTENSION in extensions


async def call_as_task(
    client: Client, source: str, name: str, arguments: dict[str, Any], meta: mt.RequestParamsMeta | None,
    connected: Callable[[], Awaitable[Client]],
) -> mt.CallToolResult | UpstreamTask:
    """`tools/call` over a connection declaring the extension: the tool's result, or the task it became,
    whose requests go over that connection as it is then (`connected`: it may have reconnected).
    Input-required rounds before either are driven as `Client.call_tool` drives them."""

    async def send(responses: mt.InputResponses | None, state: str | None,
                   ) -> mt.CallToolResult | mt.InputRequiredResult | mt.Result:
        return await client.session.call_tool(name, arguments, input_responses=responses, request_state=state,
                                              meta=meta, allow_input_required=True, allow_claimed=True)

    try:
        answer = await client._drive_input_required(await send(None, None), send)
    except ValidationError as e:  # the SDK checked the answer as a tool result or this extension's task
        raise MalformedTask("tools/call", e) from None
    if isinstance(answer, mt.CallToolResult):
        return answer
    if not isinstance(answer, CreatedTask):
        raise MCPError(mt.INTERNAL_ERROR, f"upstream answered {type(answer).__name__}, which is no tool result")

    async def send_task_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method not in TASK_METHODS:
            raise ValueError(f"not a tasks method: {method}")
        request = TaskRequest(method=method, params=TaskRequestParams.model_validate(params))
        result = await (await connected()).session.send_request(request, TaskAnswer, TASK_REQUEST_TIMEOUT)
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)

    return UpstreamTask(source, answer.model_dump(by_alias=True, mode="json", exclude_none=True), send_task_request)
