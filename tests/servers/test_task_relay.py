"""Upstream MCP tasks relayed by the gateway (`servers.task_relay`, `adapters.mcp_tasks`), through real
HTTP: the conformance fixture ← gateway B (its long-running tools as `serve.background`: B serves
tasks) ← gateway A (a plain gateway whose upstream is B). A 2026-07-28 client of A that declares the
tasks extension gets B's task; `tasks/get`/`tasks/cancel` reach B only for the identity that created
the task (bob's never reach B at all); unknown ids are not forwarded; the relay table is bounded;
cancelling through A stops the fixture's own call; a client without the extension gets a plain
result. The SDK `Client` has no tasks, so the tasks wire is spoken with raw POSTs (`tasks_wire.Wire`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.context import CallNext, HandlerResult
from mcp.shared.exceptions import MCPError
from serving import Served, serving
from tasks_wire import Wire

from adapters.mcp import McpWorkbench
from servers import ServeSettings
from servers.mcp_surface import Ctx
from servers.task_relay import TaskRelay, unknown_task
from servers.tasks import TASKS_EXTENSION
from workbench import CompositeWorkbench, Mount
from workbench.shaped import uri_prefix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
from targets import serve_fixture  # noqa: E402 — the conformance fixture's launcher, one copy

pytestmark = pytest.mark.anyio

ALICE_TOKEN, BOB_TOKEN = "alice-" + "a" * 26, "bob-" + "b" * 28
GATEWAY_TOKEN = "gateway-" + "g" * 24
BACKGROUND = ["slow_compute", "failing_job", "protocol_error_job", "test_embedded_resource"]


@pytest.fixture(scope="module")
def fixture_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_fixture(tmp_path_factory.mktemp("relay")) as (url, _):
        yield url


class Chain:
    """Gateway A in front of gateway B in front of the fixture; `seen` lists the tasks requests B got."""

    def __init__(self, a: Served, b: Served) -> None:
        self.a, self.b = a, b
        self.seen: list[tuple[str, Any]] = []

    async def count(self, ctx: Ctx, call_next: CallNext) -> HandlerResult:
        if ctx.method is not None and ctx.method.startswith("tasks/"):
            self.seen.append((ctx.method, (ctx.params or {}).get("taskId")))
        return await call_next(ctx)


@asynccontextmanager
async def chain(fixture_url: str, *, prefix: str = "", max_per_identity: int | None = None) -> AsyncIterator[Chain]:
    b_settings = ServeSettings(transport="http", background=BACKGROUND, tokens={"gateway": GATEWAY_TOKEN},
                               server_name="gateway-b")
    b_sources = CompositeWorkbench({"fx": Mount(McpWorkbench.http(fixture_url, name="fx"), prefix="")})
    async with serving(b_sources, b_settings) as b:
        upstream = McpWorkbench.http(b.url, name="b", bearer_token=GATEWAY_TOKEN, relay_client_requests=True)
        a_settings = ServeSettings(transport="http", tokens={"alice": ALICE_TOKEN, "bob": BOB_TOKEN})
        async with serving(CompositeWorkbench({"b": Mount(upstream, prefix=prefix)}), a_settings) as a:
            made = Chain(a, b)
            b.server.server.middleware.append(made.count)
            if max_per_identity is not None:  # the relay A's lifespan drains abandoned tasks of, rebounded
                a.server.tasks.relay.max_per_identity = max_per_identity
            with anyio.fail_after(20):  # A learns in the background that B serves tasks
                while not a.server.tasks.advertised:
                    await anyio.sleep(0.02)
            yield made


@asynccontextmanager
async def wire(served: Served, token: str = ALICE_TOKEN) -> AsyncIterator[Wire]:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30)) as http:
        yield Wire(http, served.url)


async def settled(wire: Wire, task_id: str) -> dict[str, Any]:
    with anyio.fail_after(20):
        while (task := await wire.result("tasks/get", {"taskId": task_id}))["status"] in ("working", "input_required"):
            await anyio.sleep(0.05)
    return task


async def states(wire: Wire, tool: str = "slow_compute_states") -> dict[str, str]:
    listed = await wire.result("tools/call", {"name": tool, "arguments": {}}, capabilities={})
    return json.loads(listed["content"][0]["text"])  # type: ignore[no-any-return]


async def test_an_upstream_task_reaches_a_client_that_takes_tasks(fixture_url: str) -> None:
    async with chain(fixture_url) as c, wire(c.a) as alice:
        discovered = await alice.result("server/discover", {})
        assert TASKS_EXTENSION in discovered["capabilities"]["extensions"]  # B advertises it, so A does
        created = await alice.create("slow_compute", {"seconds": 0.2, "label": "plain"})
        assert created["status"] == "working" and set(created) >= {"taskId", "createdAt", "ttlMs", "pollIntervalMs"}
        done = await settled(alice, created["taskId"])
        assert done["status"] == "completed" and done["taskId"] == created["taskId"]
        assert done["result"]["content"][0]["text"] == "computed plain after 0.2 s"  # B's inlined result, as is
        for answer in (created, done):  # A answers, and says so (the SDK stamps only where no stamp is)
            assert answer["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-workbench"
        # Namespaced: B was asked about its own id, never the one A gave the client.
        assert {m for m, _ in c.seen} == {"tasks/get"}
        assert len({task_id for _, task_id in c.seen}) == 1 and created["taskId"] not in {t for _, t in c.seen}


async def test_a_client_without_the_extension_gets_a_plain_result(fixture_url: str) -> None:
    async with chain(fixture_url) as c, wire(c.a) as alice:
        # Plain capabilities take A's call lane; declaring sampling takes the SDK path: neither gets a task.
        for capabilities in ({}, {"sampling": {}}):
            result = await alice.result("tools/call", {"name": "slow_compute", "arguments": {"seconds": 0.1}},
                                        capabilities=capabilities)
            assert result.get("resultType", "complete") == "complete", result
            assert result["content"][0]["text"] == "computed result after 0.1 s"
        assert len(c.a.server.tasks.relay) == 0 and c.seen == []


async def test_another_identity_cannot_reach_a_relayed_task_and_the_upstream_never_hears_of_it(
        fixture_url: str) -> None:
    async with chain(fixture_url) as c, wire(c.a) as alice, wire(c.a, BOB_TOKEN) as bob:
        task_id = (await alice.create("slow_compute", {"seconds": 30, "label": "alices"}))["taskId"]
        _, unknown = await bob.error("tasks/get", {"taskId": "f" * 32})
        for method in ("tasks/get", "tasks/cancel", "tasks/update"):
            _, error = await bob.error(method, {"taskId": task_id})
            # Exactly what an id nobody created gets: no oracle.
            assert error["code"] == -32602 and error["message"] == unknown["message"].replace("f" * 32, task_id)
        assert c.seen == []  # none of bob's requests reached B
        assert (await alice.result("tasks/get", {"taskId": task_id}))["status"] == "working"
        await alice.result("tasks/cancel", {"taskId": task_id})


async def test_an_id_the_gateway_did_not_see_created_is_never_forwarded(fixture_url: str) -> None:
    async with chain(fixture_url) as c, wire(c.a) as alice, wire(c.b, GATEWAY_TOKEN) as gateway:
        # A task created at B directly (as the gateway's own identity there): A never saw it created.
        upstream_id = (await gateway.create("slow_compute", {"seconds": 0.1}))["taskId"]
        c.seen.clear()
        _, error = await alice.error("tasks/get", {"taskId": upstream_id})
        assert error["code"] == -32602
        assert c.seen == []


async def test_cancelling_through_the_relay_cancels_the_fixtures_call(fixture_url: str) -> None:
    async with chain(fixture_url, prefix="up") as c, wire(c.a) as alice:
        task_id = (await alice.create("up__slow_compute", {"seconds": 60, "label": "relay-cancel"}))["taskId"]
        with anyio.fail_after(20):
            while (await states(alice, "up__slow_compute_states")).get("relay-cancel") != "running":
                await anyio.sleep(0.05)
        await alice.result("tasks/cancel", {"taskId": task_id})
        assert (await alice.result("tasks/get", {"taskId": task_id}))["status"] == "cancelled"
        with anyio.fail_after(20):
            while (await states(alice, "up__slow_compute_states")).get("relay-cancel") != "cancelled":
                await anyio.sleep(0.05)


async def test_a_relayed_tasks_result_is_reshaped_as_a_direct_result_is(fixture_url: str) -> None:
    """With a prefix, resource URIs in results carry it; in a task's inlined result too."""
    async with chain(fixture_url, prefix="up") as c, wire(c.a) as alice:
        direct = await alice.result("tools/call", {"name": "up__test_embedded_resource", "arguments": {}},
                                    capabilities={})
        task_id = (await alice.create("up__test_embedded_resource", {}))["taskId"]
        relayed = (await settled(alice, task_id))["result"]
        assert direct["content"][0]["resource"]["uri"].startswith(uri_prefix("up"))
        assert relayed["content"] == direct["content"]


async def test_the_relay_table_is_bounded_per_identity(fixture_url: str) -> None:
    async with chain(fixture_url, max_per_identity=2) as c, wire(c.a) as alice:
        ids = [(await alice.create("slow_compute", {"seconds": 0})) ["taskId"] for _ in range(3)]
        assert len(c.a.server.tasks.relay) == 2
        _, error = await alice.error("tasks/get", {"taskId": ids[0]})  # the oldest went first
        assert error["code"] == -32602
        assert (await settled(alice, ids[2]))["status"] == "completed"


async def test_a_task_evicted_unfinished_is_cancelled_at_its_upstream(fixture_url: str) -> None:
    """Else an identity could keep any number of upstream tasks running by creating more than the table holds."""
    async with chain(fixture_url, max_per_identity=2) as c, wire(c.a) as alice:
        finished = (await alice.create("slow_compute", {"seconds": 0}))["taskId"]
        assert (await settled(alice, finished))["status"] == "completed"
        running = [(await alice.create("slow_compute", {"seconds": 60, "label": f"evicted-{i}"}))["taskId"]
                   for i in range(3)]  # the first evicts the finished task, the third evicts evicted-0
        with anyio.fail_after(20):
            while (await states(alice)).get("evicted-0") != "cancelled":
                await anyio.sleep(0.05)
        # Only the unfinished one was cancelled upstream; those still in the table run on.
        assert [m for m, _ in c.seen].count("tasks/cancel") == 1
        assert {k: v for k, v in (await states(alice)).items() if k in ("evicted-1", "evicted-2")} == \
            {"evicted-1": "running", "evicted-2": "running"}
        for task_id in running[1:]:
            await alice.result("tasks/cancel", {"taskId": task_id})


def test_the_relay_table_is_bounded_in_all_and_expires() -> None:
    from adapters.mcp_tasks import UpstreamTask

    async def send(method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    relay = TaskRelay(max_tasks=3, max_keep_seconds=60)
    made = [relay.created(UpstreamTask("b", {"taskId": f"u{i}", "status": "working"}, send), f"id{i}")["taskId"]
            for i in range(5)]
    assert len(relay) == 3 and made[0] not in relay and made[4] in relay
    short = relay.created(UpstreamTask("b", {"taskId": "t", "status": "working", "ttlMs": 1}, send), "x")["taskId"]
    anyio.run(anyio.sleep, 0.01)
    assert relay.owned(short, "x") is None and short not in relay
    assert relay.owned(made[4], "id0") is None and relay.owned(made[4], "id4") is not None



def test_a_task_the_upstream_forgot_is_unknown_and_forgotten_here() -> None:
    from adapters.mcp_tasks import UpstreamTask

    async def forgot(method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise MCPError(-32602, f"no task {params['taskId']!r} (it may have expired)")

    async def probe() -> None:
        relay = TaskRelay()
        task_id = relay.created(UpstreamTask("b", {"taskId": "upstream-secret", "status": "working"}, forgot),
                                "alice")["taskId"]
        relayed = relay.owned(task_id, "alice")
        assert relayed is not None
        with pytest.raises(MCPError) as caught:
            await relay.forward(task_id, relayed, "tasks/get", {})
        # Our unknown-id answer, naming our id, never the upstream's.
        assert caught.value.error.code == -32602 and "upstream-secret" not in caught.value.error.message
        assert caught.value.error.message == unknown_task(task_id).error.message and task_id not in relay

    anyio.run(probe)


def test_an_upstream_hanging_on_cancels_does_not_hold_up_anothers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Abandoned tasks are cancelled several at a time: one upstream that never answers its cancel keeps
    one slot for up to ABANDONED_CANCEL_SECONDS, not every other upstream's cancel behind it."""
    import servers.task_relay
    from adapters.mcp_tasks import UpstreamTask

    # The hung cancel never times out here: only running beside it can let the other cancel through.
    monkeypatch.setattr(servers.task_relay, "ABANDONED_CANCEL_SECONDS", 3600.0)

    cancelled = anyio.Event()

    async def hangs(method: str, params: dict[str, Any]) -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def answers(method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert method == "tasks/cancel" and params["taskId"] == "on-b"
        cancelled.set()
        return {}

    async def probe() -> None:
        relay = TaskRelay(max_per_identity=1)
        relay.created(UpstreamTask("a", {"taskId": "on-a", "status": "working"}, hangs), "alice")
        relay.created(UpstreamTask("b", {"taskId": "on-b", "status": "working"}, answers), "alice")  # evicts on-a
        relay.created(UpstreamTask("b", {"taskId": "kept", "status": "working"}, answers), "alice")  # evicts on-b
        async with anyio.create_task_group() as tg:
            tg.start_soon(relay.cancel_abandoned)
            with anyio.fail_after(20):  # a guard against hanging, not a measure: on-a's cancel never ends
                await cancelled.wait()
            tg.cancel_scope.cancel()

    anyio.run(probe)
