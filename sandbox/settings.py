"""What a sandbox container may do, and `[sandbox]` of `workbench.toml`: one set of fields and
defaults. Every limit is on by default; a user turns one off on purpose."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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


class SandboxConfig(BaseModel):
    """`[sandbox]`: the Docker sandbox served as tools (`run_python`, `run_bash`, files) — what an
    operator may set in the config file. `SandboxSettings` adds the switches only code may turn."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    prefix: str | None = "sandbox"
    """Tool name prefix of the sandbox's tools; "" serves them unprefixed."""
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    image: str = DEFAULT_IMAGE
    memory: str = "512m"
    """Memory limit; swap is set equal to it, so the container cannot swap past it."""
    cpus: float | None = 1.0
    pids: int | None = 256
    network: bool = False
    timeout: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Wall-clock seconds per run; the whole process tree is killed when it passes."""
    output_limit: int = Field(default=65536, ge=1)
    """Bytes kept per stream per run; the rest is read and dropped, and the result says so."""
    runtime: str | None = None
    """Container runtime, e.g. "runsc" for gVisor; None is the engine's default."""
    pool_size: int = Field(default=2, ge=0)
    idle_timeout: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    """Seconds before an idle session's container is removed (SandboxWorkbench)."""
    max_sandboxes: int | None = Field(default=None, ge=1)
    """Live containers at most (sessions, pooled, starting); None: what fits in `memory_budget`."""
    memory_budget: str | None = None
    """Memory all sandboxes together may take, e.g. "12g"; None: half the engine's memory."""
    reclaim_after: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    """At the cap, a sandbox idle this many seconds is reclaimed (least recently used first) for a new one."""


class SandboxSettings(SandboxConfig):
    """Limits and switches for sandbox containers: `[sandbox]` plus the hardening switches and what
    the application resolves (the per-identity cap lives in `[serve]`). Defaults are the hardened
    ones. One set of fields and defaults, so the config and the programmatic API cannot drift apart."""

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
    file_limit: int = 16 << 20
    """Largest file `read_file`/`write_file` move in one call."""
    max_per_identity: int | None = None
    """Sandboxes one identity (`CallContext.identity`) may hold; None: no per-identity cap."""
    labels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: SandboxConfig, *, max_per_identity: int | None = None) -> SandboxSettings:
        return cls(**{**cfg.model_dump(), "max_per_identity": max_per_identity})
