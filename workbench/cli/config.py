"""`workbench.toml` — and the `mcpServers` JSON of Claude Desktop, Cursor and VS Code.

The root config of the application: each section is the pydantic model of the component it
configures (`[servers.X]` adapters/config.py, `[sandbox]` sandbox/settings.py, `[serve]`
servers/settings.py, `[models]`/`[agents]`/`[teams]` workbench/agents/config.py), composed here
with the cross-section checks. Every error names the key (`servers.github.args`) and, for
TOML, the line. `${VAR}` and `${VAR:-default}` are expanded in every string value.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.config import ServerConfig
from sandbox.settings import SandboxConfig
from servers.settings import ServeConfig
from workbench.agents.config import AgentConfig, ModelConfig, TeamConfig
from workbench.core import ConfigError
from workbench.shaped import uri_prefix

__all__ = [
    "AgentConfig", "Config", "ConfigError", "ModelConfig", "SandboxConfig", "ServeConfig", "ServerConfig",
    "TeamConfig", "load_config", "parse_config",
]


class LocatedError(ValueError):
    """A cross-section check's error that names its key: a model validator's own errors carry
    no location, so `parse_config` takes it from here (`servers.b.prefix`) to find the line."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class Config(BaseModel):
    """The whole file: each section is the model of the component it configures."""

    model_config = ConfigDict(extra="forbid")

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
                have = ", ".join(self.models) or "none defined"
                raise ValueError(f"agents.{name}.model: name one of the [models] ({have})")
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

    @model_validator(mode="after")
    def _distinct_uri_prefixes(self) -> Config:
        # A prefixed source claims the resource URIs whose scheme begins with its prefix; schemes
        # are case-insensitive (RFC 3986 §3.1) and hold only `a-z0-9+.-`, so `a_b`, `a-b` and `A-B`
        # claim the same URIs, and `a` claims `a+b`'s (`a+b+x://` reads as `a`'s `b+x://`): a read
        # or subscription could reach the wrong server. Refused here rather than routed by mount order.
        sources: list[tuple[tuple[str, ...], str]] = [
            (("servers", name), name if server.prefix is None else server.prefix)
            for name, server in self.servers.items() if server.enabled
        ]
        if self.sandbox.enabled:
            sources.append((("sandbox",), "sandbox" if self.sandbox.prefix is None else self.sandbox.prefix))
        seen: list[tuple[tuple[str, ...], str, str]] = []
        for where, prefix in sources:
            if not prefix:  # "" serves URIs unchanged; such sources are tried in turn
                continue
            head = uri_prefix(prefix)
            for other_where, other_prefix, other_head in seen:
                if head.startswith(other_head) or other_head.startswith(head):
                    this, other = ".".join(where), ".".join(other_where)
                    raise LocatedError(
                        (*where, "prefix"),
                        f"prefix {prefix!r} of {this} and prefix {other_prefix!r} of {other} both claim resource "
                        f"URIs that begin {max(head, other_head, key=len)!r} (URI schemes ignore case and hold only "
                        "letters, digits, '+', '.' and '-'), so a URI could reach the wrong source: "
                        f"set another prefix = \"…\" in [{this}] or [{other}]",
                    )
            seen.append((where, prefix, head))
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
        loc = tuple(err["loc"]) or getattr(err.get("ctx", {}).get("error"), "loc", ())
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
