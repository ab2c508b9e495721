"""Studio's HTTP side: the pages' shell, the static assets, login, and the JSON API under `/ui/api`.

Mounted on the `workbench serve --transport http` app (see `StudioGate`), in front of the
`Authenticate` middleware: Studio authenticates by itself, with the same verifiers — the bearer
header as on `/mcp`, or the login cookie (`servers.studio.login`) a browser needs — and applies
the same Host/Origin checks. Each request then runs as its caller (`calling_as`), so the policy,
rate limits and audit judge the console exactly as they judge MCP clients; its API requests are
held to `[serve.limits] requests_per_minute` per identity as `/mcp`'s are (a budget of their own).

The frontend is plain ES modules and one stylesheet, shipped in the package (no build step, no
CDN): every page URL gets the same shell and the client router renders by path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servers.auth import TokenRejected, TooManyFailures, Verifier
from servers.mcp_server import WorkbenchServer
from servers.policy import calling_as
from servers.rate_limit import RequestGate
from servers.studio.api_runs import routes as runs_routes
from servers.studio.health_api import health_routes
from servers.studio.login import LoginRefused, StudioLogin, StudioSession, client_host
from servers.studio.sandboxes_api import sandbox_routes
from servers.studio.tools_api import tool_routes
from servers.studio.web import api_error, session_of
from workbench.core import logger

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"
MAX_FORM_BYTES = 8 * 1024
"""The login form holds one token; anything larger is not a login."""
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' data: blob:; connect-src 'self'; object-src 'none'; frame-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
"""Tool results are untrusted (upstream servers, sandbox output): the page renders them as text,
and the policy makes sure nothing in them could run or load from elsewhere even if it were not."""

TOOLS_PRELOAD = '<link rel="preload" href="/ui/api/tools" as="fetch" crossorigin="anonymous">'
Checks = Callable[[], Awaitable[list[dict[str, Any]]]]
ConfigReport = Callable[[], dict[str, Any]]


@dataclass
class StudioContext:
    """What Studio's routes (S1's and S2's) work with; the application fills in what it has."""

    server: WorkbenchServer
    """The MCP server: its served workbench (what clients see), sessions, settings."""
    checks: Checks | None = None
    """`workbench doctor`'s checks, live: [{name, ok, detail, hint, required}]."""
    config_report: ConfigReport | None = None
    """The config as loaded (secrets masked) and the file's errors now: see `servers.studio.config_view`."""
    runners: Mapping[str, Any] = field(default_factory=dict)
    """Agents and teams by name, for the Playground."""
    verifier: Verifier | None = None
    """The token verifiers `/mcp` uses (`create_app` passes them); None: no authentication configured."""

    login: StudioLogin = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.login = StudioLogin(self.server.settings, self.verifier)


def _safe_next(value: str | None) -> str:
    """Where to go after login: a Studio page of this site only (no open redirect)."""
    if not value or not value.startswith(PREFIX + "/") or value.startswith("//") or "\\" in value:
        return PREFIX + "/tools"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith((PREFIX + "/api/", PREFIX + "/login")):
        return PREFIX + "/tools"
    return value


class _Guard:
    """Every Studio request: Host/Origin checks, then a session (except login and the static
    assets, which are the package's public code), then the CSRF token on unsafe methods."""

    OPEN = (PREFIX + "/login", PREFIX + "/static/")

    def __init__(self, app: ASGIApp, login: StudioLogin) -> None:
        self.app = app
        self.login = login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refused = await self.login.refusal(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        path: str = scope["path"]
        if path == PREFIX + "/login" or path.startswith(PREFIX + "/static/"):
            await self.app(scope, receive, send)
            return
        try:
            session = await self.login.session(request)
        except TooManyFailures as e:
            throttled = api_error(429, "too_many_failed_logins", f"{e}; check the token you send")
            throttled.headers["Retry-After"] = str(e.retry_after)
            await throttled(scope, receive, send)
            return
        if session is None:
            if path.startswith(PREFIX + "/api/") or request.method != "GET":
                why = "send 'Authorization: Bearer <token>', or log in at /ui/login"
                response: Response = api_error(401, "unauthorized", f"authentication required: {why}")
                response.headers["WWW-Authenticate"] = "Bearer"
            else:
                response = RedirectResponse(f"{PREFIX}/login?next={quote(request.url.path, safe='/')}", status_code=303)
            await response(scope, receive, send)
            return
        # The logout form posts its token as a field; API calls send the header.
        if not self.login.csrf_ok(request, session) and path != PREFIX + "/logout":
            await api_error(403, "csrf", "missing or wrong X-Studio-CSRF header: reload the page")(scope, receive, send)
            return
        scope.setdefault("state", {})["studio_session"] = session
        # Everything this request does on the served workbench (listings, calls, reads — and the tasks
        # it starts, which inherit this) is judged by the policy, limits and audit as this caller.
        with calling_as(session.caller()):
            await self.app(scope, receive, send)


class _Headers:
    """Security headers on every Studio response; assets revalidate (ETag) so a new version of
    the package is picked up at once, API answers are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(PREFIX + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                # Not no-referrer: with it Chromium sends "Origin: null" on form posts, which the Origin check refuses.
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-cache" if static else "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _caller_identity(scope: Scope) -> str:
    session: StudioSession = scope["state"]["studio_session"]
    return session.identity


def _page(title: str, *body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"color-scheme\" content=\"light dark\">"
            f"<title>{title} · Workbench Studio</title><link rel=\"stylesheet\" href=\"/ui/static/studio.css\">"
            "</head><body><main>" + "".join(body) + "</main></body></html>")


def _login_page(next_path: str, error: str = "") -> str:
    alert = f'<p class="notice error" role="alert">{escape(error)}</p>' if error else ""
    return _page(
        "Log in",
        '<form class="login panel" method="post" action="/ui/login">',
        "<h1>Workbench Studio</h1>",
        '<p class="muted">Enter a token this server accepts: <code>WORKBENCH_TOKEN</code>, one of '
        "<code>[serve.tokens]</code>, or an OAuth access token for it.</p>",
        alert,
        '<div class="field"><label for="token">Token</label>',
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus></div>',
        f'<input type="hidden" name="next" value="{escape(next_path)}">',
        '<button type="submit">Log in</button></form>',
    )


def studio_app(context: StudioContext) -> ASGIApp:
    """The ASGI app serving everything under `/ui` (paths arrive unstripped)."""
    login = context.login
    shell_template = (STATIC / "index.html").read_text()

    async def login_form(request: Request) -> Response:
        next_path = _safe_next(request.query_params.get("next"))
        if not login.required:  # no token configured (loopback only): nothing to ask for
            response: Response = RedirectResponse(next_path, status_code=303)
            login.set_cookie(response, request, *login.new_cookie(None))
            return response
        return HTMLResponse(_login_page(next_path))

    async def login_submit(request: Request) -> Response:
        if int(request.headers.get("content-length") or MAX_FORM_BYTES + 1) > MAX_FORM_BYTES:
            return HTMLResponse(_login_page(PREFIX + "/tools", "The form was too large."), status_code=413)
        form = await request.form(max_files=0, max_fields=4)
        token, next_path = form.get("token"), _safe_next(str(form.get("next") or ""))
        try:
            if not isinstance(token, str):
                raise TokenRejected("missing")
            cookie, max_age = login.new_cookie(await login.verify(token, client_host(request)))
        except TooManyFailures as e:
            # Info, as the rate limit's refusals: a guesser kept at bay must not flood the log either.
            logger.info("studio login refused: too many failed logins", extra={"client": client_host(request)})
            return HTMLResponse(_login_page(next_path, f"Too many wrong tokens from your address: try again in "
                                                       f"{e.retry_after} s."),
                                status_code=429, headers={"Retry-After": str(e.retry_after)})
        except TokenRejected as e:
            logger.warning("studio login failed", extra={
                "reason": e.reason, "client": client_host(request)})
            why = ("That token lacks the scopes this server requires." if e.status == 403
                   else "This server does not accept that token.")
            return HTMLResponse(_login_page(next_path, why), status_code=e.status)
        except LoginRefused as e:
            return HTMLResponse(_login_page(next_path, str(e)), status_code=401)
        response = RedirectResponse(next_path, status_code=303)
        login.set_cookie(response, request, cookie, max_age)
        return response

    async def logout(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        csrf = form.get("csrf")
        if not login.csrf_ok(request, session_of(request), csrf if isinstance(csrf, str) else None):
            return api_error(403, "csrf", "missing or wrong CSRF token: reload the page")
        response = RedirectResponse(PREFIX + "/login", status_code=303)
        login.clear_cookie(response)
        return response

    async def shell(request: Request) -> Response:
        shell = shell_template.replace("__CSRF__", escape(session_of(request).csrf))
        if request.url.path in (PREFIX, PREFIX + "/") or request.url.path.startswith(PREFIX + "/tools"):
            # The landing page's data, fetched while its scripts load rather than after.
            shell = shell.replace("<!--page-preload-->", TOOLS_PRELOAD)
        return HTMLResponse(shell)

    async def whoami(request: Request) -> Response:
        session = session_of(request)
        return JSONResponse({"identity": session.identity, "session": session.id, "auth": login.required})

    async def api_not_found(request: Request) -> Response:
        return api_error(404, "not_found", f"no Studio API at {request.url.path}")

    api: list[BaseRoute] = [
        Route("/session", whoami, methods=["GET"]),
        *tool_routes(context),
        *health_routes(context),
        *sandbox_routes(context),
        *runs_routes(context),  # S2: runs, traces, playground (servers.studio.api_runs)
        Route("/{rest:path}", api_not_found),
    ]
    app = Starlette(routes=[
        Mount(PREFIX, routes=[
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login_submit, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC)),
            # `[serve.limits] requests_per_minute` per identity, as on /mcp (each API request may list
            # or call upstream); the guard has found the caller by then.
            Mount("/api", app=RequestGate(Router(api), context.server.settings.limits.requests_per_minute,
                                          identity_of=_caller_identity)),
            Route("/", shell, methods=["GET"]),
            Route("/{page:path}", shell, methods=["GET"]),
        ]),
    ])
    return _Headers(_Guard(app, login))


class StudioGate:
    """ASGI middleware sending `/ui` and everything under it to Studio, the rest on down.
    Installed outside the bearer middleware, since a browser's page loads carry a cookie,
    not a header; Studio checks both itself."""

    def __init__(self, app: ASGIApp, studio: ASGIApp) -> None:
        self.app = app
        self.studio = studio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["path"] == PREFIX or scope["path"].startswith(PREFIX + "/")):
            await self.studio(scope, receive, send)
        else:
            await self.app(scope, receive, send)
