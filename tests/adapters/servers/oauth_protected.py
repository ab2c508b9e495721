"""An MCP server that is its own OAuth 2.1 authorization server, for the OAuth client tests.

The SDK's authorization-server routes do the protocol (metadata, dynamic registration,
the authorize endpoint with PKCE, the token endpoint, 401 challenges with resource
metadata); this file is only the store behind them. It consents at once (the test
"person" is whoever follows the redirect), issues access tokens that live
`--token-lifetime` seconds with rotating refresh tokens, and keeps its state in `--state`
(JSON), so a restarted server still knows the tokens it issued, like a real one would.

`python oauth_protected.py --port N --state FILE [--token-lifetime S]`
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from pathlib import Path

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--state", required=True)
parser.add_argument("--token-lifetime", type=int, default=3600)
ARGS = parser.parse_args()
BASE = f"http://127.0.0.1:{ARGS.port}"
SCOPE = "tools"


class Store:
    """Clients, codes and tokens, written through to a JSON file (the issued tokens survive a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.exists() else {}
        self.clients: dict[str, dict[str, object]] = data.get("clients", {})
        self.access: dict[str, dict[str, object]] = data.get("access", {})
        self.refresh: dict[str, dict[str, object]] = data.get("refresh", {})
        self.codes: dict[str, AuthorizationCode] = {}
        self.log: list[str] = data.get("log", [])

    def save(self) -> None:
        self.path.write_text(json.dumps({"clients": self.clients, "access": self.access,
                                         "refresh": self.refresh, "log": self.log}))

    def issue(self, client_id: str, scopes: list[str], resource: str | None) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = {"client_id": client_id, "scopes": scopes, "resource": resource,
                               "expires_at": int(time.time()) + ARGS.token_lifetime}
        self.refresh[refresh] = {"client_id": client_id, "scopes": scopes, "resource": resource}
        self.save()
        return OAuthToken(access_token=access, expires_in=ARGS.token_lifetime, scope=" ".join(scopes),
                          refresh_token=refresh)


class Provider:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        raw = self.store.clients.get(client_id)
        return OAuthClientInformationFull.model_validate(raw) if raw else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.store.clients[client_info.client_id] = client_info.model_dump(mode="json", exclude_none=True)
        self.store.log.append("register")
        self.store.save()

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        code = secrets.token_urlsafe(24)
        assert client.client_id is not None
        self.store.codes[code] = AuthorizationCode(
            code=code, scopes=params.scopes or [SCOPE], expires_at=time.time() + 300, client_id=client.client_id,
            code_challenge=params.code_challenge, redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly, resource=params.resource)
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(self, client: OAuthClientInformationFull, code: str) -> AuthorizationCode | None:
        return self.store.codes.get(code)

    async def exchange_authorization_code(self, client: OAuthClientInformationFull, code: AuthorizationCode) -> OAuthToken:
        del self.store.codes[code.code]
        self.store.log.append("authorization_code")
        return self.store.issue(code.client_id, code.scopes, code.resource)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        raw = self.store.refresh.get(refresh_token)
        return RefreshToken(token=refresh_token, **raw) if raw else None  # type: ignore[arg-type]

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: RefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        del self.store.refresh[refresh_token.token]  # rotated: a refresh token works once
        self.store.log.append("refresh_token")
        return self.store.issue(refresh_token.client_id, scopes or refresh_token.scopes, refresh_token.resource)

    async def load_access_token(self, token: str) -> AccessToken | None:
        raw = self.store.access.get(token)
        if raw is None or int(raw["expires_at"]) < time.time():  # type: ignore[call-overload]
            return None
        return AccessToken(token=token, **raw)  # type: ignore[arg-type]

    async def revoke_token(self, token: object) -> None:
        return None


mcp = MCPServer(
    "oauth-protected",
    auth_server_provider=Provider(Store(Path(ARGS.state))),
    auth=AuthSettings(
        issuer_url=BASE,  # type: ignore[arg-type]
        resource_server_url=f"{BASE}/mcp",  # type: ignore[arg-type]
        client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=[SCOPE],
                                                              default_scopes=[SCOPE]),
        required_scopes=[SCOPE],
        validate_token_resource=False,
    ),
)


@mcp.tool(description="Who am I, as the server sees it.")
def whoami() -> str:
    from mcp.server.auth.middleware.auth_context import get_access_token

    token = get_access_token()
    return f"client {token.client_id if token else '?'}"


if __name__ == "__main__":
    mcp.run("streamable-http", host="127.0.0.1", port=ARGS.port)
