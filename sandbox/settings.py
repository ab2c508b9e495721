"""What a sandbox container may do. Every limit is on by default; a user turns one off on purpose."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.config import SandboxConfig

DEFAULT_IMAGE = "mcp-workbench-sandbox:latest"
PROJECT_LABEL = "io.mcp-workbench.sandbox"
"""Every container (and the image) the project creates carries it; prune and the reaper touch nothing else."""
OWNER_LABEL = "io.mcp-workbench.owner"
"""`<hostname>:<pid>` of the process that created the container, so the reaper can tell orphans."""
SANDBOX_UID = 1000
WORKSPACE = "/workspace"


def parse_bytes(size: str | int) -> int:
    """'512m' / '1g' / '65536' → bytes (Docker's units: b, k, m, g)."""
    if isinstance(size, int):
        return size
    text = size.strip().lower().rstrip("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


@dataclass
class SandboxSettings:
    """Limits and switches for one sandbox container. Defaults are the hardened ones."""

    image: str = DEFAULT_IMAGE
    memory: str = "512m"
    """Memory limit; swap is set equal to it, so the container cannot swap past it."""
    cpus: float | None = 1.0
    pids: int | None = 256
    network: bool = False
    read_only: bool = True
    """Read-only root filesystem; the workspace and /tmp are size-capped tmpfs."""
    workspace_size: str = "256m"
    tmp_size: str = "64m"
    drop_capabilities: bool = True
    no_new_privileges: bool = True
    user: str = f"{SANDBOX_UID}:{SANDBOX_UID}"
    """`uid:gid` that user code runs as; never root. The supervisor runs apart, as root in the
    container with three capabilities, so user code cannot reach it (`supervisor.seal`)."""
    nofile: int | None = 1024
    fsize: str | None = "256m"
    """Largest file a process may write (RLIMIT_FSIZE)."""
    timeout: float = 30.0
    """Wall-clock seconds per run; the whole process tree is killed when it passes."""
    output_limit: int = 65536
    """Bytes kept per stream per run; the rest is read and dropped, and the result says so."""
    file_limit: int = 16 << 20
    """Largest file `read_file`/`write_file` move in one call."""
    runtime: str | None = None
    """Container runtime, e.g. "runsc" for gVisor; None is the engine's default."""
    pool_size: int = 2
    idle_timeout: float = 600.0
    """Seconds before an idle session's container is removed (SandboxWorkbench)."""
    max_sandboxes: int | None = None
    """Live containers at most (sessions, pooled, starting); None: what fits in `memory_budget`."""
    memory_budget: str | None = None
    """Memory all sandboxes together may take; None: half the engine's memory."""
    max_per_identity: int | None = None
    """Sandboxes one identity (`CallContext.identity`) may hold; None: no per-identity cap."""
    reclaim_after: float = 60.0
    """At the cap, a sandbox idle this many seconds is reclaimed (least recently used first) for a new one."""
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: SandboxConfig, *, max_per_identity: int | None = None) -> SandboxSettings:
        return cls(image=cfg.image, memory=cfg.memory, cpus=cfg.cpus, pids=cfg.pids, network=cfg.network,
                   timeout=cfg.timeout, output_limit=cfg.output_limit, runtime=cfg.runtime,
                   pool_size=cfg.pool_size, idle_timeout=cfg.idle_timeout, max_sandboxes=cfg.max_sandboxes,
                   memory_budget=cfg.memory_budget, reclaim_after=cfg.reclaim_after,
                   max_per_identity=max_per_identity)
