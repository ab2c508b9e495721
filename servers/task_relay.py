"""Upstream MCP tasks relayed to the gateway's clients (SEP-2663, `io.modelcontextprotocol/tasks`).

A 2026-07-28 client that declares the extension has it declared to the upstream it calls
(`adapters.mcp_tasks`); when that upstream answers with a task, the client gets the upstream's
`CreateTaskResult` as sent (once it has SEP-2663's shape, `adapters.mcp_tasks.TaskFields`), except
for its id: the gateway gives the task an id of its own (128 random bits) and remembers which
upstream task it stands for and which identity created it. So ids are namespaced, not checked: two
upstreams, or an upstream and the gateway's own jobs, may use the same id without ever meeting, and
no upstream can pick an id that reaches another's task.

`tasks/get`, `tasks/cancel` and `tasks/update` for such an id go to the upstream that created the
task, over the connection that created it, and its answer comes back with the id put back to the
gateway's: a `tasks/get` answer as it is once it has the spec's shape (else the client is told the
upstream's answer was malformed), `tasks/cancel` and `tasks/update` as the spec's empty ack. A
finished task's inlined result holds no tool name; a prefixed source's resource URIs in it get the
prefix, as in a direct result (`UpstreamTask.reshapes`). An id this
table does not hold — never seen created, expired, evicted, or another identity's — gets the answer
an unknown id of the gateway's own tasks gets, and reaches no upstream; so does one the upstream
says it no longer knows (-32602 to `tasks/get` or `tasks/cancel`), which is then forgotten here.

The table is bounded: at most `MAX_PER_IDENTITY` tasks per identity and `MAX_TASKS` in all (the
least recently asked about goes first), each kept for the upstream's `ttlMs`, at most
`MAX_KEEP_SECONDS`, counted from the last time it was asked about.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import mcp.types as mt
from mcp.shared.exceptions import MCPError
from mcp_types import SERVER_INFO_META_KEY

from adapters.mcp import McpWorkbench
from adapters.mcp_targets import is_disconnect
from adapters.mcp_tasks import TASK_REQUEST_TIMEOUT, MalformedTask, UpstreamTask
from workbench.composite import CompositeWorkbench
from workbench.core import Workbench, logger

MAX_TASKS = 10_000
MAX_PER_IDENTITY = 256
MAX_KEEP_SECONDS = 3600.0


@dataclass
class _Relayed:
    task: UpstreamTask
    identity: str
    keep_seconds: float
    expires: float

    def ours(self, task_id: str, task: dict[str, Any]) -> dict[str, Any]:
        """The upstream's `task` as the client sees it: our id, and the `ttlMs` we keep it for (the spec
        promises the task for that long; we forget it sooner than a longer one the upstream gave)."""
        return {**_unstamped(task), "taskId": task_id, "ttlMs": round(self.keep_seconds * 1000)}


class TaskRelay:
    """The upstream tasks this gateway relays, by the ids it gave them."""

    def __init__(self, *, max_tasks: int = MAX_TASKS, max_per_identity: int = MAX_PER_IDENTITY,
                 max_keep_seconds: float = MAX_KEEP_SECONDS) -> None:
        self.max_tasks = max_tasks
        self.max_per_identity = max_per_identity
        self.max_keep_seconds = max_keep_seconds
        # Least recently used first, in all and per identity: eviction and expiry look at the front only.
        self._tasks: OrderedDict[str, _Relayed] = OrderedDict()
        self._by_identity: dict[str, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def created(self, task: UpstreamTask, identity: str) -> dict[str, Any]:
        """Remember `task` for `identity`; its `CreateTaskResult` for the client, with the gateway's id."""
        self._expire()
        own = self._by_identity.setdefault(identity, OrderedDict())
        if len(own) >= self.max_per_identity:
            self._drop(next(iter(own)))
        if len(self._tasks) >= self.max_tasks:
            self._drop(next(iter(self._tasks)))
        ttl = task.created.get("ttlMs")  # a positive integer or none (`adapters.mcp_tasks.TaskFields`)
        keep = min(self.max_keep_seconds, ttl / 1000) if isinstance(ttl, int) else self.max_keep_seconds
        task_id = secrets.token_hex(16)
        # Only the upstream's id is kept: its whole answer (any size it liked) would stay in memory with
        # each of up to MAX_TASKS entries for as long as they are kept.
        slim = replace(task, created={"taskId": task.task_id})
        relayed = self._tasks[task_id] = _Relayed(slim, identity, keep, time.monotonic() + keep)
        self._by_identity.setdefault(identity, own)[task_id] = None
        return relayed.ours(task_id, task.created)

    def owned(self, task_id: str, identity: str) -> _Relayed | None:
        """The relayed task `task_id` when `identity` created it (and it has not expired)."""
        self._expire()
        relayed = self._tasks.get(task_id)
        # A plain comparison: the identity is the caller's own, not a secret (the id is); and
        # `compare_digest` raises on non-ASCII str, which identities (token names, subjects) may be.
        if relayed is None or relayed.identity != identity:
            return None
        now = time.monotonic()
        if relayed.expires <= now:  # one kept shorter than those before it
            self._drop(task_id)
            return None
        relayed.expires = now + relayed.keep_seconds
        self._tasks.move_to_end(task_id)
        self._by_identity[identity].move_to_end(task_id)
        return relayed

    async def forward(self, task_id: str, relayed: _Relayed, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """`method` for the relayed task to its upstream; the upstream's answer, under our id."""
        source = relayed.task.source
        try:
            answer = await relayed.task.request(method, params)
        except MCPError as e:
            if e.code == mt.INVALID_PARAMS and method != "tasks/update":  # the upstream forgot the task
                if self._tasks.get(task_id) is relayed:
                    self._drop(task_id)
                raise unknown_task(task_id) from None
            if (failed := _HOP_FAILURES.get(e.code)) is None and not is_disconnect(e):
                raise  # the upstream's own JSON-RPC error, as it is
            # The SDK's own error for the hop: relayed as is it would read as the client's (-32700: its
            # request did not parse) or name no server ("Connection closed").
            raise MCPError(mt.INTERNAL_ERROR, f"{method}: the task's MCP server {source!r} "
                           f"{failed or 'cannot be reached'}; retry later") from None
        except MalformedTask as e:
            raise MCPError(mt.INTERNAL_ERROR, f"{method}: the task's MCP server {source!r} {e}") from None
        except Exception as e:  # the upstream went away: say so, never a traceback
            logger.warning("relaying %s to %s failed: %s", method, source, e)
            raise MCPError(mt.INTERNAL_ERROR, f"{method}: the task's MCP server {source!r} "
                           f"cannot be reached ({type(e).__name__}); retry later") from None
        return relayed.ours(task_id, answer) if "taskId" in answer else _unstamped(answer)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._tasks and (first := next(iter(self._tasks.items())))[1].expires <= now:
            self._drop(first[0])

    def _drop(self, task_id: str) -> None:
        relayed = self._tasks.pop(task_id)
        own = self._by_identity[relayed.identity]
        del own[task_id]
        if not own:
            del self._by_identity[relayed.identity]


_HOP_FAILURES = {
    mt.REQUEST_TIMEOUT: f"did not answer within {TASK_REQUEST_TIMEOUT:g} s",
    mt.PARSE_ERROR: "answered with something that is not JSON-RPC",
}
"""The SDK client's errors for a tasks request that got no usable answer, as the client is told them."""


def _unstamped(answer: dict[str, Any]) -> dict[str, Any]:
    """`answer` without the upstream's `serverInfo` stamp: the SDK stamps ours only where none is."""
    meta = answer.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        meta = {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}
        answer = {**answer, "_meta": meta} if meta else {k: v for k, v in answer.items() if k != "_meta"}
    return answer


def unknown_task(task_id: str) -> MCPError:
    """What an unknown, expired or another identity's task id gets, whichever it is: no existence oracle."""
    return MCPError(mt.INVALID_PARAMS, f"no task {task_id!r} (it may have expired)")


async def upstreams_offer_tasks(workbench: Workbench) -> bool:
    """Whether an MCP server among `workbench`'s sources (a composite's, or itself) advertises tasks."""
    if isinstance(workbench, McpWorkbench):
        return await workbench.offers_tasks()
    if isinstance(workbench, CompositeWorkbench):
        for mount in list(workbench.mounts.values()):
            if await upstreams_offer_tasks(mount.workbench):
                return True
    return False
