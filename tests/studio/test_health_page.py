"""The Health & config page in Chromium against a real `workbench serve`: the server and each
source live, the doctor's checks, the loaded config, and an error put into the config file
while serving shown with its file, line and key."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.docker, pytest.mark.npm]


def test_health_checks_and_config(page: Any, studio_server: Any, shot: Any) -> None:
    page.goto(f"{studio_server.base}/ui/health")
    expect(page.get_by_role("heading", name=re.compile("^Server"))).to_contain_text("ready")
    sources = page.get_by_role("table", name="Sources")
    for source in ("demo", "everything", "sandbox"):
        expect(sources.get_by_role("row", name=re.compile(f"^{source} up"))).to_be_visible()
    # The doctor's checks, run live (they start each configured server once).
    checks = page.get_by_role("table", name="Checks")
    expect(checks).to_be_visible(timeout=90_000)
    expect(checks.get_by_role("row", name=re.compile("docker"))).not_to_have_count(0)
    expect(checks).to_contain_text("server demo")
    expect(page.get_by_role("heading", name=re.compile("^Checks"))).to_contain_text("all passed")
    config = page.locator(".health-config")
    expect(config).to_contain_text(str(studio_server.config))
    expect(config).to_contain_text('"memory": "512m"')  # the loaded [sandbox] section
    expect(config).to_contain_text("The file is valid")
    shot(page, "health")


def test_a_broken_config_file_shows_file_line_and_key(page: Any, studio_server: Any, shot: Any) -> None:
    original = studio_server.config.read_text()
    broken = original.replace("timeout = 30\n", 'timeout = "soon"\n', 1)
    assert broken != original
    line = broken.splitlines().index('timeout = "soon"') + 1
    studio_server.config.write_text(broken)
    try:
        page.goto(f"{studio_server.base}/ui/health")
        alert = page.locator(".config-error")
        expect(alert).to_be_visible(timeout=30_000)
        expect(alert).to_contain_text(str(studio_server.config))
        expect(alert.locator("dd").nth(1)).to_have_text(str(line))
        expect(alert).to_contain_text("servers.demo.timeout")
        expect(alert).to_contain_text("number")
        shot(page, "health-config-error")
    finally:
        studio_server.config.write_text(original)
