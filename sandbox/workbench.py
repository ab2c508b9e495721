"""`SandboxWorkbench`: the sandbox as workbench tools, one container per caller.

The caller is `CallContext.session_id`, so two MCP clients (or two agents) never see each
other's files or variables. Sessions come from the warm pool, expire when idle, and are
released by `close_session` when a client goes. Global caps (`sandbox.capacity`) bound them
together: at the cap, the least recently used sandbox idle for `reclaim_after` seconds makes
room, else the new session is refused at once with a message naming the cap.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from typing import Annotated, Literal

import anyio
import mcp.types as mt
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from pydantic import Field

from sandbox.box import DockerSandbox, RunResult
from sandbox.capacity import Caps
from sandbox.container import engine_memory, reap_orphans
from sandbox.errors import SandboxCapacityError, SandboxError
from sandbox.pool import WarmPool
from sandbox.settings import SandboxConfig, SandboxSettings
from workbench.core import CallContext, Health, ToolResult
from workbench.static import FunctionTool, StaticWorkbench
from workbench.tasks import BackgroundTasks

Timeout = Annotated[float, Field(ge=0, allow_inf_nan=False)] | None
"""A run's own timeout: a finite number of seconds, never NaN, infinite or negative."""
_tracer = trace.get_tracer("workbench.sandbox")
RECLAIMED_NOTE = ("your previous sandbox was reclaimed while idle (the server was at its sandbox cap): "
                  "this is a fresh one, earlier variables and files are gone")


def _result(r: RunResult) -> ToolResult:
    """stdout first (what a model reads), then stderr and any limit that was hit."""
    parts = [r.stdout.rstrip("\n")] if r.stdout else []
    if r.stderr:
        parts.append("[stderr]\n" + r.stderr.rstrip("\n"))
    if r.exit_code not in (0, None):
        parts.append(f"[exit code {r.exit_code}]")
    parts += [f"[{note}]" for note in r.notes]
    return ToolResult.from_text("\n".join(parts) or "(no output)", structured=r.to_dict(), is_error=not r.ok)


class SandboxWorkbench(StaticWorkbench):
    """Tools `run_python`, `run_bash`, `write_file`, `read_file`, `list_files`, `reset`."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        readonly = mt.ToolAnnotations(read_only_hint=True, open_world_hint=False)
        sandboxed = mt.ToolAnnotations(destructive_hint=False, open_world_hint=self.settings.network)
        super().__init__(
            [FunctionTool(self.run_python, annotations=sandboxed, structured_output=False),
             FunctionTool(self.run_bash, annotations=sandboxed, structured_output=False),
             FunctionTool(self.write_file, annotations=sandboxed, structured_output=False),
             FunctionTool(self.read_file, annotations=readonly, structured_output=False),
             FunctionTool(self.list_files, annotations=readonly, structured_output=False),
             FunctionTool(self.reset, annotations=sandboxed, structured_output=False)],
            name="sandbox",
        )
        self._sessions: dict[str, DockerSandbox] = {}
        self._owners: dict[str, str] = {}  # session id -> the identity holding it
        self._admitting: Counter[str] = Counter()  # identities with a sandbox on its way (counted as held)
        self._reclaimed: set[str] = set()  # sessions whose sandbox was taken while idle: told on their next run
        self.caps: Caps | None = None
        self._opening: dict[str, anyio.Lock] = {}
        self._background: BackgroundTasks | None = None
        self._pool: WarmPool | None = None
        self._health = Health("stopped")

    @classmethod
    def from_config(cls, cfg: SandboxConfig, *, max_per_identity: int | None = None) -> SandboxWorkbench:
        return cls(SandboxSettings.from_config(cfg, max_per_identity=max_per_identity))

    async def start(self) -> None:
        """Remove a crashed run's orphans, then warm the pool in the background. A missing
        engine or image does not fail start: the tools answer with what to do instead."""
        self._background = BackgroundTasks()  # started and stopped from different tasks, e.g. by a composite
        await self._background.open()
        try:
            await reap_orphans()
            self.caps = Caps.resolve(self.settings, await engine_memory())
        except SandboxError as e:
            self._health = Health("down", str(e))
            return
        self._pool = WarmPool(self.settings, self.settings.pool_size, self._background, room=self._room)
        self._pool.fill()
        self._background.start_soon(self._expire_idle)
        self._health = Health("up", f"image {self.settings.image}; at most {self.caps.describe()}")

    async def stop(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._background is not None:  # first: no refill or expiry may run past this point
                await self._background.aclose()
                self._background = None
            sessions, self._sessions = list(self._sessions.values()), {}
            self._owners.clear()  # a restarted workbench starts with every identity at zero
            self._admitting.clear()
            self._reclaimed.clear()
            async with anyio.create_task_group() as tg:
                for box in sessions:
                    tg.start_soon(box.close)
                if self._pool is not None:
                    tg.start_soon(self._pool.aclose)
            self._pool = None
        self._health = Health("stopped")

    def health(self) -> Health:
        if self._pool is not None and self._pool.last_error is not None and not self._sessions:
            return Health("down", str(self._pool.last_error))
        return self._health

    @property
    def live(self) -> int:
        """Containers counted against the caps: sessions, sessions on their way, the pool's."""
        return len(self._sessions) + sum(self._admitting.values()) + (self._pool.held if self._pool else 0)

    def _room(self) -> int:
        return self.caps.total - self.live if self.caps else 0

    async def session(self, session_id: str, identity: str = "default") -> DockerSandbox:
        """The caller's sandbox, started (from the pool when warm) on first use; a new one only
        within the caps (`SandboxCapacityError` at once when none is free)."""
        box = self._sessions.get(session_id)
        if box is not None:
            return box
        lock = self._opening.setdefault(session_id, anyio.Lock())
        try:
            async with lock:  # one opening per session id: a second caller waits and gets the same box
                box = self._sessions.get(session_id)
                if box is None:
                    await self._admit(identity)
                    try:
                        container = await self._pool.take() if self._pool is not None else None
                        box = await DockerSandbox(self.settings, container=container).start()
                        self._sessions[session_id], self._owners[session_id] = box, identity
                    finally:
                        self._admitting[identity] -= 1
                        self._admitting += Counter()  # drops the zero counts
        finally:
            # Session ids come from clients, so no lock may pile up per id — but it must outlive
            # every holder and waiter (a cancelled waiter dropping it let a third caller open a
            # second container for the same id, uncounted by the caps).
            if not lock.locked() and not lock.statistics().tasks_waiting and self._opening.get(session_id) is lock:
                del self._opening[session_id]
        return box

    async def _admit(self, identity: str) -> None:
        """Reserve a place for a new sandbox of `identity`, reclaiming the least recently used
        idle one if the global cap is reached; refuse at once when that is not possible. Both
        caps are checked again after every await (a reclaim), so concurrent openings cannot
        pass them together."""
        caps = self.caps
        if caps is None:  # start() found no engine or a bad budget: say so instead of starting containers
            raise SandboxError(self._health.detail or "the sandbox is not started")
        while True:
            held = sum(1 for owner in self._owners.values() if owner == identity) + self._admitting[identity]
            if caps.per_identity is not None and held >= caps.per_identity:
                raise SandboxCapacityError(caps.identity_message())
            if len(self._sessions) + sum(self._admitting.values()) < caps.total:
                break
            idle = [(box.last_used, sid) for sid, box in self._sessions.items()
                    if box.busy == 0 and time.monotonic() - box.last_used >= self.settings.reclaim_after]
            if not idle:
                raise SandboxCapacityError(caps.full_message(self.settings.reclaim_after))
            victim = min(idle)[1]
            if len(self._reclaimed) > 4096:  # ids come from clients: keep the set bounded
                self._reclaimed.clear()
            self._reclaimed.add(victim)
            await self.close_session(victim)
        self._admitting[identity] += 1

    def live_sessions(self) -> dict[str, tuple[str, DockerSandbox]]:
        """Session id → (the identity holding it, its sandbox), for consoles listing them (Studio)."""
        return {sid: (self._owners.get(sid, "default"), box) for sid, box in self._sessions.items()}

    async def close_session(self, session_id: str) -> None:
        box = self._sessions.pop(session_id, None)
        self._owners.pop(session_id, None)
        if box is not None:
            await box.close()

    async def _expire_idle(self) -> None:
        interval = max(0.05, min(30.0, self.settings.idle_timeout / 4))
        while True:
            await anyio.sleep(interval)
            now = time.monotonic()
            for session_id, box in list(self._sessions.items()):
                if box.busy == 0 and now - box.last_used > self.settings.idle_timeout:
                    if self._sessions.get(session_id) is box:
                        await self.close_session(session_id)

    async def _box(self, ctx: CallContext) -> DockerSandbox:
        return await self.session(ctx.session_id, ctx.identity)

    async def _run(self, language: Literal["python", "bash"], code: str, timeout: float | None,
                   ctx: CallContext) -> ToolResult:
        limit = self.settings.timeout if timeout is None else min(timeout, self.settings.timeout)
        seconds = ctx.timeout(limit)  # 0 once the caller's deadline has passed: the run times out at once
        # A span per run (under the caller's tool span), so a trace shows where the time went: here.
        with _tracer.start_as_current_span(f"sandbox.run {language}", attributes={
                "workbench.sandbox.language": language, "workbench.sandbox.code_chars": len(code)}) as span:
            try:
                box = await self._box(ctx)
                result = await box.run(language, code, timeout=seconds)
            except SandboxError as e:
                span.set_status(StatusCode.ERROR, str(e)[:200])
                return ToolResult.error(str(e))
            span.set_attributes({"workbench.sandbox.exit_code": -1 if result.exit_code is None else result.exit_code,
                                 "workbench.sandbox.timed_out": result.timed_out})
        if ctx.session_id in self._reclaimed:
            self._reclaimed.discard(ctx.session_id)
            result.notes.insert(0, RECLAIMED_NOTE)
        return _result(result)

    async def run_python(self, code: str, ctx: CallContext, timeout: Timeout = None) -> ToolResult:
        """Run Python code in your sandbox. Variables and imports persist between calls (like a
        notebook); the value of a trailing expression is shown. No network. Files live in
        /workspace. `timeout` (seconds) can only shorten the configured limit. The run ends when
        the code returns: processes it started are stopped, threads it started keep running in
        the interpreter (the result lists them) until `reset`."""
        return await self._run("python", code, timeout, ctx)

    async def run_bash(self, code: str, ctx: CallContext, timeout: Timeout = None) -> ToolResult:
        """Run a bash script in your sandbox (cwd /workspace, no network, non-root). Processes it
        leaves running in the background are stopped when it ends."""
        return await self._run("bash", code, timeout, ctx)

    async def write_file(self, path: str, content: str, ctx: CallContext,
                         encoding: Literal["utf-8", "base64"] = "utf-8") -> ToolResult:
        """Write a file into your sandbox (relative paths are under /workspace). Use
        encoding="base64" for binary content."""
        try:
            data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
            where = await (await self._box(ctx)).write_file(path, data)
        except (SandboxError, ValueError) as e:
            return ToolResult.error(f"write_file failed: {e}")
        return ToolResult.from_text(f"wrote {len(data)} bytes to {where}",
                                    structured={"path": where, "size": len(data)})

    async def read_file(self, path: str, ctx: CallContext,
                        encoding: Literal["utf-8", "base64"] = "utf-8") -> ToolResult:
        """Read a file from your sandbox. Text comes back as is; binary content (or
        encoding="base64") comes back base64-encoded."""
        try:
            data = await (await self._box(ctx)).read_file(path)
        except SandboxError as e:
            return ToolResult.error(f"read_file failed: {e}")
        if encoding == "utf-8":
            try:
                return ToolResult.from_text(data.decode("utf-8"))
            except UnicodeDecodeError:
                pass
        return ToolResult.from_text(base64.b64encode(data).decode(),
                                    structured={"encoding": "base64", "size": len(data)})

    async def list_files(self, ctx: CallContext, path: str = ".", recursive: bool = False) -> ToolResult:
        """List files in your sandbox (default: /workspace), optionally recursively."""
        try:
            entries = await (await self._box(ctx)).list_files(path, recursive=recursive)
        except SandboxError as e:
            return ToolResult.error(f"list_files failed: {e}")
        lines = [f"{e.path}{'/' if e.type == 'dir' else ''}\t{e.size}" for e in entries]
        return ToolResult.from_text("\n".join(lines) or "(empty)",
                                    structured={"entries": [vars(e) for e in entries]})

    async def reset(self, ctx: CallContext, clear_files: bool = False) -> ToolResult:
        """Start a fresh Python interpreter (variables are forgotten) and stop every process in
        your sandbox; with clear_files=true the workspace is emptied too."""
        try:
            await (await self._box(ctx)).reset(clear_files=clear_files)
        except SandboxError as e:
            return ToolResult.error(f"reset failed: {e}")
        return ToolResult.from_text("sandbox reset" + (" (workspace emptied)" if clear_files else ""))
