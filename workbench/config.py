"""`workbench.toml` — and the `mcpServers` JSON of Claude Desktop, Cursor and VS Code.

Validated with pydantic; every error names the key (`servers.github.args`) and, for
TOML, the line. `${VAR}` and `${VAR:-default}` are expanded in every string value.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.core import WorkbenchError


class ConfigError(WorkbenchError):
    """A config file that cannot be used; the message names the file, key and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Strict):
    """One upstream MCP server: `command` (stdio) or `url` (streamable HTTP / SSE)."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    """Working folder of a stdio server; relative to the config file's folder, which is the default."""
    url: str | None = None
    transport: Literal["stdio", "http", "sse"] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: str | None = None
    mode: Literal["auto", "legacy", "2026-07-28"] = "auto"
    """Protocol generation: negotiate, force the 2025-11-25 handshake, or pin 2026-07-28."""
    timeout: float = 60.0
    """Default seconds per call."""
    connect_timeout: float = 30.0
    """Seconds to wait for the server to start and answer the handshake."""
    prefix: str | None = None
    """Tool name prefix; defaults to the server's key; "" serves names unprefixed."""
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)
    descriptions: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_transport(self) -> ServerConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError("give exactly one of 'command' (stdio) or 'url' (HTTP/SSE)")
        if self.url and not self.url.startswith(("http://", "https://")):  # else: "down" on every connect attempt
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        if self.transport is None:
            self.transport = "stdio" if self.command else ("sse" if self.url and self.url.rstrip("/").endswith("/sse") else "http")
        elif (self.transport == "stdio") != bool(self.command):
            raise ValueError(f"transport {self.transport!r} does not fit {'command' if self.command else 'url'}")
        return self


class SandboxConfig(_Strict):
    """The Docker sandbox served as tools (`run_python`, `run_bash`, files)."""

    enabled: bool = True
    image: str = "mcp-workbench-sandbox:latest"
    prefix: str | None = "sandbox"
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    memory: str = "512m"
    cpus: float = 1.0
    pids: int = 256
    network: bool = False
    timeout: float = Field(30.0, gt=0, allow_inf_nan=False)
    """Wall-clock seconds per run."""
    output_limit: int = Field(65536, ge=1)
    """Bytes kept per stream per run."""
    runtime: str | None = None
    """Container runtime, e.g. "runsc" for gVisor; None uses the engine's default."""
    pool_size: int = Field(2, ge=0)
    idle_timeout: float = Field(600.0, gt=0, allow_inf_nan=False)
    """Seconds before an idle session's container is removed."""
    max_sandboxes: int | None = Field(None, ge=1)
    """Live sandbox containers at most (pooled ones included); unset: what fits in memory_budget."""
    memory_budget: str | None = None
    """Memory all sandboxes together may use, e.g. "12g"; unset: half of the Docker engine's memory."""
    reclaim_after: float = Field(60.0, ge=0, allow_inf_nan=False)
    """At the cap, a session idle this many seconds is reclaimed (least recently used first) for a new one."""


class ModelConfig(_Strict):
    """An OpenAI-compatible chat model (OpenAI, Azure, Ollama, vLLM, llama.cpp server)."""

    model: str
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    max_retries: int = 3
    cache: str | None = None
    """Path of a SQLite response cache; None disables caching."""

    @model_validator(mode="after")
    def _empty_is_unset(self) -> ModelConfig:
        # `base_url = "${URL:-}"` must mean "not set", not "the empty URL".
        self.base_url = self.base_url or None
        self.api_key = self.api_key or None
        return self

    def usable(self, environ: Mapping[str, str] | None = None) -> bool:
        """A model can be called when it has a key or a self-hosted base URL (which often needs none)."""
        env = os.environ if environ is None else environ
        return bool(self.api_key or env.get(self.api_key_env) or self.base_url)


class AgentConfig(_Strict):
    kind: Literal["assistant", "code_executor"] = "assistant"
    description: str = ""
    model: str | None = None
    """Key in [models]; required for kind = "assistant"."""
    system_message: str = "You are a helpful assistant."
    tools: list[str] = Field(default_factory=list)
    """Globs over the workbench's exposed tool names."""
    max_tool_iterations: int = 8
    reflect_on_tool_use: bool = False
    tool_timeout: float | None = None
    """Seconds one tool call may take before the model is told it timed out."""
    max_context_messages: int | None = None
    """Send only the latest this-many messages of a long conversation to the model."""
    stream: bool = False
    """Stream the model's text as it is generated (`workbench run` shows it live)."""


class TeamConfig(_Strict):
    kind: Literal["round_robin", "selector"] = "round_robin"
    description: str = ""
    members: list[str]
    model: str | None = None
    """Key in [models] that picks the next speaker (selector teams)."""
    max_messages: int | None = 10
    text_mention: str | None = None
    timeout: float | None = None
    max_tokens: int | None = None


class ServeConfig(_Strict):
    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    expose: list[str] = Field(default_factory=lambda: ["*"])
    """Globs over tool names: nothing is served that these do not name."""
    auth_token_env: str | None = "WORKBENCH_TOKEN"
    auth_token_file: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names clients use (`tools.example.com`, `tools.example.com:*`). Required when bound to
    0.0.0.0 or ::, so the Host check against DNS rebinding stays on; `["*"]` turns it off deliberately."""
    allowed_origins: list[str] = Field(default_factory=list)
    max_concurrent_calls_per_client: int = 16
    session_idle_timeout: float = Field(1800.0, gt=0, allow_inf_nan=False)
    """Seconds without a request after which a client's session ends (its 2025-era HTTP session is
    forgotten, its sandbox removed)."""
    max_sessions: int = Field(1000, ge=1)
    """Live 2025-era HTTP sessions in total (each holds server memory until DELETE or idle expiry);
    past it a new session gets 503."""
    max_sessions_per_identity: int = Field(32, ge=1)
    """Live 2025-era HTTP sessions one identity (bearer token) may hold, so one client cannot take
    the whole `max_sessions`; past it a new session gets 429."""
    header_timeout: float = Field(10.0, gt=0, allow_inf_nan=False)
    """Seconds a client has to send a complete request head (request line and headers); a slower
    connection is closed, so half-sent requests cannot hold connections open (slowloris)."""
    shutdown_grace: float = 10.0
    max_request_bytes: int = 4 * 1024 * 1024
    """Larger HTTP request bodies are refused with 413."""
    background: list[str] = Field(default_factory=list)
    """Globs over exposed tool names that clients may also run as background jobs (jobs__start /
    status / result / cancel); tools marked `execution.taskSupport` optional/required qualify too."""
    max_sandboxes_per_identity: int | None = Field(8, ge=1)
    """Sandboxes one identity (bearer token) may hold at once, so one client cannot take every
    place under `[sandbox] max_sandboxes`; past it, that identity's new session is refused at once."""


class Config(_Strict):
    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    sandbox: SandboxConfig = Field(default_factory=lambda: SandboxConfig(enabled=False))
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    """Folder of the config file; relative `cwd` and paths resolve against it."""

    @model_validator(mode="after")
    def _server_folders(self) -> Config:
        # A stdio server runs in the config file's folder unless told otherwise, so relative
        # paths in `command`/`args` mean the same from any working directory.
        for server in self.servers.values():
            if server.command is not None:
                server.cwd = str(self.base_dir / server.cwd) if server.cwd else str(self.base_dir)
        return self

    @model_validator(mode="after")
    def _references(self) -> Config:
        for name, agent in self.agents.items():
            if agent.kind == "assistant" and agent.model is None and len(self.models) != 1:
                raise ValueError(f"agents.{name}.model: name one of the [models] ({', '.join(self.models) or 'none defined'})")
            if agent.model is not None and agent.model not in self.models:
                raise ValueError(f"agents.{name}.model: no model {agent.model!r} in [models]")
        for name, team in self.teams.items():
            for member in team.members:
                if member not in self.agents and member not in self.teams:
                    raise ValueError(f"teams.{name}.members: no agent or team {member!r}")
            if team.model is not None and team.model not in self.models:
                raise ValueError(f"teams.{name}.model: no model {team.model!r} in [models]")
        clash = set(self.agents) & set(self.teams)
        if clash:
            raise ValueError(f"agents and teams share the names {sorted(clash)}")
        return self


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str, environ: dict[str, str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set: export {name}=… "
                              f"(or write ${{{name}:-default}} for a default)")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else k, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", environ) for i, v in enumerate(value)]
    return value


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a TOML key path (tomllib keeps no positions)."""
    keys = [str(k) for k in loc if not isinstance(k, int)]
    lines = text.splitlines()
    start, best = 0, None
    for depth in range(len(keys), 0, -1):  # the deepest [table] header that names the path
        header = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(re.escape(k) for k in keys[:depth]) + r"\s*\]+\s*$")
        for i, line in enumerate(lines):
            if header.match(line):
                start, best = i, i + 1
                rest = keys[depth:]
                if rest:
                    key = re.compile(r"^\s*" + re.escape(rest[0]) + r"\s*=")
                    for j in range(i + 1, len(lines)):
                        if lines[j].lstrip().startswith("["):
                            break
                        if key.match(lines[j]):
                            return j + 1
                return best
    if keys:
        key = re.compile(r"^\s*" + re.escape(keys[-1]) + r"\s*=")
        for j in range(start, len(lines)):
            if key.match(lines[j]):
                return j + 1
    return best


def _from_mcp_servers_json(data: Any) -> dict[str, Any]:
    """Claude Desktop / Cursor (`mcpServers`) and VS Code (`servers`, with `type`) layouts."""
    servers = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError("expected an object under 'mcpServers' (Claude Desktop, Cursor) or 'servers' (VS Code)")
    out: dict[str, Any] = {}
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"mcpServers.{name}: expected an object")
        entry = dict(entry)
        kind = entry.pop("type", None)
        entry.pop("disabled", None) and entry.update(enabled=False)
        if kind in ("http", "streamable-http", "streamableHttp"):
            entry["transport"] = "http"
        elif kind == "sse":
            entry["transport"] = "sse"
        elif kind == "stdio":
            entry["transport"] = "stdio"
        entry.pop("envFile", None)
        out[name] = entry
    rest = {k: v for k, v in data.items() if k not in ("mcpServers", "servers", "inputs")}
    return {"servers": out, **rest}


def parse_config(text: str, *, source: str = "<config>", fmt: Literal["toml", "json"] = "toml",
                 environ: dict[str, str] | None = None, base_dir: Path | None = None) -> Config:
    try:
        raw = tomllib.loads(text) if fmt == "toml" else _from_mcp_servers_json(json.loads(text))
        raw = _expand(raw, "", dict(os.environ) if environ is None else environ)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except ConfigError as e:  # the user has to know which file to fix
        raise ConfigError(f"{source}: {e}") from None
    try:
        return Config.model_validate({**raw, "base_dir": base_dir or Path.cwd()})
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(str(k) for k in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        line = _line_of(text, loc) if fmt == "toml" and loc else None
        where = f"{source}:{line}" if line else source
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        if not loc:
            raise ConfigError(f"{where}: {msg}{more}") from None
        raise ConfigError(f"{where}: {key}: {msg}{more}") from None


def load_config(path: str | Path, *, environ: dict[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist (pass --config FILE)") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    fmt: Literal["toml", "json"] = "json" if p.suffix == ".json" else "toml"
    env = dict(os.environ) if environ is None else dict(environ)
    # Lets a bundled config start Python MCP servers with the interpreter running the workbench.
    env.setdefault("WORKBENCH_PYTHON", sys.executable)
    return parse_config(text, source=str(p), fmt=fmt, environ=env, base_dir=p.resolve().parent)
