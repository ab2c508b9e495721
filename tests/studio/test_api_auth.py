"""Studio's door, over real HTTP: the login cookie (signed, expiring, bound to the token, with
HttpOnly/SameSite=Strict), the CSRF token on state-changing requests, the bearer header for
scripts, the Host/Origin checks shared with /mcp, the open-redirect guard after login, and
the security headers. Each defence has a test that fails without it."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from studio_harness import StudioHttp, studio_http

from servers.auth import StaticTokens
from servers.settings import ServeSettings
from servers.studio.login import COOKIE, SESSION_SECONDS, StudioLogin
from workbench import CompositeWorkbench, StaticWorkbench

pytestmark = pytest.mark.anyio
TOKEN = "studio-test-token"


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def tools() -> CompositeWorkbench:
    return CompositeWorkbench({"fn": StaticWorkbench([add], name="fn")})


async def log_in(studio: StudioHttp, token: str = TOKEN) -> tuple[str, str]:
    """(the session cookie, the CSRF token of the shell) after a form login."""
    response = await studio.http.post("/ui/login", data={"token": token, "next": "/ui/tools"})
    assert response.status_code == 303, response.text
    cookie = response.cookies[COOKIE]
    studio.http.cookies.clear()  # the tests say which cookie each request carries
    shell = await studio.http.get("/ui/tools", cookies={COOKIE: cookie})
    csrf = re.search(r'name="studio-csrf" content="([^"]+)"', shell.text)
    assert csrf is not None
    return cookie, csrf.group(1)


async def test_pages_redirect_to_login_and_the_api_refuses_without_credentials() -> None:
    async with studio_http(tools()) as studio:
        page = await studio.http.get("/ui/tools/add")
        assert page.status_code == 303
        assert page.headers["location"] == "/ui/login?next=/ui/tools/add"
        api = await studio.http.get("/ui/api/tools")
        assert api.status_code == 401
        assert "log in at /ui/login" in api.json()["error_description"]
        assert (await studio.http.post("/ui/api/tools/add/call", json={"arguments": {"a": 1, "b": 2}})).status_code == 401
        # The login page and the package's assets are open: they hold nothing of the server's.
        assert (await studio.http.get("/ui/login")).status_code == 200
        assert (await studio.http.get("/ui/static/studio.js")).status_code == 200


async def test_a_wrong_token_is_refused_and_gets_no_cookie() -> None:
    async with studio_http(tools()) as studio:
        response = await studio.http.post("/ui/login", data={"token": "guess", "next": "/ui/tools"})
        assert response.status_code == 401
        assert COOKIE not in response.cookies
        assert "This server does not accept that token" in response.text


async def test_the_login_cookie_opens_pages_and_api_and_is_httponly_strict() -> None:
    async with studio_http(tools()) as studio:
        response = await studio.http.post("/ui/login", data={"token": TOKEN, "next": "/ui/tools/add"})
        assert response.headers["location"] == "/ui/tools/add"
        set_cookie = response.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/ui" in set_cookie
        assert "secure" not in set_cookie  # plain http on loopback: a Secure cookie would never come back
        assert TOKEN not in response.headers["set-cookie"]  # the cookie never carries the token
        studio.http.cookies.clear()
        cookie, _ = await log_in(studio)
        listed = await studio.http.get("/ui/api/tools", cookies={COOKIE: cookie})
        assert listed.status_code == 200
        assert [t["name"] for t in listed.json()["tools"]] == ["fn__add"]
        # The cookie is Studio's only: /mcp still wants the bearer header.
        mcp = await studio.http.post("/mcp", cookies={COOKIE: cookie}, json={})
        assert mcp.status_code == 401


async def test_a_tampered_or_foreign_cookie_is_refused() -> None:
    async with studio_http(tools()) as studio:
        cookie, _ = await log_in(studio)
        body, mac = cookie.split(".")
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        as_alice = base64.urlsafe_b64encode(json.dumps({**payload, "id": "alice"}).encode()).decode().rstrip("=")
        forged = [f"{body}x.{mac}", f"{as_alice}.{mac}", f"{body}.{'0' * len(mac)}", body, "x" * 5000]
        for value in forged:
            assert (await studio.http.get("/ui/api/tools", cookies={COOKIE: value})).status_code == 401, value
    # A cookie signed under another token (the token was rotated) opens nothing.
    async with studio_http(tools(), token="the-next-token") as other:
        assert (await other.http.get("/ui/api/tools", cookies={COOKIE: cookie})).status_code == 401


async def test_a_cookie_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    async with studio_http(tools()) as studio:
        login = StudioLogin(ServeSettings(transport="http", auth_token=TOKEN), StaticTokens.single(TOKEN))
        real = time.time()
        monkeypatch.setattr(time, "time", lambda: real - SESSION_SECONDS - 5)
        old, _ = login.new_cookie(await login.verify(TOKEN, "127.0.0.1"))
        monkeypatch.setattr(time, "time", lambda: real)
        assert (await studio.http.get("/ui/api/tools", cookies={COOKIE: old})).status_code == 401
        fresh, _ = login.new_cookie(await login.verify(TOKEN, "127.0.0.1"))  # the same key, today: accepted (so it was the age)
        assert (await studio.http.get("/ui/api/tools", cookies={COOKIE: fresh})).status_code == 200


async def test_state_changing_requests_need_the_csrf_token() -> None:
    async with studio_http(tools()) as studio:
        cookie, csrf = await log_in(studio)
        body = {"arguments": {"a": 2, "b": 40}}
        missing = await studio.http.post("/ui/api/tools/fn__add/call", cookies={COOKIE: cookie}, json=body)
        assert missing.status_code == 403
        assert missing.json()["error"] == "csrf"
        wrong = await studio.http.post("/ui/api/tools/fn__add/call", cookies={COOKIE: cookie}, json=body,
                                       headers={"X-Studio-CSRF": csrf[:-1] + ("1" if csrf[-1] == "0" else "0")})
        assert wrong.status_code == 403
        right = await studio.http.post("/ui/api/tools/fn__add/call", cookies={COOKIE: cookie}, json=body,
                                       headers={"X-Studio-CSRF": csrf})
        assert right.status_code == 200
        assert '"structuredContent":{"result":42}' in right.text
        # Logging out needs it too (a cross-site form could otherwise log the user out).
        out = await studio.http.post("/ui/logout", cookies={COOKIE: cookie}, data={"csrf": "nope"})
        assert out.status_code == 403
        out = await studio.http.post("/ui/logout", cookies={COOKIE: cookie}, data={"csrf": csrf})
        assert out.status_code == 303
        assert 'workbench_studio=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()


async def test_scripts_use_the_bearer_header_without_csrf_and_a_wrong_one_is_refused() -> None:
    async with studio_http(tools()) as studio:
        ok = await studio.http.post("/ui/api/tools/fn__add/call", headers=studio.auth(),
                                    json={"arguments": {"a": 1, "b": 1}})
        assert ok.status_code == 200
        cookie, _ = await log_in(studio)
        # A wrong header is not rescued by a valid cookie beside it.
        wrong = await studio.http.get("/ui/api/tools", headers={"Authorization": "Bearer nope"},
                                      cookies={COOKIE: cookie})
        assert wrong.status_code == 401


@pytest.mark.parametrize(("headers", "status"), [
    ({"Host": "evil.example"}, 421),
    ({"Origin": "http://evil.example"}, 403),
])
async def test_host_and_origin_are_checked_as_on_mcp(headers: dict[str, str], status: int) -> None:
    async with studio_http(tools()) as studio:
        for path in ("/ui/tools", "/ui/login", "/ui/api/tools"):
            response = await studio.http.get(path, headers={**studio.auth(), **headers})
            assert response.status_code == status, path
        login = await studio.http.post("/ui/login", data={"token": TOKEN}, headers=headers)
        assert login.status_code == status


@pytest.mark.parametrize("target", ["//evil.example/ui/", "https://evil.example/ui/x", "/ui/../../x",
                                    "/ui\\@evil.example", "/ui/api/tools", "javascript:alert(1)"])
async def test_no_open_redirect_after_login(target: str) -> None:
    async with studio_http(tools()) as studio:
        response = await studio.http.post("/ui/login", data={"token": TOKEN, "next": target})
        assert response.headers["location"].startswith("/ui/") and "evil" not in response.headers["location"]
        assert response.headers["location"] in ("/ui/tools", target)


async def test_an_oversized_login_form_is_refused_before_reading() -> None:
    async with studio_http(tools()) as studio:
        response = await studio.http.post("/ui/login", data={"token": "x" * 20_000})
        assert response.status_code == 413


async def test_security_headers_and_caching() -> None:
    async with studio_http(tools()) as studio:
        shell = await studio.http.get("/ui/tools", headers=studio.auth())
        csp = shell.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert shell.headers["x-content-type-options"] == "nosniff"
        assert shell.headers["cache-control"] == "no-store"
        asset = await studio.http.get("/ui/static/tools.js")
        assert asset.headers["cache-control"] == "no-cache"  # revalidated: a new package version shows at once
        again = await studio.http.get("/ui/static/tools.js", headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304
        missing = await studio.http.get("/ui/api/nothing/here", headers=studio.auth())
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_without_a_token_configured_the_login_is_automatic() -> None:
    async with studio_http(tools(), token=None) as studio:
        response = await studio.http.get("/ui/login?next=/ui/health")
        assert response.status_code == 303 and response.headers["location"] == "/ui/health"
        cookie = response.cookies[COOKIE]
        studio.http.cookies.clear()
        assert (await studio.http.get("/ui/api/tools", cookies={COOKIE: cookie})).status_code == 200
        # Still a session: the API wants the cookie (or a header), so other sites' pages get nothing.
        assert (await studio.http.get("/ui/api/tools")).status_code == 401
