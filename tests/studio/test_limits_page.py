"""In Chromium: a person past `[serve.limits] requests_per_minute` reads on the page what the
limit is and when to retry (not "[object Object]", not a bare status line); one who typed wrong
tokens too often is told to wait (test_api_limits: not even the right token is checked then)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from servers.auth import FAILED_AUTHENTICATIONS_PER_MINUTE as FAILED_LOGINS_PER_MINUTE


def log_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/ui/login?next=/ui/health")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()


def test_the_page_says_which_limit_was_reached_and_when_to_retry(browser: Any, limited_server: tuple[str, str],
                                                                 shot: Any) -> None:
    base, token = limited_server
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        log_in(page, base, token)
        expect(page).to_have_url(f"{base}/ui/health")
        limited = page.get_by_role("alert").filter(has_text="too many requests")
        for _ in range(6):  # each visit asks the API more than once: the budget of 4 runs out
            page.reload()
            page.wait_for_load_state("networkidle")
            if limited.count():
                break
        expect(limited.first).to_have_text(re.compile(
            r"too many requests: 4 a minute per client \(serve\.limits\.requests_per_minute\); retry in \d+ s"))
        shot(page, "api-rate-limited")
    finally:
        context.close()


def test_too_many_wrong_tokens_are_told_to_wait(browser: Any, limited_server: tuple[str, str], shot: Any) -> None:
    base, token = limited_server
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        told: list[str] = []
        # The budget refills as the minute goes (a browser's login takes a while): guess until refused.
        for i in range(3 * int(FAILED_LOGINS_PER_MINUTE)):
            log_in(page, base, f"guess-{i}")
            told.append(page.get_by_role("alert").inner_text())
            if not told[-1].startswith("This server does not accept that token"):
                break
        assert len(told) > FAILED_LOGINS_PER_MINUTE, told
        assert re.fullmatch(r"Too many wrong tokens from your address: try again in \d+ s\.", told[-1]), told[-1]
        expect(page).to_have_url(re.compile(r"/ui/login"))
        shot(page, "login-throttled")
    finally:
        context.close()
