"""`workbench login NAME`: a person authorizes the workbench once, in a browser.

The authorization server sends the browser back to a loopback listener
(http://127.0.0.1:PORT/callback, RFC 8252) that this module runs for the length of one
login. It answers only the redirect that carries the `state` of the authorization URL it
handed out (anything else is refused and the wait goes on), stops at the first answer, and
waits a bounded time. How the URL reaches the person is a callable (`open_browser`), so
tests and headless setups complete the flow without one.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import socket
import webbrowser
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import uvicorn
from mcp.shared.auth import AuthorizationCodeResult, OAuthToken
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from adapters.oauth import REDIRECT_PATH, Interaction, loopback_uri, oauth_auth, storage_for
from adapters.token_store import FileTokenStorage
from workbench.core import WorkbenchError, first_error

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator

    from adapters.config import ServerConfig

logger = logging.getLogger("workbench.oauth")

OpenBrowser = Callable[[str], Awaitable[None] | None]
_MAX_ERROR_TEXT = 200  # the server's error_description is shown, but not a page of it


class LoginFailed(WorkbenchError):
    """The login did not complete; the message says why and what to do."""


def open_in_browser(url: str) -> None:
    """Print the URL (there may be no browser: a server over SSH), and open one if there is."""
    print(f"Open this URL to log in:\n\n  {url}\n", flush=True)
    try:
        webbrowser.open(url)
    except webbrowser.Error:  # no browser: the printed URL is the way
        pass


@dataclass(frozen=True)
class LoginOutcome:
    tools: int
    token_file: Path


async def login(
    name: str,
    server: ServerConfig,
    *,
    base_dir: Path | None = None,
    open_browser: OpenBrowser = open_in_browser,
) -> LoginOutcome:
    """Run the authorization flow for `[servers.NAME]` and store the tokens."""
    from adapters.mcp import McpWorkbench

    cfg = server.oauth
    if server.url is None or cfg is None:
        raise LoginFailed(f"servers.{name} has no [servers.{name}.oauth] section: it needs no login")
    storage = storage_for(name, server.url, cfg, base_dir)
    async with interactive_auth(name, server, base_dir=base_dir, open_browser=open_browser, fresh=True) as auth:
        # The handshake includes the person's time in the browser.
        wb = McpWorkbench.from_config(name, server, base_dir=base_dir, auth=auth,
                                      connect_timeout=cfg.login_timeout + server.connect_timeout)
        async with wb:
            tools = await wb.list_tools()
    if await storage.status() == "missing":
        raise LoginFailed(f"MCP server {name!r} answered without asking for a login: no token was needed")
    return LoginOutcome(len(tools), storage.path)


@asynccontextmanager
async def interactive_auth(
    name: str,
    server: ServerConfig,
    *,
    base_dir: Path | None = None,
    open_browser: OpenBrowser = open_in_browser,
    fresh: bool = False,
) -> AsyncIterator[httpx2.Auth]:
    """The `[servers.NAME.oauth]` auth with a person at hand: while the block runs, a flow that
    needs one shows them the URL and takes the answer on the loopback listener. `fresh` ignores
    the stored tokens (a login is a new login), which stay until new ones replace them."""
    cfg = server.oauth
    if server.url is None or cfg is None:
        raise LoginFailed(f"servers.{name} has no [servers.{name}.oauth] section: it needs no login")
    storage = storage_for(name, server.url, cfg, base_dir)
    port = cfg.redirect_port or await _registered_port(storage)
    async with _loopback(name, port, cfg.login_timeout, fixed=bool(cfg.redirect_port)) as listener:
        if port and listener.port != port:  # the registration names a port we could not get: start over
            storage.delete()
        interaction = Interaction(listener.uri, listener.redirect_handler(open_browser), listener.wait)
        used = _FreshTokens(storage.path) if fresh else storage
        yield oauth_auth(name, server.url, cfg, base_dir=base_dir, storage=used, interaction=interaction)


def logout(name: str, server: ServerConfig, *, base_dir: Path | None = None) -> Path | None:
    """Delete the stored tokens (and registration) of `[servers.NAME]`; the file, if there was one."""
    if server.url is None or server.oauth is None:
        raise LoginFailed(f"servers.{name} has no [servers.{name}.oauth] section: nothing to log out of")
    storage = storage_for(name, server.url, server.oauth, base_dir)
    return storage.path if storage.delete() else None


async def _registered_port(storage: FileTokenStorage) -> int:
    """The loopback port a stored dynamic registration was made with (0: none)."""
    info = await storage.get_client_info()
    for uri in (info.redirect_uris or []) if info else []:
        parts = urlsplit(str(uri))
        if parts.hostname == "127.0.0.1" and parts.path == REDIRECT_PATH and parts.port:
            return parts.port
    return 0


class _FreshTokens(FileTokenStorage):
    """The token file, as if it held no tokens yet: the flow starts over and writes new ones."""

    async def get_tokens(self) -> OAuthToken | None:
        return None


class _Listener(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # Ctrl-C ends the login like any command, not just this listener


class _Redirect:
    """The loopback listener of one login: an ASGI app that takes one authorization response."""

    def __init__(self, name: str, port: int, timeout: float) -> None:
        self.name = name
        self.port = port
        self.timeout = timeout
        self._state: str | None = None
        self._done = anyio.Event()
        self._result: AuthorizationCodeResult | None = None
        self._error: str | None = None

    @property
    def uri(self) -> str:
        return loopback_uri(self.port)

    def redirect_handler(self, open_browser: OpenBrowser) -> Callable[[str], Awaitable[None]]:
        async def handle(url: str) -> None:
            state = parse_qs(urlsplit(url).query).get("state", [""])[0]
            if not state:
                raise LoginFailed("the authorization URL carries no state; refusing to log in without one")
            # A new round (a step-up, another authorization server): the previous answer is spent.
            self._state, self._result, self._error = state, None, None
            self._done = anyio.Event()
            shown = open_browser(url)
            if inspect.isawaitable(shown):
                await shown

        return handle

    async def wait(self) -> AuthorizationCodeResult:
        with anyio.move_on_after(self.timeout):
            await self._done.wait()
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise LoginFailed(self._error)
        raise LoginFailed(f"no answer from the browser within {self.timeout:g} s: run `workbench login "
                          f"{self.name}` again and finish the login in the browser (or raise login_timeout)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: nothing to set up
            return
        request = Request(scope, receive)
        response = self._answer(request)
        await response(scope, receive, send)

    def _answer(self, request: Request) -> Response:
        if request.method != "GET" or request.url.path != REDIRECT_PATH:
            return Response("not found", status_code=404)
        params = request.query_params
        state = params.get("state")
        # Only the browser we sent (it carries our state) may finish the login; a stray or forged
        # request is refused and the wait goes on.
        if self._state is None or self._done.is_set() or state is None \
                or not secrets.compare_digest(state, self._state):
            return _page("This is not the login workbench is waiting for.", 400)
        if error := params.get("error"):
            description = params.get("error_description", "")[:_MAX_ERROR_TEXT]
            self._error = (f"the authorization server refused the login: {error[:_MAX_ERROR_TEXT]}"
                           f"{': ' + description if description else ''}")
            self._done.set()
            return _page("The login was refused; see the terminal.", 400)
        code = params.get("code")
        if not code:
            return _page("The answer carries no authorization code.", 400)
        self._result = AuthorizationCodeResult(code=code, state=state, iss=params.get("iss"))
        self._done.set()
        return _page(f"Logged in to {self.name}. You can close this tab.", 200)


def _page(text: str, status: int) -> HTMLResponse:
    import html

    body = f"<!doctype html><title>workbench login</title><p>{html.escape(text)}</p>"
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@asynccontextmanager
async def _loopback(name: str, port: int, timeout: float, *, fixed: bool) -> AsyncIterator[_Redirect]:
    """Listen on 127.0.0.1:`port` until the block ends: a free port when 0, or when a remembered
    (not `fixed`, i.e. configured) port is taken."""
    sock = _bind(name, port, fixed=fixed)
    redirect = _Redirect(name, sock.getsockname()[1], timeout)
    config = uvicorn.Config(redirect, log_config=None, access_log=False, lifespan="off")
    server = _Listener(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_serve, server, sock)
            try:
                yield redirect
            finally:
                server.should_exit = True
    except BaseExceptionGroup as group:  # the caller's error, not the listener's task group
        raise first_error(group) from None
    finally:
        sock.close()


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit:  # uvicorn's way of saying it could not start; the login then times out clearly
        logger.error("the login redirect listener could not start")


def _bind(name: str, port: int, *, fixed: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        if fixed or port == 0:
            sock.close()
            raise LoginFailed(f"cannot listen for the login redirect on 127.0.0.1:{port}: {e.strerror}; free the "
                              f"port or change servers.{name}.oauth.redirect_port") from None
        sock.bind(("127.0.0.1", 0))  # the remembered port is taken; `login` registers anew
    sock.listen(8)
    sock.setblocking(False)
    return sock

