"""The warm pool: containers started ahead of time, so a new session is served in milliseconds.

Bounded (never more than `size` ready plus `size` starting), refilled in the background
after every take, and emptied on close. A failed background start is logged and left for
the next take to retry, so a missing image never turns into a busy loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from sandbox.container import SandboxContainer
from sandbox.settings import SandboxSettings
from workbench.tasks import BackgroundTasks

logger = logging.getLogger("workbench.sandbox")


class WarmPool:
    def __init__(self, settings: SandboxSettings, size: int, task_group: BackgroundTasks,
                 room: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.size = max(0, size)
        self._room = room  # free slots under the global caps (None: uncapped)
        self._tg = task_group
        self._ready: list[SandboxContainer] = []
        self._starting = 0
        self._cold = 0  # takes that found the pool empty and are starting their own container
        self._waiting = 0  # takes waiting for a container already on its way
        self._changed = anyio.Event()  # set (and replaced) whenever a background start ends
        self._closed = False
        self.last_error: BaseException | None = None

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def held(self) -> int:
        """Containers the pool holds or is starting for itself (they count against the caps)."""
        return len(self._ready) + self._starting

    def fill(self) -> None:
        """Start containers in the background until `size` are ready or on their way — but not
        during a burst of cold takes, which would only compete with the callers waiting."""
        while not self._closed and not self._cold and self.held < self.size and (
                self._room is None or self._room() > 0):
            self._starting += 1
            self._tg.start_soon(self._start_one)

    async def _start_one(self) -> None:
        try:
            container = await SandboxContainer.start(self.settings)
        except Exception as e:  # reported by the next take, which starts one itself
            self.last_error = e
            logger.warning("warm pool could not start a sandbox container: %s", e)
            return
        finally:
            self._starting -= 1
            self._changed.set()
            self._changed = anyio.Event()
        if self._closed:
            await container.remove()
        else:
            self._ready.append(container)

    async def take(self) -> SandboxContainer:
        """A ready container (instant); else one already on its way (it started earlier, so
        it is ready sooner); else a freshly started one."""
        try:
            while True:
                while self._ready:
                    container = self._ready.pop(0)
                    if not container.channel.closed:
                        return container
                    await container.remove()
                if self._starting <= self._waiting:
                    break
                self._waiting += 1
                try:
                    await self._changed.wait()
                finally:
                    self._waiting -= 1
            self._cold += 1
            try:
                return await SandboxContainer.start(self.settings)
            finally:
                self._cold -= 1
        finally:
            self.fill()

    async def aclose(self) -> None:
        self._closed = True
        ready, self._ready = self._ready, []
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for container in ready:
                    tg.start_soon(container.remove)
