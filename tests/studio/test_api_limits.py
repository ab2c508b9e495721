"""Studio is held to the limits `/mcp` is: its API to `[serve.limits] requests_per_minute` per
identity (429 with Retry-After, before the request does any work), and its logins — the form and
a bearer header alike — to a budget of wrong tokens per client address, past which a token is not
even checked, so the console is no faster a way to guess one. Real HTTP on loopback; a second
client address is 127.0.0.2 (all of 127/8 is the loopback interface)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from studio_harness import StudioHttp, studio_http

from servers.auth import FAILED_AUTHENTICATIONS_PER_MINUTE as FAILED_LOGINS_PER_MINUTE
from servers.studio.login import COOKIE
from workbench import CompositeWorkbench, StaticWorkbench

pytestmark = pytest.mark.anyio
ALICE, BOB = "alice-" + "a" * 26, "bob-" + "b" * 28
BUDGET = int(FAILED_LOGINS_PER_MINUTE)


def hello() -> str:
    """Say hello."""
    return "hello"


def tools() -> CompositeWorkbench:
    return CompositeWorkbench({"fn": StaticWorkbench([hello], name="fn")})


def named(**more: Any) -> dict[str, Any]:
    return {"token": None, "tokens": {"alice": {"token": ALICE}, "bob": {"token": BOB}}, **more}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def log_in(http: httpx2.AsyncClient, token: str) -> httpx2.Response:
    http.cookies.clear()
    return await http.post("/ui/login", data={"token": token, "next": "/ui/tools"})


async def test_the_api_holds_each_identity_to_its_requests_per_minute() -> None:
    async with studio_http(tools(), limits={"requests_per_minute": 3}, **named()) as studio:
        for _ in range(3):
            assert (await studio.http.get("/ui/api/session", headers=bearer(ALICE))).status_code == 200
        refused = await studio.http.get("/ui/api/tools", headers=bearer(ALICE))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "serve.limits.requests_per_minute" in refused.json()["error"]["message"]

        # Her browser is the same identity: the same budget. Bob's is his own.
        login = await log_in(studio.http, ALICE)
        assert login.status_code == 303  # the login form is not an API request
        cookie = {"Cookie": f"{COOKIE}={login.cookies[COOKIE]}"}
        studio.http.cookies.clear()
        assert (await studio.http.get("/ui/api/session", headers=cookie)).status_code == 429
        assert (await studio.http.get("/ui/tools", headers=cookie)).status_code == 200  # pages are not the API
        assert (await studio.http.get("/ui/api/session", headers=bearer(BOB))).json()["identity"] == "bob"


async def test_without_a_limit_the_api_is_not_limited() -> None:
    async with studio_http(tools(), **named()) as studio:
        for _ in range(30):
            assert (await studio.http.get("/ui/api/session", headers=bearer(ALICE))).status_code == 200


async def test_wrong_tokens_at_the_form_are_limited_per_address_and_then_not_checked() -> None:
    async with studio_http(tools(), **named()) as studio:
        for _ in range(BUDGET + 5):  # a right token costs nothing
            assert (await log_in(studio.http, ALICE)).status_code == 303
        for i in range(BUDGET):
            assert (await log_in(studio.http, f"guess-{i}")).status_code == 401
        refused = await log_in(studio.http, "guess-next")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "Too many wrong tokens from your address" in refused.text
        # Past the budget the right token is not even looked at: a guess cannot be told right from wrong.
        assert (await log_in(studio.http, ALICE)).status_code == 429
        header = await studio.http.get("/ui/api/session", headers=bearer(ALICE))
        assert header.status_code == 429 and header.json()["error"] == "too_many_failed_logins"
        assert "Retry-After" in header.headers

        # Another address has a budget of its own.
        await other_address_logs_in(studio)


async def test_wrong_bearer_headers_count_as_failed_logins() -> None:
    async with studio_http(tools(), **named()) as studio:
        login = await log_in(studio.http, BOB)
        cookie = {"Cookie": f"{COOKIE}={login.cookies[COOKIE]}"}
        studio.http.cookies.clear()
        for _ in range(BUDGET + 5):
            assert (await studio.http.get("/ui/api/session", headers=bearer(BOB))).status_code == 200
        for i in range(BUDGET):
            assert (await studio.http.get("/ui/api/session", headers=bearer(f"guess-{i}"))).status_code == 401
        assert (await studio.http.get("/ui/api/session", headers=bearer("guess-next"))).status_code == 429
        assert (await log_in(studio.http, BOB)).status_code == 429  # the form shares the address's budget
        # A browser logged in already holds a cookie, not a token: nothing to guess, so it is not locked out.
        assert (await studio.http.get("/ui/api/session", headers=cookie)).json()["identity"] == "bob"
        await other_address_logs_in(studio)


async def other_address_logs_in(studio: StudioHttp) -> None:
    transport = httpx2.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx2.AsyncClient(base_url=str(studio.http.base_url), transport=transport, timeout=30) as other:
        assert (await log_in(other, ALICE)).status_code == 303
        assert (await other.get("/ui/api/session", headers=bearer(BOB))).status_code == 200
