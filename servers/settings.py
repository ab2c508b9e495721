"""How a workbench is served: transport, address, auth, limits — and the checks that refuse a
dangerous combination before anything listens."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from servers.audit import AuditConfig
from servers.auth import FAILED_AUTHENTICATIONS_PER_MINUTE
from servers.oauth_resource import OAuthConfig
from servers.policy import PolicyConfig
from servers.rate_limit import LimitsConfig
from workbench.core import ConfigError, logger

SESSION_HEADER = "Workbench-Session"
"""Optional request header naming a client's session on the stateless 2026-07-28 HTTP wire."""


class ServeError(ConfigError):
    """The server cannot start as configured; the message says what to change (the CLI exits 2)."""


ANY_HOST = "*"
"""`serve.allowed_hosts = ["*"]`: the deliberate opt-out of Host/Origin checks."""
_ALL_INTERFACES = ("0.0.0.0", "::", "")


class StaticToken(BaseModel):
    """One named shared secret of `[serve.tokens]`: `alice = "${ALICE_TOKEN}"`, or a table with scopes."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr
    scopes: list[str] = Field(default_factory=list)
    """Scopes the policy sees for this identity (none unless configured)."""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        return {"token": value} if isinstance(value, str) else value


MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServeConfig(BaseModel):
    """`[serve]` of `workbench.toml`: how the workbench is served (`ServeSettings` adds what is resolved at start)."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    expose: list[str] = Field(default_factory=lambda: ["*"])
    """Globs over tool and prompt names: clients list and call nothing these do not name (agents
    use the sources as their `[servers.X]` shapes them; resources are not filtered)."""
    auth_token_env: str | None = "WORKBENCH_TOKEN"
    auth_token_file: str | None = None
    tokens: dict[str, StaticToken] = Field(default_factory=dict)
    """`[serve.tokens]`: named static tokens for a small team (name = "${VAR}"); the name is the identity."""
    oauth: OAuthConfig | None = None
    """`[serve.oauth]`: accept OAuth 2.1 access tokens (JWT or introspected) from one authorization server."""
    failed_auth_per_minute: float = Field(default=FAILED_AUTHENTICATIONS_PER_MINUTE, gt=0, allow_inf_nan=False)
    """Wrong tokens one client address (an IPv6 client: its /64) may present a minute, and at once
    after a quiet minute, on `/mcp` and Studio together; past it the address gets 429 with
    Retry-After, its tokens not even checked. Right tokens are never counted."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks (`10.0.0.5`, `10.0.0.0/24`) of the reverse proxies in front of the
    server: only a connection from one of them has its `X-Forwarded-For` / `X-Forwarded-Proto`
    believed (the client address that failed authentications are counted by, https for Studio's
    cookie). Empty: nobody's are."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names clients use (`tools.example.com`, `tools.example.com:*`). Required when bound to
    0.0.0.0 or ::, so the Host check against DNS rebinding stays on; `["*"]` turns it off deliberately."""
    allowed_origins: list[str] = Field(default_factory=list)
    max_concurrent_calls_per_client: int = 16
    session_idle_timeout: float = Field(default=1800.0, gt=0, allow_inf_nan=False)
    """Seconds without a request after which a client's session ends (its 2025-era HTTP session is
    forgotten, its sandbox removed)."""
    max_sessions: int = Field(default=1000, ge=1)
    """Live 2025-era HTTP sessions in total (each holds server memory until DELETE or idle expiry);
    past it a new session gets 503."""
    max_sessions_per_identity: int = Field(default=32, ge=1)
    """Live 2025-era HTTP sessions one identity (a token's name or subject) may hold, so one client cannot take
    the whole `max_sessions`; past it a new session gets 429."""
    header_timeout: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    """Seconds a client has to send a complete request head (request line and headers); a slower
    connection is closed, so half-sent requests cannot hold connections open (slowloris)."""
    body_timeout: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    """Seconds a client has to send a request's whole body once its head is complete; a slower one
    gets 408 and its connection is closed. The default fits a 4 MiB request at about 0.6 Mbit/s
    and a 16 MiB Studio file upload at about 2.2 Mbit/s. Slow responses (long tool calls, SSE
    streams) are not timed by it."""
    shutdown_grace: float = 10.0
    max_request_bytes: int = 4 * 1024 * 1024
    """Larger HTTP request bodies are refused with 413."""
    background: list[str] = Field(default_factory=list)
    """Globs over exposed tool names that clients may also run as background jobs (jobs__start /
    status / result / cancel); tools marked `execution.taskSupport` optional/required qualify too.
    To 2026-07-28 clients that declare the `io.modelcontextprotocol/tasks` extension they are MCP tasks."""
    tasks_required: list[str] = Field(default_factory=list)
    """Globs over background tools that a 2026-07-28 client may run only as an MCP task (their work
    outlasts any request timeout): a call from one that does not declare the tasks extension is refused
    with -32021 (MissingRequiredClientCapability) naming it. 2025-era clients, which have no tasks,
    still call them directly or with jobs__start."""
    runs_path: str | None = None
    """SQLite file where served tool calls and Studio's agent runs are recorded (default
    `$WORKBENCH_STATE_DIR/runs.sqlite`, else `~/.local/state/mcp-workbench/runs.sqlite`); "" records nothing."""
    max_sandboxes_per_identity: int | None = Field(default=8, ge=1)
    """Sandboxes one identity (a token's name or subject) may hold at once, so one client cannot take
    every place under `[sandbox] max_sandboxes`; past it, that identity's new session is refused at
    once. With one shared static token every client is the same identity, so this bounds them
    together; named tokens or OAuth give each person their own."""
    policy: PolicyConfig | None = None
    """`[serve.policy]`: which tools, resources and prompts each caller may use (servers/policy.py)."""
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    """`[serve.limits]`: per-identity call rate, concurrency and HTTP request rate (servers/rate_limit.py)."""
    audit: AuditConfig = Field(default_factory=AuditConfig)
    """`[serve.audit]`: where the per-call audit lines go besides the server log (servers/audit.py)."""
    trace_sample: float = Field(default=0.1, ge=0.0, le=1.0)
    """With Studio on and no exporter configured: the share of other served calls whose spans Studio records
    (runs started from Studio and calls with a sampled `traceparent` always are; servers/studio/traces.py
    says why 0.1)."""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                # uvicorn would take "*" as everyone and a name as a literal nobody's peer address equals.
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. \"10.0.0.5\" or \"10.0.0.0/24\"); "
                                 "name the proxies themselves — trusting everyone's X-Forwarded-For would let any "
                                 "client pick the address it is counted by") from None
        return [entry.strip() for entry in value]


class ServeSettings(ServeConfig):
    """`[serve]` of the config plus what is resolved when serving starts: the bearer token read
    from its env var or file, and the name the server announces. One set of fields and defaults,
    so the config and the programmatic API cannot drift apart."""

    auth_token: str | None = None
    """Bearer token every HTTP request must carry; required when `host` is not loopback."""
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
        return cls(**cfg.model_dump(), auth_token=token)

    def check(self) -> None:
        """Refuse settings that would expose tools to the network unprotected."""
        if not self.path.startswith("/"):
            raise ServeError(f"serve.path must start with '/', got {self.path!r}")
        if self.transport == "http" and not 0 <= self.port <= 65535:  # else uvicorn dies with an OverflowError trace
            raise ServeError(f"serve.port must be between 0 and 65535, got {self.port}")
        if self.max_concurrent_calls_per_client < 1:
            raise ServeError("serve.max_concurrent_calls_per_client must be at least 1")
        self._check_tokens()
        if self.transport == "http" and not is_loopback(self.host) and not self.authenticates:
            raise ServeError(
                f"refusing to serve on {self.host} without authentication: anyone who can reach the port could run "
                "every exposed tool. Set a bearer token (export WORKBENCH_TOKEN=..., or serve.auth_token_env / "
                "serve.auth_token_file in the config), named tokens ([serve.tokens]), an authorization server "
                "([serve.oauth]), or bind to 127.0.0.1."
            )
        if self.transport == "http" and self.host in _ALL_INTERFACES and not self.allowed_hosts:
            # Host/Origin checks are defence in depth beside the token; turning them off must be a
            # decision written in the config, not a side effect of binding to every interface.
            raise ServeError(
                f"refusing to serve on {self.host or 'every interface'} without serve.allowed_hosts: the Host "
                "check against DNS rebinding needs the names clients use. Set serve.allowed_hosts = "
                '["tools.example.com", ...] in the config (["*"] turns the check off deliberately), '
                "or bind to 127.0.0.1."
            )

    @property
    def authenticates(self) -> bool:
        """Whether HTTP requests must carry a token (any of WORKBENCH_TOKEN, [serve.tokens], [serve.oauth])."""
        return bool(self.auth_token or self.tokens or self.oauth)

    def _check_tokens(self) -> None:
        seen: dict[str, str] = {self.auth_token: "WORKBENCH_TOKEN"} if self.auth_token else {}
        for name, secret in ((n, t.token.get_secret_value()) for n, t in self.tokens.items()):
            if not name.strip():
                raise ServeError("serve.tokens: a token name is empty; the name is who calls, give it one")
            if len(secret.strip()) < MIN_TOKEN_CHARS:
                raise ServeError(f"serve.tokens.{name}: the token is {'empty' if not secret.strip() else 'short'}; "
                                 f"use at least {MIN_TOKEN_CHARS} random characters (e.g. `openssl rand -hex 32`)")
            if secret in seen:  # one secret, two names: who is calling would be a guess
                raise ServeError(f"serve.tokens.{name} and {seen[secret]} hold the same token; give each its own")
            seen[secret] = name

    def transport_security(self) -> TransportSecuritySettings:
        """Host/Origin checks against DNS rebinding: loopback names always, plus the configured lists."""
        hosts, origins = list(self.allowed_hosts), list(self.allowed_origins)
        if ANY_HOST in hosts:
            logger.warning("serve.allowed_hosts names '*': Host and Origin are not checked (DNS rebinding is possible)")
            return TransportSecuritySettings(enable_dns_rebinding_protection=False)
        if is_loopback(self.host):
            hosts += ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
            origins += ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
        elif self.host not in _ALL_INTERFACES:
            hosts += [self.host, f"{self.host}:*"]
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )
