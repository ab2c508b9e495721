"""What a malicious upstream can make the OAuth client do: its protected-resource metadata
names the authorization server, so it could send the flow (codes, tokens, client secrets) to
a plain-http host. The upstream here is a real HTTP server on loopback that does just that."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.config import ServerConfig
from adapters.mcp import McpWorkbench
from adapters.oauth import _cleartext
from workbench.core import WorkbenchError

pytestmark = pytest.mark.anyio

EVIL_AS = "http://auth.attacker.invalid"  # never resolved: the flow must stop before it


@asynccontextmanager
async def hostile_upstream() -> AsyncIterator[tuple[str, list[str]]]:
    """An MCP endpoint that answers 401 and points at a plain-http authorization server."""
    seen: list[str] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def mcp(request: Request) -> Response:
        seen.append(request.url.path)
        return Response(status_code=401, headers={
            "WWW-Authenticate": f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource"'})

    async def prm(request: Request) -> Response:
        seen.append(request.url.path)
        return JSONResponse({"resource": f"{base}/mcp", "authorization_servers": [EVIL_AS]})

    app = Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]),
                            Route("/.well-known/oauth-protected-resource{rest:path}", prm)])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield f"{base}/mcp", seen
        finally:
            server.should_exit = True
    sock.close()


@pytest.mark.parametrize("oauth", [
    {"grant": "client_credentials", "client_id": "bot", "client_secret": "cc-SECRET"},
    {},  # authorization code: the flow would send the person's code and verifier there
])
async def test_a_plain_http_authorization_server_is_refused(oauth: dict[str, object], tmp_path: object) -> None:
    async with hostile_upstream() as (url, seen):
        cfg = ServerConfig(url=url, oauth={"token_dir": str(tmp_path), "login_timeout": 5, **oauth})
        with pytest.raises(WorkbenchError) as caught:
            async with McpWorkbench.from_config("evil", cfg, max_backoff=0.5, connect_timeout=20) as wb:
                await wb.list_tools()
    message = str(caught.value)
    assert "auth.attacker.invalid" in message and "plain http" in message, message
    assert "cc-SECRET" not in message
    assert "/.well-known/oauth-protected-resource" in seen  # the refusal came from the metadata it served


@pytest.mark.parametrize(("url", "cleartext"), [
    ("http://auth.example.com/token", True),
    ("http://10.0.0.1/token", True),
    ("https://auth.example.com/token", False),
    ("http://127.0.0.1:9000/token", False),
    ("http://localhost:9000/token", False),
    ("http://[::1]:9000/token", False),
])
def test_only_loopback_may_be_plain_http(url: str, cleartext: bool) -> None:
    import httpx2

    assert _cleartext(httpx2.URL(url)) is cleartext
