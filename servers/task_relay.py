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
prefix, as in a direct result (`UpstreamTask.reshapes`). An id this table does not hold — never
seen created, expired, evicted, or another identity's — gets the answer an unknown id of the
gateway's own tasks gets, and reaches no upstream; so does one the upstream says it no longer knows
(-32602 to `tasks/get` or `tasks/cancel`), which is then forgotten here.

The table is bounded: at most `MAX_PER_IDENTITY` tasks per identity and `MAX_TASKS` in all (the
least recently asked about goes first), each kept for the upstream's `ttlMs`, at most
`MAX_KEEP_SECONDS`, counted from the last time it was asked about. A task leaving the table that
way, not known to have finished, is cancelled at its upstream (`cancel_abandoned`, in the
background): nobody can reach it any more, and without the cancel an identity could keep any number
of upstream tasks running by creating more than the table holds.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import anyio
import mcp.types as mt
from mcp.shared.exceptions import MCPError
from mcp_types import SERVER_INFO_META_KEY

from adapters.mcp import McpWorkbench
from adapters.mcp_targets import is_disconnect
from adapters.mcp_tasks import TASK_REQUEST_TIMEOUT, MalformedTask, UpstreamTask
from workbench.composite import CompositeWorkbench
from workbench.core import Workbench, logger, unstamped

MAX_TASKS = 10_000
MAX_PER_IDENTITY = 256
MAX_KEEP_SECONDS = 3600.0
MAX_ABANDONED = 1024
"""Tasks left the table and waiting for their upstream cancel; past this they are left to the upstream's
own expiry (said in the log): a queue an identity could grow without bound would be the same hole."""
ABANDONED_CANCEL_SECONDS = 10.0
"""How long one abandoned task's upstream cancel may take, so a dead upstream cannot stall the rest."""
ABANDONED_CANCELS_AT_ONCE = 8
"""Upstream cancels in flight at once: an upstream that hangs on them holds at most these slots."""
FINISHED = frozenset({"completed", "failed", "cancelled"})


@dataclass
class _Relayed:
    task: UpstreamTask
    identity: str
    keep_seconds: float
    expires: float
    finished: bool = False
    """The upstream said the task reached a terminal status: leaving the table needs no cancel."""

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
        self._abandon, self._abandoned = anyio.create_memory_object_stream[UpstreamTask](MAX_ABANDONED)

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def created(self, task: UpstreamTask, identity: str) -> dict[str, Any]:
        """Remember `task` for `identity`; its `CreateTaskResult` for the client, with the gateway's id."""
        self._expire()
        own = self._by_identity.setdefault(identity, OrderedDict())
        if len(own) >= self.max_per_identity:
            self._drop(next(iter(own)), abandoned=True)
        if len(self._tasks) >= self.max_tasks:
            self._drop(next(iter(self._tasks)), abandoned=True)
        ttl = task.created.get("ttlMs")  # a positive integer or none (`adapters.mcp_tasks.TaskFields`)
        keep = min(self.max_keep_seconds, ttl / 1000) if isinstance(ttl, int) else self.max_keep_seconds
        task_id = secrets.token_hex(16)
        # Only the upstream's id is kept: its whole answer (any size it liked) would stay in memory with
        # each of up to MAX_TASKS entries for as long as they are kept.
        slim = replace(task, created={"taskId": task.task_id})
        relayed = self._tasks[task_id] = _Relayed(slim, identity, keep, time.monotonic() + keep,
                                                  finished=task.created.get("status") in FINISHED)
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
            self._drop(task_id, abandoned=True)
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
            if (failed := _hop_failure(e)) is None:
                raise  # the upstream's own JSON-RPC error, as it is
            raise MCPError(mt.INTERNAL_ERROR, f"{method}: the task's MCP server {source!r} {failed}; retry later",
                           ) from None
        except MalformedTask as e:
            raise MCPError(mt.INTERNAL_ERROR, f"{method}: the task's MCP server {source!r} {e}") from None
        except Exception as e:  # the upstream went away: say so, never a traceback
            logger.warning("relaying %s to %s failed: %s", method, source, e)
            raise MCPError(mt.INTERNAL_ERROR, f"{method}: the task's MCP server {source!r} "
                           f"cannot be reached ({type(e).__name__}); retry later") from None
        if method == "tasks/cancel" or answer.get("status") in FINISHED:
            relayed.finished = True
        return relayed.ours(task_id, answer) if "taskId" in answer else _unstamped(answer)

    async def cancel_abandoned(self) -> None:
        """Cancel at their upstreams the tasks that left the table unfinished, `ABANDONED_CANCELS_AT_ONCE` at
        a time; runs for as long as the server serves. A failed cancel is logged: the task then ends at the
        upstream's expiry."""
        slots = anyio.Semaphore(ABANDONED_CANCELS_AT_ONCE)
        async with anyio.create_task_group() as tg:
            async for task in self._abandoned:
                await slots.acquire()
                tg.start_soon(_cancel_upstream, task, slots)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._tasks and (first := next(iter(self._tasks.items())))[1].expires <= now:
            self._drop(first[0], abandoned=True)

    def _drop(self, task_id: str, *, abandoned: bool = False) -> None:
        """Forget `task_id`; `abandoned`: nobody asked for that (evicted, expired), so cancel it upstream
        unless it is known to have finished."""
        relayed = self._tasks.pop(task_id)
        if abandoned and not relayed.finished:
            try:
                self._abandon.send_nowait(relayed.task)
            except anyio.WouldBlock:
                logger.warning("%d abandoned tasks wait for their upstream cancel already: a task of %s is left "
                               "to run until its upstream expires it", MAX_ABANDONED, relayed.task.source)
        own = self._by_identity[relayed.identity]
        del own[task_id]
        if not own:
            del self._by_identity[relayed.identity]


async def _cancel_upstream(task: UpstreamTask, slot: anyio.Semaphore) -> None:
    try:
        with anyio.fail_after(ABANDONED_CANCEL_SECONDS):
            await task.request("tasks/cancel", {})
    except Exception as e:  # the upstream forgot it, or is unreachable: nothing more to do here
        logger.info("cancelling an abandoned task at %s failed: %s", task.source, e)
    finally:
        slot.release()


def _hop_failure(error: MCPError) -> str | None:
    """What went wrong, when `error` is the SDK client's own for a tasks request that got no usable
    answer; None for the upstream's own JSON-RPC error. Relayed as they are, the SDK's would read as the
    client's (-32700: its request did not parse) or name no server ("Connection closed")."""
    if error.code == mt.REQUEST_TIMEOUT:
        return f"did not answer within {TASK_REQUEST_TIMEOUT:g} s"
    if error.code == mt.PARSE_ERROR:  # "Failed to parse JSON response: <why>", the why maybe many lines
        why = error.message.partition(": ")[2].splitlines()[:1] or [error.message]
        return f"answered with something that cannot be relayed ({why[0][:200]})"
    return "cannot be reached" if is_disconnect(error) else None


def _unstamped(answer: dict[str, Any]) -> dict[str, Any]:
    """`answer`, and the tool result a finished task inlines, without the upstream's `serverInfo` stamp
    (`workbench.core.unstamped`)."""
    if isinstance(inlined := answer.get("result"), dict):
        answer = {**answer, "result": _unstamped(inlined)}
    meta = answer.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        rest = unstamped(meta)
        answer = {**answer, "_meta": rest} if rest else {k: v for k, v in answer.items() if k != "_meta"}
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
