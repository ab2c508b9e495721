"""MCP tasks under attack, over real HTTP: a hostile upstream behind the gateway (its `CreateTaskResult`
and `tasks/*` answers crafted per test) and hostile clients in front of it."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer
from serving import Served, free_port, serving
from starlette.types import Message, Receive, Scope, Send
from tasks_wire import Wire

import adapters.http_keepalive
import adapters.mcp_tasks
from adapters.mcp import McpWorkbench
from servers import ServeSettings
from servers.task_relay import MAX_KEEP_SECONDS
from servers.tasks import TASKS_EXTENSION
from workbench import CompositeWorkbench, Mount

pytestmark = pytest.mark.anyio

ALICE_TOKEN = "alice-" + "a" * 26
NOW = "2026-11-26T12:00:00.000Z"


def a_task(task_id: str = "up-1", status: str = "working", **extra: Any) -> dict[str, Any]:
    """A well-formed task as an upstream sends it."""
    return {"taskId": task_id, "status": status, "createdAt": NOW, "lastUpdatedAt": NOW, "ttlMs": 60_000,
            "pollIntervalMs": 500, **extra}


class Upstream:
    """A real `MCPServer` (discovery, listings) advertising the tasks extension, whose `tools/call` of
    `job` and whose `tasks/*` answer what the test puts in `created` and `answers` (a JSON-RPC result,
    or the raw bytes of one), maybe gzipped (`gzipped`: once per coding named), or never answer (`hanging`); `asked` records
    the tasks requests it got."""

    def __init__(self) -> None:
        server = MCPServer("hostile")
        server.add_tool(lambda: "ran", name="job", description="a long job")
        server._lowlevel_server.extensions[TASKS_EXTENSION] = {}
        self.inner = server.streamable_http_app()
        self.created: dict[str, Any] = {"resultType": "task", **a_task()}
        self.answers: dict[str, dict[str, Any] | bytes] = {}
        self.hanging: set[str] = set()
        self.gzipped: dict[str, int] = {}
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.hang = anyio.Event()
        self.stop: Any = None
        """The uvicorn server, once serving (`should_exit` stops it)."""
        self.port = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.inner(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        request = json.loads(body)
        method, params = request.get("method"), request.get("params") or {}
        answer: dict[str, Any] | bytes | None = None
        if method == "tools/call" and params.get("name") == "job":
            answer = self.created
        elif isinstance(method, str) and method.startswith("tasks/"):
            self.asked.append((method, params))
            answer = self.answers.get(method, {"resultType": "complete", **a_task(params["taskId"])})
        if answer is None:
            replayed = False

            async def again() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await self.inner(scope, again, send)
        if method in self.hanging:
            await self.hang.wait()
            return
        result = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        raw = b'{"jsonrpc": "2.0", "id": %s, "result": %s}' % (json.dumps(request["id"]).encode(), result)
        headers = [(b"content-type", b"application/json")]
        if layers := self.gzipped.get(method, 0):
            for _ in range(layers):
                raw = gzip.compress(raw)
            headers.append((b"content-encoding", b", ".join([b"gzip"] * layers)))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})


@asynccontextmanager
async def upstream_served(upstream: Upstream) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(upstream, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        upstream.stop, upstream.port = server, port
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            upstream.hang.set()
            server.should_exit = True


@asynccontextmanager
async def gateway(upstream: Upstream, identity: str = "alice") -> AsyncIterator[tuple[Served, Wire]]:
    """The gateway in front of `upstream`, and the raw tasks wire of `identity` (alice) to it."""
    async with upstream_served(upstream) as url:
        source = McpWorkbench.http(url, name="h", relay_client_requests=True, timeout=20)
        settings = ServeSettings(transport="http", tokens={identity: ALICE_TOKEN})
        async with serving(CompositeWorkbench({"h": Mount(source, prefix="")}), settings) as served:
            with anyio.fail_after(20):
                while not served.server.tasks.advertised:
                    await anyio.sleep(0.02)
            async with httpx2.AsyncClient(headers={"authorization": f"Bearer {ALICE_TOKEN}"},
                                          timeout=httpx2.Timeout(60)) as http:
                yield served, Wire(http, served.url)


async def created(alice: Wire) -> tuple[int, dict[str, Any]]:
    return await alice.send("tools/call", {"name": "job", "arguments": {}})


MALFORMED_TASKS: list[tuple[str, dict[str, Any]]] = [
    ("status", a_task(status="bogus")),
    ("ttlMs", a_task(ttlMs=10**400)),  # a Python int: 1e400 ms divided into seconds overflowed a float
    ("ttlMs", a_task(ttlMs=1.5)),
    ("pollIntervalMs", a_task(pollIntervalMs=-1)),
    ("pollIntervalMs", a_task(pollIntervalMs="500")),
    ("taskId", a_task(task_id=5)),  # type: ignore[arg-type]  # the point
    ("createdAt", a_task(createdAt=7)),
]


async def test_an_upstreams_malformed_task_never_reaches_the_client() -> None:
    """What the gateway relays has SEP-2663's shape: a CreateTaskResult or a `tasks/get` answer with a
    status the spec does not have, a duration that is no positive integer, a non-string id is refused,
    naming the field, and nothing is kept for it; `tasks/cancel` answers the spec's empty ack."""
    up = Upstream()
    async with gateway(up) as (served, alice):
        for field, task in MALFORMED_TASKS:
            up.created = {"resultType": "task", **task}
            status, reply = await created(alice)
            problem = json.dumps(reply)
            assert status == 200 and "malformed result" in problem and field in problem, (field, reply)
            assert "Traceback" not in problem and "errors.pydantic.dev" not in problem
        assert len(served.server.tasks.relay) == 0

        up.created = {"resultType": "task", **a_task()}
        task_id = (await alice.create("job", {}))["taskId"]
        malformed = [a_task(status="weird"), a_task(pollIntervalMs=0), a_task(ttlMs="soon"),
                     {**a_task(status="completed"), "result": {"content": 5}}]
        for answer in malformed:
            up.answers["tasks/get"] = {"resultType": "complete", **answer}
            _, error = await alice.error("tasks/get", {"taskId": task_id})
            assert error["code"] == -32603 and "'h' answered tasks/get with a malformed result" in error["message"]
            assert "cannot be reached" not in error["message"]  # it answered: retrying will not help
        up.answers["tasks/cancel"] = {"resultType": "complete", **a_task(status="completed"), "junk": "x" * 100}
        ack = await alice.result("tasks/cancel", {"taskId": task_id})
        assert set(ack) <= {"resultType", "_meta"}  # SEP-2663: the ack carries no task envelope


async def test_the_relayed_ttl_is_how_long_the_gateway_keeps_the_task() -> None:
    """SEP-2663: a task stays reachable for its `ttlMs`. The gateway forgets a relayed task after at most
    MAX_KEEP_SECONDS unasked, so it must not pass on an upstream's longer (or unlimited) ttl."""
    up = Upstream()
    kept = round(MAX_KEEP_SECONDS * 1000)
    async with gateway(up) as (_, alice):
        for upstream_ttl, told in ((86_400_000, kept), (None, kept), (60_000, 60_000)):
            up.created = {"resultType": "task", **a_task(ttlMs=upstream_ttl)}
            task = await alice.create("job", {})
            up.answers["tasks/get"] = {"resultType": "complete", **a_task(ttlMs=upstream_ttl)}
            polled = await alice.result("tasks/get", {"taskId": task["taskId"]})
            assert task["ttlMs"] == polled["ttlMs"] == told, upstream_ttl


async def test_the_relay_keeps_the_upstream_id_not_the_upstreams_whole_answer() -> None:
    """Up to MAX_TASKS relayed tasks are kept for up to an hour each: an upstream padding its
    CreateTaskResult (a megabyte of statusMessage and of fields of its own) must not have that kept
    with each of them."""
    up = Upstream()
    up.created = {"resultType": "task", **a_task(statusMessage="m" * 1_000_000, padding="p" * 1_000_000)}
    async with gateway(up) as (served, alice):
        task = await alice.create("job", {})
        assert len(task["statusMessage"]) == 1_000_000  # relayed once, as sent
        relayed = served.server.tasks.relay.owned(task["taskId"], "alice")
        assert relayed is not None and len(json.dumps(relayed.task.created)) < 200
        assert (await alice.result("tasks/get", {"taskId": task["taskId"]}))["status"] == "working"
        assert up.asked[-1][1]["taskId"] == "up-1"  # still asked about by its own id


async def test_a_failing_hop_is_named_as_the_upstreams_never_relayed_as_the_clients_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own errors for the hop (no answer in time, an unreadable answer, the connection closed)
    are not the upstream's JSON-RPC errors: relayed as they are, a -32700 told the client its own
    request did not parse and a bare 'Connection closed' named no server. Each is an error naming the
    task's server, within the tasks requests' timeout."""
    monkeypatch.setattr(adapters.mcp_tasks, "TASK_REQUEST_TIMEOUT", 0.5)
    up = Upstream()
    async with gateway(up) as (_, alice):
        task_id = (await alice.create("job", {}))["taskId"]
        nested = json.dumps({"resultType": "complete", **a_task(), "_meta": {"deep": 0}})
        up.answers["tasks/get"] = nested.replace('{"deep": 0}', '{"deep": ' + "[" * 5000 + "]" * 5000 + "}").encode()
        deep = await alice.error("tasks/get", {"taskId": task_id})
        up.answers.clear()
        up.hanging.add("tasks/get")
        with anyio.fail_after(20):
            slow = await alice.error("tasks/get", {"taskId": task_id})
        up.hang.set()
        up.stop.should_exit = True
        with anyio.fail_after(20):
            while True:  # until the upstream's port is closed
                try:
                    await (await anyio.connect_tcp("127.0.0.1", up.port)).aclose()
                except OSError:
                    break
                await anyio.sleep(0.05)
            gone = await alice.error("tasks/get", {"taskId": task_id})
        for status, error in (deep, slow, gone):
            assert status == 200 and error["code"] == -32603, error
            assert error["message"].startswith("tasks/get: the task's MCP server 'h' "), error
        assert "cannot be relayed" in deep[1]["message"] and "did not answer within" in slow[1]["message"]
        assert "cannot be reached" in gone[1]["message"]


async def test_an_identity_beyond_ascii_reaches_its_relayed_tasks() -> None:
    """Identities are token names or subjects, any Unicode: comparing them must not raise (it did, with
    `secrets.compare_digest`, which refuses non-ASCII str: every tasks request for such a caller's task
    was an internal error, and for anyone else asking about it one unlike an unknown id's)."""
    up = Upstream()
    async with gateway(up, identity="josé") as (served, jose):
        task_id = (await jose.create("job", {}))["taskId"]
        assert (await jose.result("tasks/get", {"taskId": task_id}))["status"] == "working"
        assert served.server.tasks.relay.owned(task_id, "alice") is None


async def test_an_oversized_answer_is_refused_before_it_is_all_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's client reads a JSON answer whole, of any size: an upstream answering `tasks/get` with a
    result of hundreds of megabytes had the gateway hold all of it (and relay it). Past the bound the
    lane holds direct calls to (patched small here), the read stops and the client is told why."""
    monkeypatch.setattr(adapters.http_keepalive, "MAX_RESPONSE_BYTES", 256 * 1024)
    up = Upstream()
    async with gateway(up) as (_, alice):
        task_id = (await alice.create("job", {}))["taskId"]
        text = [{"type": "text", "text": "x" * 512 * 1024}]
        up.answers["tasks/get"] = {"resultType": "complete", **a_task(status="completed"), "result": {"content": text}}
        for layers in (0, 1):  # gzipped: a kilobyte on the wire, the bound counts what it becomes
            up.gzipped["tasks/get"] = layers
            status, error = await alice.error("tasks/get", {"taskId": task_id})
            assert (status, error["code"]) == (200, -32603)
            assert error["message"].startswith("tasks/get: the task's MCP server 'h' ") and "262144 bytes" in error["message"]
        # Gzipped twice: a stack of codings httpx2 would undo after the bound, so it is refused unread.
        up.gzipped["tasks/get"] = 2
        status, error = await alice.error("tasks/get", {"taskId": task_id})
        assert (status, error["code"]) == (200, -32603) and "'gzip, gzip'" in error["message"], error
        up.gzipped["tasks/get"] = 0
        up.answers["tasks/get"] = {"resultType": "complete", **a_task(status="completed"),
                                   "result": {"content": [{"type": "text", "text": "small"}]}}
        assert (await alice.result("tasks/get", {"taskId": task_id}))["result"]["content"][0]["text"] == "small"
