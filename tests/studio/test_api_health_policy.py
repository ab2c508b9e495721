"""A source's health tells each caller no more than their listing does: an MCP server reports
"5 tools, protocol …" of itself, and a caller the policy shows 4 of them is told 4 — on Studio's
health and tools pages — while `/readyz`, which lists nothing, tells no count at all. A real MCP
server (examples/servers/demo_server.py over stdio), two identities under `[serve.policy]`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from studio_harness import StudioHttp, studio_http

from adapters.config import ServerConfig
from adapters.mcp import McpWorkbench
from workbench import CompositeWorkbench

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB = "alice-" + "a" * 26, "bob-" + "b" * 28

POLICY: dict[str, Any] = {
    "token": None,
    "tokens": {"alice": {"token": ALICE}, "bob": {"token": BOB}},
    "policy": {"rules": [{"identities": ["alice"], "tools": ["*"]},
                         {"identities": ["bob"], "tools": ["demo__*"], "deny_tools": ["demo__add"]}]},
}


def demo() -> CompositeWorkbench:
    server = ServerConfig(command=sys.executable, args=[str(ROOT / "examples" / "servers" / "demo_server.py")])
    return CompositeWorkbench({"demo": McpWorkbench.from_config("demo", server)})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def detail(studio: StudioHttp, path: str, token: str) -> str:
    response = await studio.http.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    text: str = response.json()["sources"]["demo"]["detail"]
    return text


async def test_each_caller_is_told_the_count_of_the_tools_they_may_see() -> None:
    async with studio_http(demo(), **POLICY) as studio:
        await studio.server.workbench.list_tools()  # connected: the source reports its whole catalog
        [whole] = [h.detail for k, h in studio.server.workbench.health_by_source().items() if k == "demo"]
        assert whole.startswith("5 tools, protocol ")  # what the source says of itself

        protocol = whole.removeprefix("5 tools, ")
        for path in ("/ui/api/health", "/ui/api/tools"):
            assert await detail(studio, path, ALICE) == f"5 tools, {protocol}"
            assert await detail(studio, path, BOB) == f"4 tools, {protocol}"  # demo__add is not his to know of
        bob_tools = (await studio.http.get("/ui/api/tools", headers=bearer(BOB))).json()["tools"]
        assert len([t for t in bob_tools if t["source"] == "demo"]) == 4  # the count is his listing's

        # /readyz answers without a listing: no count for anyone, the rest of the detail kept.
        for token in (ALICE, BOB):
            assert await detail(studio, "/readyz", token) == protocol
        anonymous = (await studio.http.get("/readyz")).json()
        assert anonymous["sources"]["demo"] == {"state": "up"}


async def test_the_doctors_server_checks_are_recounted_for_each_caller() -> None:
    async def checks() -> list[dict[str, Any]]:  # one run answers every caller (it is cached)
        return [{"name": "server demo", "ok": True, "detail": "5 tools, ready in 12 ms", "hint": "", "required": True},
                {"name": "server gone", "ok": True, "detail": "1 tool, ready in 9 ms", "hint": "", "required": True},
                {"name": "docker engine", "ok": True, "detail": "5 tools of its own", "hint": "", "required": True}]

    # The checks are for administrators (tests/studio/test_config_secrets.py); one whom the policy
    # shows less still gets the counts of their own listing.
    admins = {name: {**entry, "scopes": ["workbench:admin"]} for name, entry in POLICY["tokens"].items()}
    async with studio_http(demo(), context={"checks": checks}, **{**POLICY, "tokens": admins}) as studio:
        await studio.server.workbench.list_tools()
        for token, demo_detail in ((ALICE, "5 tools, ready in 12 ms"), (BOB, "4 tools, ready in 12 ms")):
            answer = (await studio.http.get("/ui/api/health/checks", headers=bearer(token))).json()
            details = {c["name"]: c["detail"] for c in answer["checks"]}
            assert details == {"server demo": demo_detail,
                               "server gone": "ready in 9 ms",  # not a source served here: no count
                               "docker engine": "5 tools of its own"}  # not a server check: as it was


async def test_a_caller_the_policy_shows_nothing_is_told_zero() -> None:
    settings = {**POLICY, "policy": {"rules": [{"identities": ["alice"], "tools": ["*"]},
                                                {"identities": ["bob"], "tools": ["nothing-here"]}]}}
    async with studio_http(demo(), **settings) as studio:
        await studio.server.workbench.list_tools()
        assert (await detail(studio, "/ui/api/health", BOB)).startswith("0 tools, protocol ")
