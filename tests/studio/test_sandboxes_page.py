"""The Sandboxes page in Chromium against a real `workbench serve`: the browser's own sandbox
session listed after a sandbox call, a file written by code in it browsed and downloaded, a file
uploaded through the page read back by code, reset, and stop."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.docker, pytest.mark.npm]


def run_python(page: Any, base: str, code: str) -> Any:
    page.goto(f"{base}/ui/tools/sandbox__run_python")
    page.get_by_label(re.compile(r"^code\*?$")).fill(code)
    page.get_by_role("button", name="Call").click()
    result = page.get_by_label("Result")
    expect(result.locator(".result-title")).to_be_visible(timeout=60_000)
    return result


def test_browse_download_upload_reset_stop(page: Any, studio_server: Any, shot: Any, tmp_path: Any) -> None:
    base = studio_server.base
    result = run_python(page, base, "import os\nos.makedirs('notes', exist_ok=True)\n"
                                     "open('notes/hello.txt', 'w').write('written in the sandbox')\nprint('ok')")
    expect(result).to_contain_text("ok")

    page.goto(f"{base}/ui/sandboxes")
    sessions = page.get_by_role("table", name="Sandbox sessions")
    mine = sessions.get_by_role("row").filter(has_text="this browser")
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("idle")
    expect(mine.locator("td").nth(4)).to_contain_text("MiB")  # memory in use, from the engine
    shot(page, "sandboxes")

    mine.get_by_role("link").click()
    files = page.get_by_role("table", name="Files")
    files.get_by_role("link", name="notes/").click()
    expect(page).to_have_url(re.compile(r"\?path=notes$"))
    link = page.get_by_role("table", name="Files").get_by_role("link", name="hello.txt")
    expect(link).to_be_visible()
    shot(page, "sandbox-files")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "hello.txt"
    download.value.save_as(saved)
    assert saved.read_text() == "written in the sandbox"

    # Upload into this folder; code in the sandbox reads it back.
    upload = tmp_path / "from-browser.txt"
    upload.write_text("uploaded through Studio")
    page.get_by_label("Upload into this folder").set_input_files(str(upload))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("table", name="Files").get_by_role("link", name="from-browser.txt")).to_be_visible()
    session_url = page.url

    result = run_python(page, base, "print(open('notes/from-browser.txt').read())")
    expect(result).to_contain_text("uploaded through Studio")

    # Reset and empty the workspace; then stop the sandbox.
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(session_url.split("?")[0])
    page.get_by_role("button", name="Reset and empty workspace").click()
    expect(page.get_by_role("status")).to_contain_text("the workspace is empty")
    expect(page.locator(".files-body")).to_contain_text("This folder is empty")
    page.get_by_role("button", name="Stop").click()
    expect(page).to_have_url(f"{base}/ui/sandboxes")
    expect(page.get_by_role("table", name="Sandbox sessions").get_by_role("row").filter(has_text="this browser")).to_have_count(0)
