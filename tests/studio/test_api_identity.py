"""The console is a caller like any MCP client: its login accepts exactly the credentials `/mcp`
accepts (named tokens, OAuth access tokens — by the same verifiers), and what it lists, calls and
reads is judged by the server's policy, rate limits and audit as that caller. Real HTTP, a real
authorization server issuing real JWTs."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import anyio
import mcp.types as mt
import pytest
from authserver import AuthServer
from studio_harness import StudioHttp, free_port, studio_http

from servers.oauth_resource import OAuthConfig
from servers.studio.login import COOKIE
from workbench import CompositeWorkbench, StaticWorkbench
from workbench.core import CallContext

pytestmark = pytest.mark.anyio
ALICE, BOB = "alice-" + "a" * 26, "bob-" + "b" * 28


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def secret() -> str:
    """What only some may see."""
    return "the launch codes"


def tools() -> CompositeWorkbench:
    return CompositeWorkbench({"fn": StaticWorkbench([add, secret], name="fn")})


NAMED: dict[str, Any] = {
    "token": None,
    "tokens": {"alice": {"token": ALICE}, "bob": {"token": BOB}},
    "policy": {"rules": [{"identities": ["alice"], "tools": ["*"]}, {"identities": ["bob"], "tools": ["fn__add"]}]},
}


async def console(studio: StudioHttp, token: str) -> dict[str, str]:
    """A browser's login with `token`: the cookie and CSRF headers for its API requests."""
    response = await studio.http.post("/ui/login", data={"token": token, "next": "/ui/tools"})
    assert response.status_code == 303, response.text
    cookie = response.cookies[COOKIE]
    studio.http.cookies.clear()
    shell = await studio.http.get("/ui/tools", headers={"Cookie": f"{COOKIE}={cookie}"})
    csrf = re.search(r'name="studio-csrf" content="([^"]+)"', shell.text)
    assert csrf is not None
    return {"Cookie": f"{COOKIE}={cookie}", "X-Studio-CSRF": csrf.group(1)}


async def listed(studio: StudioHttp, headers: dict[str, str]) -> list[str]:
    response = await studio.http.get("/ui/api/tools", headers=headers)
    assert response.status_code == 200, response.text
    return sorted(t["name"] for t in response.json()["tools"])


async def call(studio: StudioHttp, headers: dict[str, str], tool: str, arguments: dict[str, Any]) -> str:
    """The call's SSE stream as text (its `result` or `error` event)."""
    response = await studio.http.post(f"/ui/api/tools/{tool}/call", headers=headers, json={"arguments": arguments})
    assert response.status_code == 200, response.text
    return response.text


async def test_any_named_token_logs_in_as_its_name_and_others_are_refused() -> None:
    async with studio_http(tools(), **NAMED) as studio:
        for token, name in ((ALICE, "alice"), (BOB, "bob")):
            who = await studio.http.get("/ui/api/session", headers=await console(studio, token))
            assert who.json()["identity"] == name
        refused = await studio.http.post("/ui/login", data={"token": "carol-guess", "next": "/ui/tools"})
        assert refused.status_code == 401 and COOKIE not in refused.cookies


async def test_the_policy_shapes_the_console_as_it_shapes_mcp_clients() -> None:
    async with studio_http(tools(), **NAMED) as studio:
        alice, bob = await console(studio, ALICE), await console(studio, BOB)
        assert await listed(studio, alice) == ["fn__add", "fn__secret"]
        assert await listed(studio, bob) == ["fn__add"]
        assert "the launch codes" in await call(studio, alice, "fn__secret", {})
        refused = await call(studio, bob, "fn__secret", {})
        assert "permission denied" in refused and "bob" in refused and "launch codes" not in refused
        assert '"result":5' in await call(studio, bob, "fn__add", {"a": 2, "b": 3})
        # A script with bob's bearer header is bob too.
        assert await listed(studio, {"Authorization": f"Bearer {BOB}"}) == ["fn__add"]
        # The recorder sits outside the policy: the refused call is one of bob's runs.
        runs = studio.server.recorder.store.list_runs(identity="bob") if studio.server.recorder.store else []
        assert any(r["name"] == "fn__secret" and r["status"] == "error" for r in runs)


async def test_the_audit_line_and_the_rate_limit_name_the_console_caller(caplog: pytest.LogCaptureFixture) -> None:
    async with studio_http(tools(), **NAMED, limits={"calls_per_minute": 1, "burst": 1}) as studio:
        bob = await console(studio, BOB)
        with caplog.at_level(logging.INFO, logger="workbench.audit"):
            assert '"result":3' in await call(studio, bob, "fn__add", {"a": 1, "b": 2})
            limited = await call(studio, bob, "fn__add", {"a": 1, "b": 2})
        assert "rate limit: 'bob'" in limited
        audit = [r for r in caplog.records if r.name == "workbench.audit"]
        assert [(r.identity, r.outcome) for r in audit] == [("bob", "ok"), ("bob", "refused:rate")]  # type: ignore[attr-defined]
        # Alice's bucket is her own.
        assert '"result":3' in await call(studio, await console(studio, ALICE), "fn__add", {"a": 1, "b": 2})


async def test_an_oauth_access_token_logs_in_with_its_subject_scopes_and_claims() -> None:
    auth, port = AuthServer(token_lifetime=600), free_port()
    config = OAuthConfig(issuer=auth.issuer, resource=f"http://127.0.0.1:{port}/mcp")
    policy = {"rules": [{"identities": ["*"], "tools": ["fn__add"]},
                        {"claims": {"groups": ["ops"]}, "scopes": ["tools:write"], "tools": ["fn__secret"]}]}
    async with auth.running(), studio_http(tools(), token=None, port=port, oauth=config, policy=policy) as studio:
        erin = auth.mint("erin", audience=config.resource, scope="tools:call tools:write", groups=["staff", "ops"],
                         email="erin@example.com")
        frank = auth.mint("frank", audience=config.resource, scope="tools:call", groups=["ops"])
        response = await studio.http.post("/ui/login", data={"token": erin, "next": "/ui/tools"})
        assert response.status_code == 303
        max_age = int(re.search(r"max-age=(\d+)", response.headers["set-cookie"], re.I).group(1))  # type: ignore[union-attr]
        assert 0 < max_age <= 600  # never outlives the token
        studio.http.cookies.clear()
        erin_console = await console(studio, erin)
        assert (await studio.http.get("/ui/api/session", headers=erin_console)).json()["identity"] == "erin"
        # Scope and claim travelled in the cookie: the claim-and-scope rule grants erin the secret.
        assert await listed(studio, erin_console) == ["fn__add", "fn__secret"]
        assert "the launch codes" in await call(studio, erin_console, "fn__secret", {})
        assert "erin@example.com" not in erin_console["Cookie"]  # only the claims the policy reads are kept
        assert await listed(studio, await console(studio, frank)) == ["fn__add"]
        # Sent as a bearer header instead, the same token is the same caller.
        assert await listed(studio, {"Authorization": f"Bearer {erin}"}) == ["fn__add", "fn__secret"]
        # A token for another resource (audience) is refused at the login as at /mcp.
        stranger = auth.mint("mallory", audience="http://elsewhere.example/mcp")
        assert (await studio.http.post("/ui/login", data={"token": stranger})).status_code == 401


async def test_a_cookie_dies_with_the_token_it_was_issued_for() -> None:
    auth, port = AuthServer(), free_port()
    config = OAuthConfig(issuer=auth.issuer, resource=f"http://127.0.0.1:{port}/mcp")
    async with auth.running(), studio_http(tools(), token=None, port=port, oauth=config) as studio:
        short = auth.mint("erin", audience=config.resource, lifetime=2)
        headers = await console(studio, short)
        assert (await studio.http.get("/ui/api/session", headers=headers)).status_code == 200
        await anyio.sleep(3)  # past the token's exp (a real wait: the cookie's expiry is the token's own)
        assert (await studio.http.get("/ui/api/session", headers=headers)).status_code == 401


APPROVAL: dict[str, Any] = {**NAMED, "policy": {"rules": [
    {"identities": ["alice"], "tools": ["*"], "require_approval": ["fn__secret"]},
    {"identities": ["bob"], "tools": ["fn__add"]},
]}}


async def approve_over_the_stream(studio: StudioHttp, asker: dict[str, str], answerer: dict[str, str],
                                  answer: dict[str, Any]) -> tuple[int, str]:
    """Call fn__secret as `asker`; on its question, post `answer` as `answerer`: (that status, the stream)."""
    events: list[str] = []
    status = 0
    with anyio.fail_after(30):
        async with studio.http.stream("POST", "/ui/api/tools/fn__secret/call", headers=asker,
                                      json={"arguments": {}}) as stream:
            async for line in stream.aiter_lines():
                events.append(line)
                if line.startswith("data:") and events[-2:-1] == ["event: question"]:
                    asked = json.loads(line[5:])
                    assert "needs your approval" in asked["message"]
                    response = await studio.http.post(f"/ui/api/questions/{asked['id']}", headers=answerer, json=answer)
                    status = response.status_code
                    if status != 204:  # nobody else may answer: give up the call (closing cancels it)
                        break
    return status, "\n".join(events)


async def test_the_console_answers_the_policys_approval_question() -> None:
    async with studio_http(tools(), **APPROVAL) as studio:
        alice = await console(studio, ALICE)
        status, stream = await approve_over_the_stream(studio, alice, alice, {"action": "accept",
                                                                              "content": {"approve": True}})
        assert status == 204 and "the launch codes" in stream
        status, stream = await approve_over_the_stream(studio, alice, alice, {"action": "decline"})
        assert status == 204 and "was not approved" in stream and "launch codes" not in stream
        # Another browser of the same person, or anyone else, cannot answer alice's question.
        other = await console(studio, ALICE)
        status, stream = await approve_over_the_stream(studio, alice, other, {"action": "accept",
                                                                              "content": {"approve": True}})
        assert status == 404 and "launch codes" not in stream
        bad = await studio.http.post("/ui/api/questions/x", headers=alice, json={"action": "maybe"})
        assert bad.status_code == 400


async def run_python(code: str) -> str:
    """Stands in for the sandbox."""
    return f"ran {len(code)} chars"


async def test_the_playground_runs_only_the_agents_the_policy_grants() -> None:
    """Over MCP an agent is the tool of its name; the Playground must not be a way around that."""
    from workbench.agents import CodeExecutorAgent
    from workbench.static import FunctionTool

    executor = CodeExecutorAgent("executor", StaticWorkbench([FunctionTool(run_python)]), description="Runs code.")
    policy = {"rules": [{"identities": ["alice"], "tools": ["*"]}, {"identities": ["bob"], "tools": ["fn__add"]}]}
    async with studio_http(tools(), **{**NAMED, "policy": policy}, context={"runners": {"executor": executor}}) as studio:
        alice, bob = await console(studio, ALICE), await console(studio, BOB)
        names = {who: [a["name"] for a in (await studio.http.get("/ui/api/playground/agents", headers=h)).json()["agents"]]
                 for who, h in (("alice", alice), ("bob", bob))}
        assert names == {"alice": ["executor"], "bob": []}
        body = {"agent": "executor", "task": "```python\nprint(1)\n```"}
        refused = await studio.http.post("/ui/api/playground/run", headers=bob, json=body)
        assert refused.status_code == 403 and "'bob'" in refused.json()["error_description"]
        ran = await studio.http.post("/ui/api/playground/run", headers=alice, json=body)
        assert ran.status_code == 200 and "ran 9 chars" in ran.text


class Readme(StaticWorkbench):
    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        return mt.ReadResourceResult(contents=[mt.TextResourceContents(uri=uri, text="read me", mime_type="text/plain")])


async def test_resource_reads_from_the_console_follow_the_policy() -> None:
    policy = {"rules": [{"identities": ["alice"], "tools": ["*"], "resources": ["*"]},
                        {"identities": ["bob"], "tools": ["*"], "deny_resources": ["*"]}]}
    async with studio_http(CompositeWorkbench({"fn": Readme([add], name="fn")}), **{**NAMED, "policy": policy}) as studio:
        uri = {"uri": "fn+demo://readme"}
        read = await studio.http.get("/ui/api/resource", params=uri, headers=await console(studio, ALICE))
        assert read.json()["contents"][0]["text"] == "read me"
        refused = await studio.http.get("/ui/api/resource", params=uri, headers=await console(studio, BOB))
        assert refused.status_code == 403 and "permission denied" in refused.json()["error_description"]
        assert "read me" not in refused.text
