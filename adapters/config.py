"""`[servers.X]` of `workbench.toml`: one upstream MCP server and how its tools are mounted."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Mode = Literal["auto", "legacy", "2026-07-28"]
"""Protocol generation: negotiate, force the 2025-11-25 handshake, or pin 2026-07-28."""
SessionMode = Literal["shared", "per_client"]
"""One upstream session for every gateway client, or one each (see `adapters.mcp_client_sessions`)."""


TokenEndpointAuth = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


class OAuthConfig(BaseModel):
    """`[servers.X.oauth]`: how to get an access token for an upstream server (MCP authorization).

    `grant = "authorization_code"` (a person logs in once with `workbench login X`; tokens
    are refreshed after that) or `"client_credentials"` (a machine identity: a client id
    with a secret, or with a private key that signs a `private_key_jwt` assertion) or
    `"identity_assertion"` (SEP-990 enterprise-managed authorization: the user's ID token from
    the enterprise IdP is exchanged there for an ID-JAG (RFC 8693), which the MCP server's
    authorization server `issuer` takes in the jwt-bearer grant (RFC 7523)).
    `client_id` is a pre-registered client id, or an https URL of a Client ID Metadata
    Document; without it the client registers itself dynamically (RFC 7591)."""

    model_config = ConfigDict(extra="forbid")

    grant: Literal["authorization_code", "client_credentials", "identity_assertion"] = "authorization_code"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    """Write it as "${VAR}" so it stays out of the file; it is never shown."""
    scopes: list[str] = Field(default_factory=list)
    """Empty: the scopes the server asks for (its 401 challenge or `scopes_supported`)."""
    token_endpoint_auth_method: TokenEndpointAuth | None = None
    """Default: client_secret_basic with a secret, private_key_jwt with a key, else none."""
    private_key_file: str | None = None
    """PEM private key for private_key_jwt; relative to the config file's folder."""
    signing_algorithm: str = "RS256"
    issuer: str | None = None
    """The authorization server the client credentials belong to; they are sent nowhere else."""
    redirect_port: int = Field(default=0, ge=0, le=65535)
    """Loopback port of the login redirect (http://127.0.0.1:PORT/callback); 0 picks a free one.
    Set it when the client id was registered with a fixed redirect URI."""
    login_timeout: float = Field(default=300.0, gt=0)
    """Seconds `workbench login` waits for the browser to come back."""
    token_dir: str | None = None
    """Folder of the token files (default: $WORKBENCH_OAUTH_DIR, else the user's state folder)."""
    client_name: str = "mcp-workbench"
    id_token: SecretStr | None = None
    """identity_assertion: the user's OpenID ID token from the enterprise IdP; write "${VAR}"."""
    idp_token_endpoint: str | None = None
    """identity_assertion: the IdP's token endpoint, which exchanges the ID token for an ID-JAG."""
    idp_client_id: str | None = None
    """identity_assertion: this client's id at the IdP (the ID token's audience)."""
    idp_client_secret: SecretStr | None = None

    @property
    def metadata_url(self) -> str | None:
        """`client_id` when it is a Client ID Metadata Document URL (https, with a path)."""
        if self.client_id and self.client_id.startswith("https://") and urlsplit(self.client_id).path not in ("", "/"):
            return self.client_id
        return None

    @property
    def auth_method(self) -> TokenEndpointAuth:
        if self.token_endpoint_auth_method is not None:
            return self.token_endpoint_auth_method
        if self.private_key_file:
            return "private_key_jwt"
        return "client_secret_basic" if self.client_secret else "none"

    @model_validator(mode="after")
    def _usable(self) -> OAuthConfig:
        method = self.auth_method
        if self.grant == "client_credentials":
            if not self.client_id or self.metadata_url:
                raise ValueError("client_credentials needs the client_id the authorization server issued")
            if method == "none":
                raise ValueError("client_credentials needs client_secret or private_key_file")
        if self.grant == "identity_assertion":
            missing = [f for f in ("client_id", "client_secret", "issuer", "id_token", "idp_token_endpoint",
                                   "idp_client_id") if not getattr(self, f)]
            if missing:
                raise ValueError(f"identity_assertion needs {', '.join(missing)} (the secrets as \"${{VAR}}\")")
            if method not in ("client_secret_basic", "client_secret_post"):
                raise ValueError("identity_assertion authenticates with client_secret_basic or client_secret_post")
            if not str(self.idp_token_endpoint).startswith(("http://", "https://")):
                raise ValueError(f"idp_token_endpoint must be the IdP's http(s) URL, got {self.idp_token_endpoint!r}")
        elif self.id_token or self.idp_token_endpoint or self.idp_client_id or self.idp_client_secret:
            raise ValueError("id_token and idp_* belong to grant = 'identity_assertion'")
        if method == "private_key_jwt" and not self.private_key_file:
            raise ValueError("token_endpoint_auth_method 'private_key_jwt' needs private_key_file (a PEM key)")
        if method == "private_key_jwt" and self.grant != "client_credentials":
            raise ValueError("private_key_jwt is supported with grant = 'client_credentials'")
        if method.startswith("client_secret") and self.client_secret is None:
            raise ValueError(f"token_endpoint_auth_method {method!r} needs client_secret (e.g. \"${{MY_SECRET}}\")")
        if self.client_secret is not None and not self.client_id:
            raise ValueError("client_secret without client_id: give the client_id it belongs to")
        if self.issuer is not None and not self.issuer.startswith(("http://", "https://")):
            raise ValueError(f"issuer must be the authorization server's http(s) URL, got {self.issuer!r}")
        return self


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
    oauth: OAuthConfig | None = None
    """MCP authorization (OAuth 2.1) for a `url` server; see `OAuthConfig`."""
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
        if self.oauth is not None and (self.url is None or self.bearer_token):
            raise ValueError("oauth needs a url server and no bearer_token (the access token is the bearer token)")
        if self.transport is None:
            sse = bool(self.url and self.url.rstrip("/").endswith("/sse"))
            self.transport = "stdio" if self.command else ("sse" if sse else "http")
        elif (self.transport == "stdio") != bool(self.command):
            raise ValueError(f"transport {self.transport!r} does not fit {'command' if self.command else 'url'}")
        return self
