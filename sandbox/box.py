"""`DockerSandbox`: one session — one hardened container, a persistent Python, files that stay."""

from __future__ import annotations

import base64
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import anyio

from sandbox.container import SandboxContainer
from sandbox.errors import SandboxClosedError, SandboxCrashedError, SandboxError, SandboxProtocolError
from sandbox.protocol import max_reply_bytes
from sandbox.settings import SandboxSettings

logger = logging.getLogger("workbench.sandbox")
Language = Literal["python", "bash"]
PATH_MAX = 4096
HOST_GRACE = 10.0
"""Seconds the host waits past a run's own timeout before it declares the supervisor wedged."""


@dataclass
class RunResult:
    """What one run produced, and which limit (if any) stopped it."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False
    """An output stream passed `output_limit`; the rest was read and dropped."""
    duration: float = 0.0
    cancelled: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    """Plain-language remarks: which limit was hit, whether the Python state was lost."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.oom_killed or self.cancelled)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any], limit: int) -> RunResult:
        notes = list(data.get("notes", []))
        for name in ("stdout", "stderr"):
            if data.get(f"{name}_bytes", 0) > limit:
                notes.append(f"{name} truncated: {data[f'{name}_bytes']} bytes written, the first {limit} kept "
                             "(the output limit)")
        return cls(stdout=data["stdout"], stderr=data["stderr"], exit_code=data["exit_code"],
                   timed_out=data["timed_out"], oom_killed=data["oom_killed"], truncated=data["truncated"],
                   duration=data["duration"], cancelled=data["cancelled"], stdout_bytes=data["stdout_bytes"],
                   stderr_bytes=data["stderr_bytes"], notes=notes)


def _checked(path: str) -> str:
    """A path the supervisor can take: within PATH_MAX (a longer one only makes a reply bigger than
    its frame bound) and without NUL."""
    if len(path.encode("utf-8", "surrogatepass")) > PATH_MAX or "\0" in path:
        raise SandboxError(f"invalid path: longer than {PATH_MAX} bytes or containing NUL")
    return path


@dataclass
class FileEntry:
    path: str
    """Relative to the listed directory."""
    type: Literal["file", "dir", "link"]
    size: int


class DockerSandbox:
    """One sandbox session. `async with DockerSandbox() as box: await box.run("python", "print(1)")`.

    Pass `container` to adopt a pre-started one (the warm pool does). If the container dies
    under a run (e.g. removed from outside), the run reports it and a fresh container
    replaces it, so the sandbox stays usable.
    """

    def __init__(self, settings: SandboxSettings | None = None, *, container: SandboxContainer | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self._container = container
        self._closed = False
        self.last_used = time.monotonic()
        self.opened = time.monotonic()
        """When this session began (an adopted container may be older: it waited in the pool)."""
        self.busy = 0

    @property
    def container_id(self) -> str | None:
        return self._container.id if self._container else None

    async def start(self) -> Self:
        if self._closed:
            raise SandboxClosedError()
        if self._container is None:
            container = await SandboxContainer.start(self.settings)
            if self._closed:  # closed while it started (a replace racing close): it must not outlive us
                await container.remove()
                raise SandboxClosedError()
            self._container = container
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Kill and remove the container at once (no SIGTERM grace); safe to call twice."""
        self._closed = True
        container, self._container = self._container, None
        if container is not None:
            await container.remove()

    async def _request(self, op: str, wait: float | None, **fields: Any) -> dict[str, Any]:
        await self.start()
        container = self._container
        assert container is not None
        self.busy += 1
        bound = max_reply_bytes(op, self.settings.output_limit, self.settings.file_limit)
        try:
            response = await container.channel.request(op, wait, bound, **fields)
        except (SandboxCrashedError, TimeoutError) as e:
            if self._closed:  # closed under the request (e.g. the session was released)
                raise SandboxClosedError() from None
            raise await self._replace(container, e) from None
        finally:
            self.busy -= 1
            self.last_used = time.monotonic()
        if "error" in response:
            raise SandboxError(response["error"])
        return response

    async def _replace(self, old: SandboxContainer, error: Exception) -> SandboxCrashedError:
        """The container died or stopped answering: put a fresh one in its place, so the
        sandbox stays usable, and return the error that says what happened."""
        protocol_broken = isinstance(error, SandboxProtocolError)
        oom = not protocol_broken and await anyio.to_thread.run_sync(old.oom_killed)
        await old.remove()
        if self._container is old:
            self._container = None
            await self.start()
        if protocol_broken:
            crashed: SandboxCrashedError = SandboxProtocolError(
                f"the sandbox broke its protocol ({error}) and was replaced; variables and files are lost")
            logger.warning("sandbox container %s broke its protocol: %s", old.id[:12], error)
            return crashed
        why = ("the container was killed for exceeding its memory limit" if oom else
               "the supervisor stopped answering" if isinstance(error, TimeoutError) else str(error))
        crashed = SandboxCrashedError(f"{why}; a fresh container replaced it (files and variables were lost)")
        crashed.oom_killed = oom
        return crashed

    async def run(self, language: Language, code: str, *, timeout: float | None = None) -> RunResult:
        """Run `code`; Python state persists between runs. Limits hit come back in the result
        (`timed_out`, `oom_killed`, `truncated`, `notes`), never as exceptions."""
        if language not in ("python", "bash"):
            raise ValueError(f"language must be 'python' or 'bash', not {language!r}")
        limit = self.settings.output_limit
        seconds = timeout if timeout is not None else self.settings.timeout
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"timeout must be a finite number of seconds >= 0, not {seconds!r}")
        try:
            data = await self._request("run", seconds + HOST_GRACE, lang=language, code=code, timeout=seconds,
                                       limit=limit)
        except SandboxCrashedError as e:
            return RunResult(stdout="", stderr="", exit_code=None, oom_killed=e.oom_killed, notes=[str(e)])
        return RunResult.from_wire(data, limit)

    async def write_file(self, path: str, data: bytes | str) -> str:
        """Write a file (relative paths are inside the workspace); returns its absolute path."""
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > self.settings.file_limit:
            raise SandboxError(f"{len(raw)} bytes is more than the {self.settings.file_limit}-byte file transfer limit")
        response = await self._request("write_file", 60, path=_checked(path), data=base64.b64encode(raw).decode())
        return str(response["path"])

    async def read_file(self, path: str) -> bytes:
        response = await self._request("read_file", 60, path=_checked(path), limit=self.settings.file_limit)
        return base64.b64decode(response["data"])

    async def list_files(self, path: str = ".", *, recursive: bool = False) -> list[FileEntry]:
        response = await self._request("list_files", 60, path=_checked(path), recursive=recursive)
        return [FileEntry(**e) for e in response["entries"]]

    async def reset(self, *, clear_files: bool = False) -> None:
        """A fresh Python interpreter, every process stopped; with `clear_files`, an empty workspace."""
        await self._request("reset", 60, clear_files=clear_files)
