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
    user: str | None = f"{SANDBOX_UID}:{SANDBOX_UID}"
    """None runs as the image's user (still `sandbox` for the project's image)."""
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
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: SandboxConfig) -> SandboxSettings:
        return cls(image=cfg.image, memory=cfg.memory, cpus=cfg.cpus, pids=cfg.pids, network=cfg.network,
                   timeout=cfg.timeout, output_limit=cfg.output_limit, runtime=cfg.runtime,
                   pool_size=cfg.pool_size, idle_timeout=cfg.idle_timeout)
