"""In Chromium: the console refuses a browser without the token (every page leads to the login,
the API answers 401), a wrong token is told so, the right one opens the page asked for, and
logging out closes it again."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from studio_harness import StudioServer

pytestmark = [pytest.mark.docker, pytest.mark.npm]


def test_the_console_refuses_a_browser_without_the_token(browser: Any, studio_server: StudioServer, shot: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        page.goto(f"{studio_server.base}/ui/sandboxes")
        expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/sandboxes$"))
        expect(page.get_by_role("heading", name="Workbench Studio")).to_be_visible()
        # The API behind the pages, asked directly from this browser: refused.
        api = page.request.get(f"{studio_server.base}/ui/api/tools")
        assert api.status == 401
        assert "authentication required" in api.json()["error_description"]
        assert page.context.cookies() == []

        page.get_by_label("Token").fill("not-the-token")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("does not accept that token")
        shot(page, "login-refused")

        page.get_by_label("Token").fill(studio_server.token)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{studio_server.base}/ui/sandboxes")  # back to the page asked for
        expect(page.get_by_role("heading", name="Sandboxes", level=1)).to_be_visible()
        cookie = next(c for c in page.context.cookies() if c["name"] == "workbench_studio")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        assert page.evaluate("document.cookie") == ""  # out of every script's reach

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/ui/login"))
        assert page.request.get(f"{studio_server.base}/ui/api/tools").status == 401
    finally:
        context.close()
