"""Two identities never reach each other's sessions, jobs, sandboxes or session streams, tried
through every header and id a client can send: `Workbench-Session`, a reused `Mcp-Session-Id`
(POST, the GET stream, DELETE), job ids. Identities come from named static tokens and from an
authorization server's JWTs; the checks are the same."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from authserver import AuthServer
from serve_toolkit import ServeBench
from serving import Served, free_port, http_client, sandbox_workbench_or_skip, serving

from servers import ServeSettings
from servers.jobs import JobsWorkbench
from servers.oauth_resource import OAuthConfig
from workbench import CallContext

pytestmark = pytest.mark.anyio
ALICE, BOB = "alice-static-token-5b1d0c9e", "bob-static-token-77a2f3e4"
TOKENS = {"alice": ALICE, "bob": BOB}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def auth(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def team(**more: Any) -> ServeSettings:
    return ServeSettings(transport="http", tokens=TOKENS, **more)  # type: ignore[arg-type]


async def whoami(served: Served, token: str, mode: str, **headers: str) -> dict[str, Any]:
    async with http_client(served.url, mode=mode, headers=auth(token, **headers)) as client:
        return dict((await client.call_tool("whoami", {})).structured_content or {})


# ---- 2025-era sessions: a reused Mcp-Session-Id is unknown to anyone else ------------------------
async def test_another_identitys_mcp_session_id_is_unknown_on_every_method() -> None:
    async with serving(ServeBench(), team()) as served, httpx2.AsyncClient(timeout=10) as http:
        opened = await http.post(served.url, json=INIT, headers={**HEADERS, **auth(ALICE)})
        assert opened.status_code == 200
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
        await http.post(served.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                        headers={**HEADERS, **session, **auth(ALICE)})
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}

        as_bob = {**HEADERS, **session, **auth(BOB)}
        assert (await http.post(served.url, json=call, headers=as_bob)).status_code == 404  # its calls
        assert (await http.get(served.url, headers=as_bob)).status_code == 404  # its notification stream
        assert (await http.delete(served.url, headers=as_bob)).status_code == 404  # ending it

        mine = await http.post(served.url, json=call, headers={**HEADERS, **session, **auth(ALICE)})
        assert mine.status_code == 200 and '"identity":"alice"' in mine.text.replace(" ", "")  # still alice's
        assert (await http.delete(served.url, headers={**HEADERS, **session, **auth(ALICE)})).status_code == 200


async def test_the_sdk_client_of_another_identity_cannot_adopt_a_session() -> None:
    """The same through an SDK client given alice's session id: refused, never served as alice."""
    async with serving(ServeBench(), team()) as served, httpx2.AsyncClient(timeout=10) as http:
        opened = await http.post(served.url, json=INIT, headers={**HEADERS, **auth(ALICE)})
        stolen = opened.headers["mcp-session-id"]
        with pytest.raises(BaseException):  # noqa: B017 — any refusal will do, as long as bob is not served
            async with http_client(served.url, mode="legacy", headers=auth(BOB, **{"Mcp-Session-Id": stolen})) as c:
                await c.call_tool("whoami", {})
        assert (await whoami(served, BOB, "legacy"))["identity"] == "bob"


# ---- stateless sessions: Workbench-Session is namespaced by identity -------------------------------
async def test_the_same_workbench_session_value_is_two_sessions_for_two_identities(mode: str) -> None:
    async with serving(ServeBench(), team()) as served:
        alice = await whoami(served, ALICE, mode, **{"Workbench-Session": "shared"})
        bob = await whoami(served, BOB, mode, **{"Workbench-Session": "shared"})
        assert (alice["identity"], bob["identity"]) == ("alice", "bob")
        assert alice["session"] != bob["session"]
        bare_alice, bare_bob = await whoami(served, ALICE, mode), await whoami(served, BOB, mode)
        assert bare_alice["session"] != bare_bob["session"]  # no header: still one's own
        assert ALICE not in str(alice) and BOB not in str(bob)


def test_no_header_value_can_spell_another_identitys_session() -> None:
    from servers.sessions import stateless_session_id

    assert stateless_session_id("alice\0x", None) != stateless_session_id("alice", "x\0")
    assert stateless_session_id("alice", "shared") != stateless_session_id("bob", "shared")


async def test_jwt_subjects_are_identities_with_sessions_of_their_own() -> None:
    server = AuthServer()
    port = free_port()
    config = OAuthConfig(issuer=server.issuer, resource=f"http://127.0.0.1:{port}/mcp")
    async with server.running(), serving(ServeBench(), ServeSettings(transport="http", oauth=config),
                                          port=port) as served:
        carol = await whoami(served, server.mint("carol", audience=config.resource), "auto",
                             **{"Workbench-Session": "tab"})
        dave = await whoami(served, server.mint("dave", audience=config.resource), "auto",
                            **{"Workbench-Session": "tab"})
        again = await whoami(served, server.mint("carol", audience=config.resource), "auto",
                             **{"Workbench-Session": "tab"})
        assert (carol["identity"], dave["identity"]) == ("carol", "dave")
        assert carol["session"] != dave["session"] and carol["session"] == again["session"]  # a new token, same person


# ---- jobs: another identity's job id does not exist for you -------------------------------------------
async def test_another_identitys_job_cannot_be_seen_awaited_or_cancelled(mode: str) -> None:
    bench = ServeBench()
    async with serving(bench, team(background=["slow"])) as served:
        same = {"Workbench-Session": "shared"}
        async with http_client(served.url, mode=mode, headers=auth(ALICE, **same)) as alice:
            started = await alice.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 30}})
            job_id = started.structured_content["job_id"]  # type: ignore[index]
            for headers in (same, {}):
                async with http_client(served.url, mode=mode, headers=auth(BOB, **headers)) as bob:
                    for tool, args in (("jobs__status", {}), ("jobs__result", {"wait": 0}), ("jobs__cancel", {})):
                        peek = await bob.call_tool(tool, {"job_id": job_id, **args})
                        assert peek.is_error and "no job" in peek.content[0].text, (tool, peek.content)  # type: ignore[union-attr]
            status = await alice.call_tool("jobs__status", {"job_id": job_id})
            assert status.structured_content["state"] == "running"  # type: ignore[index]  # bob's cancel did nothing
            await alice.call_tool("jobs__cancel", {"job_id": job_id})


async def test_a_job_is_bound_to_its_identity_even_under_the_same_session_id() -> None:
    """Defence in depth: were two identities ever to share a session id, the job still says whose it is."""
    jobs = JobsWorkbench(ServeBench(), background=["slow"], max_running_per_session=4)
    async with jobs, anyio.create_task_group() as tg:
        jobs.manager.task_group = tg
        alice = CallContext(session_id="same", identity="alice")
        started = await jobs.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 30}}, alice)
        job_id = started.structured["job_id"]
        bob = CallContext(session_id="same", identity="bob")
        refused = await jobs.call_tool("jobs__cancel", {"job_id": job_id}, bob)
        assert refused.is_error and "no job" in refused.content[0].text  # type: ignore[union-attr]
        assert not (await jobs.call_tool("jobs__cancel", {"job_id": job_id}, alice)).is_error
        jobs.manager.task_group = None
        tg.cancel_scope.cancel()


# ---- sandboxes: one identity's files are not another's ------------------------------------------------
@pytest.mark.docker
async def test_two_identities_never_share_a_sandbox_whatever_they_send() -> None:
    box = sandbox_workbench_or_skip(pool_size=0, timeout=20)
    async with serving(box, team()) as served:
        same = {"Workbench-Session": "shared"}
        async with http_client(served.url, mode="auto", headers=auth(ALICE, **same)) as alice:
            wrote = await alice.call_tool("write_file", {"path": "secret.txt", "content": "alice's secret"})
            assert not wrote.is_error, wrote.content
            for headers in (same, {}):
                async with http_client(served.url, mode="auto", headers=auth(BOB, **headers)) as bob:
                    peek = await bob.call_tool("run_bash", {"code": "cat secret.txt 2>&1; ls"})
                    assert "alice's secret" not in peek.content[0].text  # type: ignore[union-attr]
            mine = await alice.call_tool("read_file", {"path": "secret.txt"})
            assert "alice's secret" in mine.content[0].text  # type: ignore[union-attr]


# ---- with auth off, nothing a client sends picks an identity ------------------------------------------
async def test_without_auth_a_presented_token_is_not_an_identity() -> None:
    async with serving(ServeBench()) as served:
        assert (await whoami(served, ALICE, "auto"))["identity"] == "anonymous"
        assert (await whoami(served, BOB, "auto"))["session"] == (await whoami(served, ALICE, "auto"))["session"]
