"""In Chromium, against a real `workbench serve` with named tokens and a policy: each person's
console is shaped by the policy as their MCP clients are (bob neither sees nor can call
demo__add), and a tool the policy makes ask for approval asks the person in the console, who
approves (the call runs: 42) or denies it (it does not)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.npm]


def field(page: Any, name: str) -> Any:
    return page.get_by_label(re.compile(rf"^{re.escape(name)}\*?$"))


@pytest.fixture
def as_person(browser: Any, policy_server: tuple[str, dict[str, str]]) -> Iterator[Any]:
    base, tokens = policy_server
    contexts: list[Any] = []

    def log_in(name: str, path: str = "/ui/tools") -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{base}{path}")
        page.get_by_label("Token").fill(tokens[name])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}{path}*")
        return page

    yield log_in
    for context in contexts:
        context.close()


def test_each_person_sees_what_the_policy_grants_them(as_person: Any, shot: Any) -> None:
    alice, bob = as_person("alice"), as_person("bob")
    expect(alice.get_by_role("link", name=re.compile("demo__add"))).to_be_visible()
    expect(bob.get_by_role("link", name=re.compile("demo__echo"))).to_be_visible()
    expect(bob.get_by_role("link", name=re.compile("demo__add"))).to_have_count(0)
    shot(bob, "policy-bob-tools")


def test_an_approval_question_is_answered_in_the_console(as_person: Any, policy_server: Any, shot: Any) -> None:
    base, _ = policy_server
    page = as_person("alice", "/ui/tools/demo__add")
    field(page, "a").fill("2")
    field(page, "b").fill("40")
    page.get_by_role("button", name="Call").click()
    question = page.get_by_role("group", name="Question from the call")
    expect(question).to_contain_text("needs your approval")
    shot(page, "approval-question")
    question.get_by_role("button", name="Approve").click()
    expect(page.get_by_label("Result")).to_contain_text("42")

    page.get_by_role("button", name="Call").click()
    page.get_by_role("group", name="Question from the call").get_by_role("button", name="Deny").click()
    result = page.get_by_label("Result")
    expect(result).to_contain_text("was not approved")
    shot(page, "approval-denied")


def test_each_person_is_told_the_count_of_the_tools_they_may_see(as_person: Any, shot: Any) -> None:
    """The demo server has 5 tools and says so of itself; bob may see 4 of them, and his Health page
    says 4, not 5. The doctor's checks are the administrator's (alice's): bob is told whose they are."""
    for name, count in (("alice", 5), ("bob", 4)):
        page = as_person(name, "/ui/health")
        source = page.get_by_role("table", name="Sources").get_by_role("row", name=re.compile(r"^demo up"))
        expect(source).to_contain_text(re.compile(rf"^demo\s*up\s*{count} tools, protocol \d{{4}}-\d\d-\d\d$"))
        if name == "alice":
            check = page.get_by_role("table", name="Checks").get_by_role("row", name=re.compile(r"server demo"))
            expect(check).to_contain_text(re.compile(rf"server demo\s*{count} tools, ready in \d+ ms"), timeout=60_000)
        else:
            checks = page.locator("section.health-checks")
            expect(checks).to_contain_text("administrators")
            expect(checks).to_contain_text("workbench:admin")
            expect(checks.get_by_role("table", name="Checks")).to_have_count(0)
        shot(page, f"policy-{name}-health")
