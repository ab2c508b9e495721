"""`[serve.policy]`: per-caller tool, resource and prompt grants, as a wrapper and through the real
server: hidden from listings, refused on calls (before anything reaches the tool), never one
caller's rule applied to another, no way around it by another name or a background job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import mcp.types as mt
import pytest
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from serve_toolkit import ServeBench

from servers.audit import REFUSED
from servers.policy import PolicyConfig, PolicyRule, PolicyWorkbench, calling_as, current_caller
from workbench import CallContext, StaticWorkbench, ToolResult
from workbench.core import ToolNotFoundError
from workbench.shaped import Shaped

pytestmark = pytest.mark.anyio


class Recording(StaticWorkbench):
    """Tools that record every call reaching them: a refused call must never arrive."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(name="rec")
        self.calls: list[str] = []
        self.names = names

    async def list_tools(self) -> list[mt.Tool]:
        return [mt.Tool(name=n, input_schema={"type": "object"}) for n in self.names]

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        ctx: CallContext | None = None) -> ToolResult:
        if name not in self.names:
            raise ToolNotFoundError(name, self.names)
        self.calls.append(name)
        return ToolResult.from_text(f"ran {name}")


def policy(*rules: dict[str, Any]) -> PolicyConfig:
    return PolicyConfig(rules=[PolicyRule(**r) for r in rules])


ALICE = CallContext(identity="alice")
BOB = CallContext(identity="bob")
ADMIN_BY_SCOPE = CallContext(identity="carol", scopes=frozenset({"tools:admin"}))
OPS_BY_GROUP = CallContext(identity="dave", claims={"groups": ["staff", "ops"], "realm_access": {"roles": ["deployer"]}})


async def visible(wb: PolicyWorkbench, caller: CallContext) -> list[str]:
    """What `caller` lists: the policy reads the bound caller, as the server binds it per request."""
    with calling_as(caller):
        return [t.name for t in await wb.list_tools()]


async def test_each_rule_applies_to_its_callers_only() -> None:
    inner = Recording(["search", "deploy", "delete_repo", "admin_reset"])
    wb = PolicyWorkbench(inner, policy(
        {"identities": ["alice"], "tools": ["search", "delete_*"]},
        {"scopes": ["tools:admin"], "tools": ["admin_*"]},
        {"claims": {"groups": ["ops"], "realm_access.roles": ["deploy*"]}, "tools": ["deploy"]},
    ))
    assert await visible(wb, ALICE) == ["search", "delete_repo"]
    assert await visible(wb, ADMIN_BY_SCOPE) == ["admin_reset"]
    assert await visible(wb, OPS_BY_GROUP) == ["deploy"]
    assert await visible(wb, BOB) == []  # no rule names bob: he gets nothing
    # Every condition of a rule must hold: ops group without the role is not enough.
    half = CallContext(identity="erin", claims={"groups": ["ops"], "realm_access": {"roles": ["viewer"]}})
    assert await visible(wb, half) == []

    refused = await wb.call_tool("search", {}, BOB)
    assert refused.is_error and refused.meta == {REFUSED: "policy"}
    assert "'bob' may not call tool 'search'" in refused.text
    assert (await wb.call_tool("search", {}, ALICE)).text == "ran search"
    assert inner.calls == ["search"]  # bob's call never reached the tool


async def test_a_claim_that_is_not_a_plain_value_matches_nothing() -> None:
    wb = PolicyWorkbench(Recording(["t"]), policy({"claims": {"groups": ["*"]}, "tools": ["*"]}))
    assert await visible(wb, CallContext(claims={"groups": [{"name": "admins"}]})) == []
    assert await visible(wb, CallContext(claims={"groups": "admins"})) == ["t"]


async def test_deny_wins_and_names_what_is_missing() -> None:
    inner = Recording(["search", "deploy", "drop_db"])
    wb = PolicyWorkbench(inner, policy(
        {"identities": ["*"], "tools": ["*"], "deny_tools": ["drop_*"]},
        {"identities": ["*"], "scopes": ["db:admin"], "tools": ["drop_db"]},
    ))
    assert await visible(wb, ALICE) == ["search", "deploy"]
    denied = await wb.call_tool("drop_db", {}, ALICE)
    assert denied.is_error and "denies it" in denied.text
    # a deny applies however many rules allow: the scope rule does not undo it
    assert await visible(wb, CallContext(identity="x", scopes=frozenset({"db:admin"}))) == ["search", "deploy"]

    scoped = PolicyWorkbench(inner, policy({"scopes": ["db:admin"], "tools": ["drop_db"]}))
    missing = await scoped.call_tool("drop_db", {}, ALICE)
    assert "needs a token with one of the scopes db:admin" in missing.text
    assert inner.calls == []


async def test_a_refused_name_gets_the_same_answer_whether_it_exists_or_not() -> None:
    inner = Recording(["secret_tool"])
    wb = PolicyWorkbench(inner, policy({"identities": ["alice"], "tools": ["public_*"]}))
    real = await wb.call_tool("secret_tool", {}, ALICE)
    made_up = await wb.call_tool("secret_toolz", {}, ALICE)
    assert real.text.replace("secret_tool", "X") == made_up.text.replace("secret_toolz", "X")
    with pytest.raises(ToolNotFoundError):  # a granted name that does not exist is still unknown
        await wb.call_tool("public_nothing", {}, ALICE)


async def test_no_other_name_reaches_a_hidden_tool() -> None:
    """The policy judges the names clients see: a prefixed, renamed tool is hidden under every name."""
    inner = Recording(["delete_repo", "search"])
    shaped = Shaped(inner, prefix="gh", rename={"delete_repo": "remove"})
    wb = PolicyWorkbench(shaped, policy({"identities": ["*"], "tools": ["*"], "deny_tools": ["remove"]}))
    assert await visible(wb, ALICE) == ["gh__search"]
    for name in ("remove", "gh__delete_repo", "delete_repo", "gh__remove"):
        try:
            result = await wb.call_tool(name, {}, ALICE)
            assert result.is_error, name
        except ToolNotFoundError:
            pass
    assert inner.calls == []


async def test_resources_and_prompts_are_hidden_and_refused() -> None:
    wb = PolicyWorkbench(ServeBench(), policy(
        {"identities": ["alice"], "tools": ["*"], "resources": ["demo://*"], "prompts": ["*"]},
        {"identities": ["bob"], "tools": ["echo"], "deny_resources": ["demo://readme"]},
    ))
    for caller, resources, templates, prompts in ((ALICE, 1, 1, 1), (BOB, 0, 0, 0)):
        with calling_as(caller):
            assert len(await wb.list_resources()) == resources
            assert len(await wb.list_resource_templates()) == templates
            assert len(await wb.list_prompts()) == prompts
            if caller is BOB:
                with pytest.raises(MCPError, match="permission denied: 'bob' may not use resource 'demo://readme'"):
                    await wb.read_resource("demo://readme")
                with pytest.raises(MCPError, match="may not use prompt 'summarize'"):
                    await wb.get_prompt("summarize", {"text": "x"})
            else:
                assert (await wb.read_resource("demo://readme")).contents[0].text == "read me"  # type: ignore[union-attr]
                assert (await wb.get_prompt("summarize", {"text": "x"})).messages


async def test_completion_and_subscription_meet_the_same_grants() -> None:
    wb = PolicyWorkbench(ServeBench(), policy(
        {"identities": ["alice"], "tools": ["*"], "resources": ["demo://*"], "prompts": ["*"]},
        {"identities": ["bob"], "tools": ["echo"]},
    ))
    prompt = mt.PromptReference(type="ref/prompt", name="summarize")
    template = mt.ResourceTemplateReference(type="ref/resource", uri="demo://notes/{id}")
    argument = mt.CompletionArgument(name="text", value="x")
    for ref in (prompt, template):
        with calling_as(BOB), pytest.raises(MCPError, match="permission denied: 'bob' may not use"):
            await wb.complete(ref, argument)
        with calling_as(ALICE):
            assert isinstance(await wb.complete(ref, argument), mt.Completion)
    with calling_as(BOB), pytest.raises(MCPError, match="may not use resource 'demo://readme'"):
        await wb.subscribe_resource("demo://readme")
    with calling_as(ALICE):
        await wb.subscribe_resource("demo://readme")


async def test_without_a_policy_everything_passes() -> None:
    inner = Recording(["a", "b"])
    wb = PolicyWorkbench(inner, None)
    assert await visible(wb, BOB) == ["a", "b"]
    assert (await wb.call_tool("b", {}, BOB)).text == "ran b"


async def test_input_schemas_do_not_depend_on_who_listed_last() -> None:
    """The SDK asks for a tool's schema before it knows the caller: the answer is the same for all."""
    wb = PolicyWorkbench(Recording(["mine", "theirs"]), policy({"identities": ["alice"], "tools": ["mine"]}))
    await visible(wb, ALICE)
    after_alice = {n: wb.input_schema(n) for n in ("mine", "theirs")}
    await visible(wb, BOB)
    assert {n: wb.input_schema(n) for n in ("mine", "theirs")} == after_alice
    assert after_alice["theirs"] is not None


def test_a_rule_must_say_whom_it_applies_to() -> None:
    with pytest.raises(ValidationError, match=r'identities = \["\*"\] applies it to every caller'):
        PolicyRule(tools=["*"])
    with pytest.raises(ValidationError, match="extra"):
        PolicyRule(identities=["*"], tool=["*"])  # type: ignore[call-arg]  # a typo is an error, not a no-op


def test_the_bound_caller_wins_over_a_call_context() -> None:
    assert current_caller(ALICE) is ALICE
    with calling_as(BOB):
        assert current_caller(ALICE) is BOB


async def test_a_call_that_names_no_caller_gets_nothing() -> None:
    """Fail closed: an entry point that forgot to bind its caller lists and calls nothing."""
    inner = Recording(["search"])
    wb = PolicyWorkbench(inner, policy({"identities": ["*"], "tools": ["*"]}))
    assert await wb.list_tools() == []
    refused = await wb.call_tool("search", {})
    assert refused.is_error and "names no caller" in refused.text and inner.calls == []


# ---- end to end: a real server, real SDK clients, one named token per person ----------------

ALICE_TOKEN, BOB_TOKEN = "alice-" + "a" * 26, "bob-" + "b" * 28


def served_settings(**extra: Any) -> Any:
    from servers import ServeSettings

    return ServeSettings(
        transport="http", background=["slow", "add"],
        tokens={"alice": {"token": ALICE_TOKEN, "scopes": ["tools:admin"]}, "bob": BOB_TOKEN},
        policy=policy(
            {"identities": ["alice"], "tools": ["*"], "resources": ["*"], "prompts": ["*"]},
            {"identities": ["bob"], "tools": ["echo", "slow"], "deny_resources": ["*"]},
        ),
        **extra,
    )


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_served_policy_hides_and_refuses_per_identity(mode: str) -> None:
    from serving import http_client, serving

    bench = ServeBench()
    async with serving(bench, served_settings()) as served, \
            http_client(served.url, mode=mode, headers=as_(ALICE_TOKEN)) as alice, \
            http_client(served.url, mode=mode, headers=as_(BOB_TOKEN)) as bob:
        alice_tools = {t.name for t in (await alice.list_tools()).tools}
        bob_tools = {t.name: t for t in (await bob.list_tools()).tools}
        assert {"add", "echo", "slow", "jobs__start"} <= alice_tools
        assert set(bob_tools) == {"echo", "slow", "jobs__start", "jobs__status", "jobs__result", "jobs__cancel"}
        # bob's background runs offer only what he may call
        assert bob_tools["jobs__start"].input_schema["properties"]["tool"]["enum"] == ["slow"]

        refused = await bob.call_tool("add", {"a": 1, "b": 2})
        assert refused.is_error and "'bob' may not call tool 'add'" in refused.content[0].text
        assert refused.meta is not None and refused.meta[REFUSED] == "policy"
        # alice's listing in between does not open anything to bob
        assert (await alice.call_tool("add", {"a": 1, "b": 2})).structured_content == {"total": 3}
        again = await bob.call_tool("add", {"a": 1, "b": 2})
        assert again.is_error

        # the jobs wrapper is no way around it
        job = await bob.call_tool("jobs__start", {"tool": "add", "arguments": {"a": 1, "b": 2}})
        assert job.is_error and "cannot run in the background" in job.content[0].text
        assert "add" not in job.content[0].text.split("choose one of:")[1]

        assert [r.uri for r in (await alice.list_resources()).resources] == ["demo://readme"]
        assert (await bob.list_resources()).resources == []
        with pytest.raises(MCPError, match="may not use resource"):
            await bob.read_resource("demo://readme")
        assert (await bob.list_prompts()).prompts == []
        with pytest.raises(MCPError, match="may not use prompt"):
            await bob.get_prompt("summarize", {"text": "x"})


async def test_a_background_job_is_judged_as_its_starter() -> None:
    """A job runs later, in a task of its own: it must still be decided on the starter's grants."""
    from serving import http_client, serving

    settings = served_settings()
    settings.policy = policy({"identities": ["bob"], "tools": ["slow"]})
    async with serving(ServeBench(), settings) as served, \
            http_client(served.url, mode="legacy", headers=as_(BOB_TOKEN)) as bob:
        job = (await bob.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 0.1}})).structured_content
        done = await bob.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 10})
        assert not done.is_error and done.content[0].text == "slept 0.1"


async def test_workbench_serve_applies_policy_limits_and_audit_from_its_config(tmp_path: Path) -> None:
    """The real `workbench serve` process, configured from a TOML file, in front of a real
    upstream MCP server: each person lists and calls what the config grants them, nothing else."""
    import json
    import signal
    import subprocess
    import sys
    import time

    import httpx2
    from serving import free_port, http_client

    root = Path(__file__).resolve().parents[2]
    port, audit_log = free_port(), tmp_path / "audit.log"
    config = tmp_path / "workbench.toml"
    config.write_text(f"""
[servers.demo]
command = "${{WORKBENCH_PYTHON}}"
args = [{json.dumps(str(root / "examples" / "servers" / "demo_server.py"))}]

[serve]
transport = "http"
port = {port}

[serve.tokens]
alice = "${{ALICE_TOKEN}}"
bob = {{ token = "${{BOB_TOKEN}}", scopes = ["demo:write"] }}

[[serve.policy.rules]]
identities = ["*"]
tools = ["demo__echo", "demo__word_count"]

[[serve.policy.rules]]
scopes = ["demo:write"]
tools = ["demo__add"]

[serve.limits]
calls_per_minute = 4

[serve.audit]
file = {json.dumps(str(audit_log))}
""")
    env = {**os.environ, "WORKBENCH_PYTHON": sys.executable, "ALICE_TOKEN": ALICE_TOKEN, "BOB_TOKEN": BOB_TOKEN}
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--config", str(config)],
                                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120  # a loaded machine imports slowly
        while True:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, f"not serving: {log.read_text()[-2000:]}"
            await anyio.sleep(0.1)
        url = f"http://127.0.0.1:{port}/mcp"
        async with http_client(url, headers=as_(ALICE_TOKEN)) as alice, http_client(url, headers=as_(BOB_TOKEN)) as bob:
            assert sorted(t.name for t in (await alice.list_tools()).tools) == ["demo__echo", "demo__word_count"]
            assert sorted(t.name for t in (await bob.list_tools()).tools) == ["demo__add", "demo__echo",
                                                                              "demo__word_count"]
            denied = await alice.call_tool("demo__add", {"a": 1, "b": 2})
            assert denied.is_error and "needs a token with one of the scopes demo:write" in denied.content[0].text
            assert not (await bob.call_tool("demo__add", {"a": 1, "b": 2})).is_error
            for _ in range(3):
                assert not (await alice.call_tool("demo__echo", {"message": "hi"})).is_error
            over = await alice.call_tool("demo__echo", {"message": "hi"})
            assert over.is_error and "calls_per_minute" in over.content[0].text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    entries = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert [(e["identity"], e["tool"], e["outcome"]) for e in entries] == [
        ("alice", "demo__add", "refused:policy"), ("bob", "demo__add", "ok"),
        *[("alice", "demo__echo", "ok")] * 3, ("alice", "demo__echo", "refused:rate"),
    ]


async def test_rules_by_scope_and_claim_follow_real_oauth_tokens() -> None:
    """JWTs from a real authorization server: the policy decides on the verified scope and claims."""
    from authserver import AuthServer
    from serving import free_port, http_client, serving

    from servers import ServeSettings
    from servers.oauth_resource import OAuthConfig

    server, port = AuthServer(), free_port()
    config = OAuthConfig(issuer=server.issuer, resource=f"http://127.0.0.1:{port}/mcp")
    settings = ServeSettings(transport="http", oauth=config, policy=policy(
        {"identities": ["*"], "tools": ["echo"]},
        {"claims": {"groups": ["ops"]}, "scopes": ["tools:write"], "tools": ["add"]},
    ))
    async with server.running(), serving(ServeBench(), settings, port=port) as served:
        tokens = {
            "ops with the scope": server.mint("erin", audience=config.resource, scope="tools:call tools:write",
                                              groups=["staff", "ops"]),
            "ops without it": server.mint("frank", audience=config.resource, scope="tools:call", groups=["ops"]),
            "the scope, not ops": server.mint("grace", audience=config.resource, scope="tools:call tools:write",
                                              groups=["staff"]),
        }
        seen = {}
        for who, token in tokens.items():
            async with http_client(served.url, headers=as_(token)) as client:
                seen[who] = sorted(t.name for t in (await client.list_tools()).tools)
                added = await client.call_tool("add", {"a": 2, "b": 3})
                assert added.is_error == (who != "ops with the scope"), who
        assert seen == {"ops with the scope": ["add", "echo"], "ops without it": ["echo"],
                        "the scope, not ops": ["echo"]}


async def test_in_process_and_stdio_callers_are_judged_too(mode: str) -> None:
    """Without HTTP the caller is the process's one client, `stdio`: the binding middleware still
    runs for every request, so its listing and its calls are shaped like anyone else's."""
    from mcp import Client

    from servers import ServeSettings, WorkbenchServer

    server = WorkbenchServer(ServeBench(), ServeSettings(policy=policy({"identities": ["stdio"], "tools": ["echo"]})))
    async with server.running(), Client(server.server, mode=mode) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["echo"]
        assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"
        refused = await client.call_tool("add", {"a": 1, "b": 2})
        assert refused.is_error and "'stdio' may not call tool 'add'" in refused.content[0].text
