"""How a workbench is served: transport, address, auth, limits — and the checks that refuse a
dangerous combination before anything listens."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings

from workbench.core import WorkbenchError, logger

if TYPE_CHECKING:
    from workbench.config import ServeConfig

SESSION_HEADER = "Workbench-Session"
"""Optional request header naming a client's session on the stateless 2026-07-28 HTTP wire."""


class ServeError(WorkbenchError):
    """The server cannot start as configured; the message says what to change."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    expose: list[str] = field(default_factory=lambda: ["*"])
    """Globs over tool (and prompt) names: nothing is served that these do not name."""
    auth_token: str | None = None
    """Bearer token every HTTP request must carry; required when `host` is not loopback."""
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    max_concurrent_calls_per_client: int = 16
    session_idle_timeout: float = 1800.0
    shutdown_grace: float = 10.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BODY_SIZE
    background: list[str] = field(default_factory=list)
    """Globs over tool names that may also be run in the background (`jobs__start`)."""
    server_name: str = "mcp-workbench"
    server_version: str = "0.1.0"
    log_json: bool = True
    """Structured JSON-lines logs on stderr (set by `serve_workbench`, not by `create_app`)."""

    @classmethod
    def from_config(cls, cfg: ServeConfig, *, environ: dict[str, str] | None = None) -> ServeSettings:
        env = os.environ if environ is None else environ
        token = None
        if cfg.auth_token_env and env.get(cfg.auth_token_env):
            token = env[cfg.auth_token_env].strip()
        elif cfg.auth_token_file:
            try:
                token = Path(cfg.auth_token_file).expanduser().read_text().strip()
            except OSError as e:
                raise ServeError(f"serve.auth_token_file: cannot read {cfg.auth_token_file}: {e.strerror}") from None
            if not token:
                raise ServeError(f"serve.auth_token_file: {cfg.auth_token_file} is empty")
        return cls(
            transport=cfg.transport,
            host=cfg.host,
            port=cfg.port,
            path=cfg.path,
            expose=list(cfg.expose),
            auth_token=token,
            allowed_hosts=list(cfg.allowed_hosts),
            allowed_origins=list(cfg.allowed_origins),
            max_concurrent_calls_per_client=cfg.max_concurrent_calls_per_client,
            session_idle_timeout=cfg.session_idle_timeout,
            shutdown_grace=cfg.shutdown_grace,
            max_request_bytes=cfg.max_request_bytes,
            background=list(cfg.background),
        )

    def check(self) -> None:
        """Refuse settings that would expose tools to the network unprotected."""
        if not self.path.startswith("/"):
            raise ServeError(f"serve.path must start with '/', got {self.path!r}")
        if self.transport == "http" and not 0 <= self.port <= 65535:  # else uvicorn dies with an OverflowError trace
            raise ServeError(f"serve.port must be between 0 and 65535, got {self.port}")
        if self.max_concurrent_calls_per_client < 1:
            raise ServeError("serve.max_concurrent_calls_per_client must be at least 1")
        if self.transport == "http" and not is_loopback(self.host) and not self.auth_token:
            raise ServeError(
                f"refusing to serve on {self.host} without authentication: anyone who can reach the port could run "
                "every exposed tool. Set a bearer token (export WORKBENCH_TOKEN=..., or serve.auth_token_env / "
                "serve.auth_token_file in the config), or bind to 127.0.0.1."
            )

    def transport_security(self) -> TransportSecuritySettings:
        """Host/Origin checks against DNS rebinding: loopback names always, plus the configured lists."""
        hosts, origins = list(self.allowed_hosts), list(self.allowed_origins)
        if is_loopback(self.host):
            hosts += ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
            origins += ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
        elif self.host not in ("0.0.0.0", "::", ""):
            hosts += [self.host, f"{self.host}:*"]
        elif not hosts:
            # Bound to every interface with no names configured: we cannot know the names clients use,
            # so the Host check would refuse everyone. The bearer token (required here) still guards.
            logger.warning("serve.allowed_hosts is empty while bound to %s: Host/Origin are not checked", self.host)
            return TransportSecuritySettings(enable_dns_rebinding_protection=False)
        return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)
