"""In Chromium, the Health & config page of a server for several people whose config holds
secrets: the administrator reads the config with every secret masked; another person reads on
the page why it is not shown to them, and the rest of the page still works."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

SECRET = re.compile(r"-SECRET-\d")


def open_health(browser: Any, base: str, token: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{base}/ui/login?next=/ui/health")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/ui/health")
    return context, page


def test_the_administrator_sees_the_config_without_its_secrets(browser: Any, secrets_server: Any, shot: Any) -> None:
    base, tokens = secrets_server
    context, page = open_health(browser, base, tokens["admin"])
    try:
        config = page.locator(".health-config")
        expect(config).to_contain_text("The file is valid")
        expect(config).to_contain_text('"DEMO_TOKEN": "••••••"')
        expect(config).to_contain_text('"Authorization: ••••••"')
        expect(config).to_contain_text("api_key=••••••")
        assert not SECRET.search(page.content())
        shot(page, "health-config-masked")
    finally:
        context.close()


def test_another_person_is_told_why_the_config_is_not_shown(browser: Any, secrets_server: Any, shot: Any) -> None:
    base, tokens = secrets_server
    context, page = open_health(browser, base, tokens["bob"])
    try:
        config = page.locator(".health-config")
        expect(config.get_by_role("alert")).to_contain_text("shown to this server's administrators")
        expect(config.get_by_role("alert")).to_contain_text("workbench:admin")
        expect(page.get_by_role("heading", name=re.compile("^Server"))).to_contain_text("ready")  # the rest works
        assert not SECRET.search(page.content())
        shot(page, "health-config-refused")
    finally:
        context.close()
