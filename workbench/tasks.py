"""Background tasks that belong to an object, not to whichever task happened to start it.

anyio forbids leaving a task group from a task other than the one that entered it, yet a
workbench is started in one task (a composite starts its sources concurrently) and stopped
in another. `BackgroundTasks` keeps its task group inside an owner task of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVarTuple

import anyio
from anyio.abc import TaskGroup

_DETACHED: set[asyncio.Task[Any]] = set()
Args = TypeVarTuple("Args")


def spawn_detached(fn: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any]:
    """Run `fn` in a task outside every caller's task group (kept referenced until it ends)."""
    task = asyncio.get_running_loop().create_task(fn())
    _DETACHED.add(task)
    task.add_done_callback(_DETACHED.discard)
    return task


class BackgroundTasks:
    """`await bg.open()` in any task, `bg.start_soon(...)` from any task, `await bg.aclose()` from any task."""

    def __init__(self) -> None:
        self._tg: TaskGroup | None = None
        self._closing = anyio.Event()
        self._closed = anyio.Event()

    async def open(self) -> None:
        ready = anyio.Event()

        async def owner() -> None:
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    ready.set()
                    await self._closing.wait()
                    tg.cancel_scope.cancel()
            finally:
                self._tg = None
                self._closed.set()

        spawn_detached(owner)
        await ready.wait()

    def start_soon(self, fn: Callable[[*Args], Coroutine[Any, Any, Any]], *args: *Args) -> None:
        if self._tg is None:
            raise RuntimeError("BackgroundTasks is not open")
        self._tg.start_soon(fn, *args)

    async def aclose(self) -> None:
        """Cancel every task and wait until they are gone."""
        if self._tg is None and not self._closing.is_set():
            return
        self._closing.set()
        with anyio.CancelScope(shield=True):
            await self._closed.wait()
