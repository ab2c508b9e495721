"""`[servers.X]` of `workbench.toml`: one upstream MCP server and how its tools are mounted."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mode = Literal["auto", "legacy", "2026-07-28"]
"""Protocol generation: negotiate, force the 2025-11-25 handshake, or pin 2026-07-28."""
SessionMode = Literal["shared", "per_client"]
"""One upstream session for every gateway client, or one each (see `adapters.mcp_client_sessions`)."""


class ServerConfig(BaseModel):
    """One upstream MCP server: `command` (stdio) or `url` (streamable HTTP / SSE)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    """Working folder of a stdio server; relative to the config file's folder, which is the default."""
    url: str | None = None
    transport: Literal["stdio", "http", "sse"] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: str | None = None
    mode: Mode = "auto"
    timeout: float = 60.0
    """Default seconds per call."""
    connect_timeout: float = 30.0
    """Seconds to wait for the server to start and answer the handshake."""
    session: SessionMode = "shared"
    """Gateway: "per_client" opens one upstream session per client session (state kept apart)."""
    max_client_sessions: int = Field(default=100, gt=0)
    """Gateway, per_client: upstream sessions open at most; a client past it gets a clear error."""
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
            sse = bool(self.url and self.url.rstrip("/").endswith("/sse"))
            self.transport = "stdio" if self.command else ("sse" if sse else "http")
        elif (self.transport == "stdio") != bool(self.command):
            raise ValueError(f"transport {self.transport!r} does not fit {'command' if self.command else 'url'}")
        return self
