"""The tool-call lane (`servers.call_lane`): ordinary 2026-07-28 `tools/call` POSTs are answered
without the SDK's server stack, byte for byte as the SDK would answer them; every other request
reaches the SDK untouched, its body replayed; and what the served chain does per call (identity,
sessions, policy, limits, audit, Studio's runs, drain, caps, cancellation) holds on the lane.

Through real HTTP: the SDK `Client` for the ordinary path, raw POSTs for the edge cases. A request
the lane answers never reaches the SDK's modern entry (`handle_modern_request`), counted here.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import mcp.server.streamable_http_manager as sdk_manager
import mcp.types as mt
import pytest
from mcp.shared.exceptions import MCPError
from serve_toolkit import ServeBench
from serving import HERE, Served, http_client, script_env, serving

from servers import ServeSettings
from servers.audit import AuditConfig
from servers.call_lane import ToolCallLane
from servers.policy import PolicyConfig, PolicyRule
from servers.rate_limit import LimitsConfig
from workbench.core import CallContext, ToolResult

pytestmark = pytest.mark.anyio

VERSION = "2026-07-28"
ALICE_TOKEN, BOB_TOKEN = "alice-" + "a" * 26, "bob-" + "b" * 28
Headers = list[tuple[str, str]]


class Bench(ServeBench):
    """ServeBench plus a tool whose source answers with a JSON-RPC error, as an upstream would."""

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        ctx: CallContext | None = None) -> ToolResult:
        if name == "needs_sampling":
            raise MCPError(-32021, "the upstream needs the sampling capability", {"required": ["sampling"]})
        if name == "routed":
            return ToolResult.from_text(f"routed to {(arguments or {}).get('region')}")
        return await super().call_tool(name, arguments, ctx)

    async def list_tools(self) -> list[mt.Tool]:
        return [*await super().list_tools(), mt.Tool(name="needs_sampling", input_schema={"type": "object"}),
                mt.Tool(name="routed", input_schema=ROUTED_SCHEMA)]


ROUTED_SCHEMA = {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}
"""A tool whose `region` argument must also travel as the `Mcp-Param-Region` header (SEP-2243)."""


@pytest.fixture
def sdk_entries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Methods of the requests that reached the SDK's modern (2026-07-28) entry."""
    seen: list[str] = []
    original = sdk_manager.handle_modern_request

    async def counting(app: Any, security: Any, json_response: bool, state: Any, scope: Any, receive: Any,
                       send: Any) -> None:
        seen.append(next((v.decode() for k, v in scope["headers"] if k == b"mcp-method"), "?"))
        await original(app, security, json_response, state, scope, receive, send)

    monkeypatch.setattr(sdk_manager, "handle_modern_request", counting)
    return seen


def lane_of(served: Served) -> ToolCallLane:
    lane = served.server.lane
    assert isinstance(lane, ToolCallLane)
    return lane


def call_body(name: str = "add", arguments: dict[str, Any] | None = None, *, request_id: Any = 1,
              meta: dict[str, Any] | None = None, capabilities: dict[str, Any] | None = None,
              **params: Any) -> dict[str, Any]:
    envelope = {"io.modelcontextprotocol/protocolVersion": VERSION,
                "io.modelcontextprotocol/clientCapabilities": capabilities or {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}, **(meta or {})}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": {"a": 2, "b": 40} if arguments is None else arguments,
                       "_meta": envelope, **params}}


def call_headers(name: str = "add", **extra: str) -> Headers:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": VERSION, "mcp-method": "tools/call", "mcp-name": name, **extra}
    return [(k, v) for k, v in headers.items() if v]


FORCE_SDK: Headers = [("x-force-sdk", "1"), ("x-force-sdk", "2")]
"""A header sent twice, which the SDK ignores and the lane never answers: the same request, the SDK's answer."""


@asynccontextmanager
async def raw(served: Served, headers: Headers = ()) -> AsyncIterator[httpx2.AsyncClient]:  # type: ignore[assignment]
    async with httpx2.AsyncClient(headers=list(headers), timeout=httpx2.Timeout(30)) as http:
        yield http


async def post(http: httpx2.AsyncClient, served: Served, body: Any, headers: Headers) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(served.url, content=content, headers=headers)


def answer(response: httpx2.Response) -> tuple[int, str, Any]:
    kind = response.headers.get("content-type", "")
    return response.status_code, kind, response.json() if kind == "application/json" else response.text


# ---- the lane is taken, and answers as the SDK does ---------------------------------------------


async def test_an_sdk_client_s_calls_take_the_lane(sdk_entries: list[str]) -> None:
    async with serving(Bench()) as served, http_client(served.url, mode=VERSION) as client:
        lane = lane_of(served)
        added = await client.call_tool("add", {"a": 2, "b": 40})
        assert not added.is_error and added.structured_content == {"total": 42}
        media = await client.call_tool("media", {})
        assert [c.type for c in media.content] == ["text", "image", "audio", "resource_link", "resource"]
        failed = await client.call_tool("fail", {"reason": "disk full"})
        assert failed.is_error and "disk full" in failed.content[0].text
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nope", {})
        assert unknown.value.code == mt.INVALID_PARAMS and "unknown tool 'nope'" in unknown.value.message
        assert "add" in unknown.value.message  # the suggestions: names this caller may see
        assert lane.answered == 4 and "tools/call" not in sdk_entries
        listed = len(sdk_entries)  # the client lists tools once by itself, to check structured results
        await client.list_tools()  # everything else is the SDK's
        assert sdk_entries == ["tools/list"] * (listed + 1) and lane.answered == 4


@pytest.mark.parametrize("call", [
    pytest.param(call_body(), id="ok"),
    pytest.param(call_body("media", {}), id="every-content-type"),
    pytest.param(call_body("fail", {"reason": "x"}), id="tool-error"),
    pytest.param(call_body("add", {"a": "x"}), id="bad-arguments"),
    pytest.param(call_body("nope", {}), id="unknown-tool"),
    pytest.param(call_body("needs_sampling", {}), id="upstream-jsonrpc-error"),
    pytest.param(call_body("routed", {"region": "eu"}), id="mcp-param-header"),
    pytest.param(call_body(request_id="req-7", meta={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}),
                 id="string-id-and-trace"),
])
async def test_the_lane_answers_exactly_what_the_sdk_answers(call: dict[str, Any], sdk_entries: list[str]) -> None:
    name = call["params"]["name"]
    async with serving(Bench()) as served, raw(served) as http:
        lane = lane_of(served)
        headers = call_headers(name) + ([("mcp-param-region", "eu")] if name == "routed" else [])
        by_lane = await post(http, served, call, headers)
        assert lane.answered == 1 and sdk_entries == []
        by_sdk = await post(http, served, call, headers + FORCE_SDK)
        assert lane.answered == 1 and sdk_entries == ["tools/call"]
    assert answer(by_lane) == answer(by_sdk)
    if name == "needs_sampling":  # an upstream's JSON-RPC error code passes through, with its HTTP status
        assert by_lane.status_code == 400 and by_lane.json()["error"]["code"] == -32021


# ---- anything not provably ordinary is the SDK's, answered as without the lane -------------------


def _body(**changes: Any) -> Callable[[], tuple[Any, Headers]]:
    return lambda: (call_body(**changes), call_headers())


def _headers(**changes: str) -> Callable[[], tuple[Any, Headers]]:
    return lambda: (call_body(), call_headers(**changes))


NOT_ORDINARY: dict[str, Callable[[], tuple[Any, Headers]]] = {
    "progress-token": _body(meta={"progressToken": "p1"}),
    "log-level": _body(meta={"io.modelcontextprotocol/logLevel": "debug"}),
    "sampling-capability": _body(capabilities={"sampling": {}}),
    "elicitation-capability": _body(capabilities={"elicitation": {"form": {}}}),
    "roots-capability": _body(capabilities={"roots": {}}),
    "request-state": _body(requestState="abc"),
    "input-responses": _body(inputResponses={"k": {"action": "cancel"}}),
    "batch": lambda: ([call_body()], call_headers()),
    "notification": lambda: ({"jsonrpc": "2.0", "method": "notifications/cancelled",
                              "params": {"requestId": 1}}, call_headers()),
    "other-method": lambda: ({**call_body(), "method": "tools/list"}, call_headers()),
    "bool-id": _body(request_id=True),
    "float-id": _body(request_id=1.5),
    "no-jsonrpc": lambda: ({k: v for k, v in call_body().items() if k != "jsonrpc"}, call_headers()),
    "not-json": lambda: (b"{not json", call_headers()),
    "no-envelope": lambda: ({**call_body(), "params": {"name": "add", "arguments": {}}}, call_headers()),
    "missing-method-header": _headers(**{"mcp-method": ""}),
    "mismatched-name-header": _headers(**{"mcp-name": "echo"}),
    "mismatched-version-header": _headers(**{"mcp-protocol-version": "2025-11-25"}),
    "unknown-version": _headers(**{"mcp-protocol-version": "2099-01-01"}),
    "no-sse-accept": _headers(accept="application/json"),
    "no-json-accept": _headers(accept="text/event-stream"),
    "wrong-content-type": _headers(**{"content-type": "text/plain"}),
    "session-id": _headers(**{"mcp-session-id": "0123456789abcdef"}),
    "duplicated-routing-header": lambda: (call_body(), call_headers() + [("mcp-method", "tools/call")]),
    "mcp-param-header-missing": lambda: (call_body("routed", {"region": "eu"}), call_headers("routed")),
    "mcp-param-header-mismatch": lambda: (call_body("routed", {"region": "eu"}),
                                          call_headers("routed", **{"mcp-param-region": "us"})),
    "bad-host": _headers(host="evil.example:80"),
    "arguments-not-an-object": _body(arguments=[1, 2]),
}


@pytest.mark.parametrize("case", NOT_ORDINARY)
async def test_a_request_that_is_not_ordinary_gets_the_sdk_s_answer(case: str, sdk_entries: list[str]) -> None:
    body, headers = NOT_ORDINARY[case]()
    async with serving(Bench()) as served, raw(served) as http:
        lane = lane_of(served)
        through_lane = await post(http, served, body, headers)
        untouched = await post(http, served, body, headers + FORCE_SDK)
        assert lane.answered == 0
    assert answer(through_lane) == answer(untouched)


async def test_an_oversized_body_gets_the_sdk_s_413() -> None:
    settings = ServeSettings(transport="http", max_request_bytes=2048)
    big = call_body("echo", {"text": "x" * 4096})
    async with serving(Bench(), settings) as served, raw(served) as http:
        lane = lane_of(served)
        response = await post(http, served, big, call_headers("echo"))
        chunked = await http.post(served.url, content=_chunks(json.dumps(big).encode()), headers=call_headers("echo"))
        assert lane.answered == 0
    assert response.status_code == 413 and chunked.status_code == 413


async def _raw_post(served: Served, head: Headers, body: bytes) -> bytes:
    """One POST written by hand (an HTTP client would normalise the head), answered up to its body."""
    parts = urlsplit(served.url)
    request = f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\nconnection: close\r\n".encode() \
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in head) + b"\r\n" + body
    async with await anyio.connect_tcp(parts.hostname or "", parts.port or 80) as stream:
        await stream.send(request)
        received = b""
        with anyio.fail_after(10):
            try:
                while True:
                    received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    return received


async def test_a_content_length_with_thousands_of_leading_zeros_is_the_sdk_s(sdk_entries: list[str]) -> None:
    """llhttp accepts `Content-Length: 000…042`; Python's int() refuses a string of more than 4300
    digits, so reading it as a number would answer 500 (and log a traceback) where the SDK answers."""
    body = json.dumps(call_body()).encode()
    length = [("content-length", "0" * 5000 + str(len(body)))]
    async with serving(Bench()) as served:
        through_lane = await _raw_post(served, call_headers() + length, body)
        untouched = await _raw_post(served, call_headers() + length + FORCE_SDK, body)
        assert lane_of(served).answered == 0 and sdk_entries == ["tools/call"] * 2
    assert through_lane.startswith(b"HTTP/1.1 200 ")
    assert through_lane.split(b"\r\n\r\n", 1)[1] == untouched.split(b"\r\n\r\n", 1)[1]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start:start + 1000]


async def test_a_body_sent_in_chunks_is_replayed_whole_to_the_sdk(sdk_entries: list[str]) -> None:
    """No declared length: the lane leaves it alone, and the SDK reads every chunk."""
    body = json.dumps(call_body("echo", {"text": "y" * 3000})).encode()
    async with serving(Bench()) as served, raw(served) as http:
        response = await http.post(served.url, content=_chunks(body), headers=call_headers("echo"))
        assert lane_of(served).answered == 0 and sdk_entries == ["tools/call"]
    assert response.json()["result"]["content"][0]["text"] == "y" * 3000


async def test_middleware_the_lane_does_not_know_sends_every_call_to_the_sdk(sdk_entries: list[str]) -> None:
    seen: list[str] = []

    async def observer(ctx: Any, call_next: Any) -> Any:
        seen.append(ctx.method)
        return await call_next(ctx)

    async with serving(Bench()) as served, http_client(served.url, mode=VERSION) as client:
        served.server.server.middleware.append(observer)
        assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"
        assert "tools/call" in seen and lane_of(served).answered == 0


# ---- what the served chain does per call holds on the lane ----------------------------------------


def as_(token: str, session: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **({"Workbench-Session": session} if session else {})}


def tokens(**extra: Any) -> ServeSettings:
    return ServeSettings(transport="http", tokens={"alice": ALICE_TOKEN, "bob": BOB_TOKEN}, **extra)


async def test_identity_and_workbench_session_bind_the_call() -> None:
    async with serving(Bench(), tokens()) as served, \
            http_client(served.url, mode=VERSION, headers=as_(ALICE_TOKEN, "same")) as alice, \
            http_client(served.url, mode=VERSION, headers=as_(BOB_TOKEN, "same")) as bob, \
            http_client(served.url, mode=VERSION, headers=as_(ALICE_TOKEN, "other")) as alice2:
        seen = [(await c.call_tool("whoami", {})).structured_content for c in (alice, bob, alice2)]
        assert lane_of(served).answered == 3
    assert [s["identity"] for s in seen] == ["alice", "bob", "alice"]
    assert len({s["session"] for s in seen}) == 3  # one header value, two identities: two sessions


@pytest.mark.parametrize("authorization", [None, "Bearer " + "x" * 32, "Basic " + ALICE_TOKEN])
async def test_authentication_comes_before_the_lane(authorization: str | None, sdk_entries: list[str]) -> None:
    """The lane sits inside `Authenticate`: a perfectly ordinary call without a valid token is refused
    there, and reaches neither the lane nor the SDK."""
    extra = [("authorization", authorization)] if authorization else []
    async with serving(Bench(), tokens()) as served, raw(served) as http:
        refused = await post(http, served, call_body("whoami", {}), call_headers("whoami") + extra)
        assert lane_of(served).answered == 0 and sdk_entries == []
    assert refused.status_code == 401 and "www-authenticate" in refused.headers


async def test_another_identity_s_legacy_session_is_not_reached() -> None:
    async with serving(Bench(), tokens()) as served, \
            http_client(served.url, mode="legacy", headers=as_(ALICE_TOKEN)) as alice, \
            raw(served, list(as_(BOB_TOKEN).items())) as bob:
        await alice.call_tool("echo", {"text": "mine"})
        assert lane_of(served).answered == 1  # alice's own call on her session: the session lane's
        session = next(iter(served.server.legacy_cap._owners))  # alice's Mcp-Session-Id
        legacy = await post(bob, served, call_body("whoami", {}), call_headers(
            "whoami", **{"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}))
        assert legacy.status_code == 404 and "alice" not in legacy.text
        # At 2026-07-28 the SDK ignores the header: bob's own sessionless call, answered by the SDK.
        modern = await post(bob, served, call_body("whoami", {}), call_headers("whoami", **{"mcp-session-id": session}))
        assert modern.json()["result"]["structuredContent"]["identity"] == "bob"
        assert lane_of(served).answered == 1


async def test_policy_refuses_and_suggests_only_what_the_caller_may_see() -> None:
    policy = PolicyConfig(rules=[PolicyRule(identities=["alice"], tools=["*"]),
                                 PolicyRule(identities=["bob"], tools=["echo", "ech"])])
    async with serving(Bench(), tokens(policy=policy)) as served, \
            http_client(served.url, mode=VERSION, headers=as_(BOB_TOKEN)) as bob:
        refused = await bob.call_tool("add", {"a": 1, "b": 2})
        assert refused.is_error and "'bob' may not call tool 'add'" in refused.content[0].text
        with pytest.raises(MCPError) as unknown:  # granted, but no such tool: suggestions from bob's own listing
            await bob.call_tool("ech", {})
        assert "echo" in unknown.value.message and "add" not in unknown.value.message.split("unknown tool")[1]
        assert lane_of(served).answered == 2


async def test_rate_limit_audit_and_studio_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = tokens(limits=LimitsConfig(calls_per_minute=2), audit=AuditConfig(),
                      runs_path=str(tmp_path / "runs.db"))
    caplog.set_level(logging.INFO, logger="workbench.audit")
    async with serving(Bench(), settings) as served, \
            http_client(served.url, mode=VERSION, headers=as_(ALICE_TOKEN)) as alice:
        results = [await alice.call_tool("echo", {"text": "hi"}) for _ in range(3)]
        assert lane_of(served).answered == 3
        store = served.server.recorder.store
        assert store is not None
        store.flush()  # whatever its writer thread has not committed yet
        runs = store.list_runs(identity="alice")
    assert [r.is_error for r in results] == [False, False, True]
    assert "may make 2 tool calls a minute" in results[2].content[0].text
    audited = [r for r in caplog.records if r.getMessage() == "tool call" and getattr(r, "audit", False)]
    assert [getattr(r, "identity", None) for r in audited] == ["alice"] * 3
    assert len(runs) == 3 and {r["name"] for r in runs} == {"echo"}


async def test_drain_and_the_per_client_concurrency_cap() -> None:
    bench = Bench()
    async with serving(bench, ServeSettings(transport="http", max_concurrent_calls_per_client=1)) as served, \
            http_client(served.url, mode=VERSION) as first, http_client(served.url, mode=VERSION) as second:
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.call_tool, "slow", {"seconds": 1.0, "tag": "busy"})
            with anyio.fail_after(5):
                while "busy" not in bench.running:
                    await anyio.sleep(0.01)
            capped = await second.call_tool("echo", {"text": "hi"})
        assert capped.is_error and "too many concurrent calls from this client (limit 1)" in capped.content[0].text
        served.server.draining = True
        refused = await second.call_tool("echo", {"text": "hi"})
        assert refused.is_error and "shutting down" in refused.content[0].text
        assert lane_of(served).answered == 3


async def test_drain_cancels_a_call_on_the_lane_with_an_error_result() -> None:
    bench = Bench()
    async with serving(bench) as served, http_client(served.url, mode=VERSION) as client:
        results: list[mt.CallToolResult] = []

        async def call() -> None:
            results.append(await client.call_tool("slow", {"seconds": 30, "tag": "long"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(5):
                while "long" not in bench.running:
                    await anyio.sleep(0.01)
            await served.server.drain(0.1)
    assert results[0].is_error and "cancelled" in results[0].content[0].text and "long" in bench.cancelled
    assert lane_of(served).answered == 1


async def test_a_client_that_hangs_up_cancels_its_call() -> None:
    bench = Bench()
    async with serving(bench) as served, raw(served) as http:
        async with anyio.create_task_group() as tg:
            tg.start_soon(post, http, served, call_body("slow", {"seconds": 30, "tag": "gone"}), call_headers("slow"))
            with anyio.fail_after(5):
                while "gone" not in bench.running:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()  # the client closes the connection mid-call
        with anyio.fail_after(5):
            while "gone" not in bench.cancelled or served.server.inflight:
                await anyio.sleep(0.02)
        assert lane_of(served).answered == 1 and "gone" not in bench.finished


async def test_a_long_silent_call_commits_to_sse_with_keepalive_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the SDK does: past its window without an answer, the response becomes an event stream
    with pings, so a proxy's idle timeout does not cut a long call."""
    import servers.lane_reply as lane_reply

    monkeypatch.setattr(lane_reply, "KEEPALIVE", 0.2)
    async with serving(Bench()) as served, raw(served) as http:
        response = await post(http, served, call_body("slow", {"seconds": 0.7}), call_headers("slow"))
        assert lane_of(served).answered == 1
    assert response.headers["content-type"] == "text/event-stream"
    assert response.text.count(": ping") >= 2
    final = json.loads(response.text.split("data: ")[-1])
    assert final["id"] == 1 and final["result"]["content"][0]["text"] == "slept 0.7"


SPAN_CHECK = """
import json, anyio, httpx2
from servers.studio.traces import install_collector
from serving import serving
from test_call_lane import Bench, call_body, call_headers, post, raw

async def main():
    collector = install_collector()
    traceparent = "00-" + "5" * 32 + "-" + "6" * 16 + "-01"
    async with serving(Bench()) as served, raw(served) as http:
        response = await post(http, served, call_body("whoami", {}, meta={"traceparent": traceparent}),
                              call_headers("whoami"))
        answered = served.server.lane.answered
    found = collector.trace("5" * 32)
    print(json.dumps({"answered": answered, "result": response.json()["result"],
                      "spans": found["spans"] if found else []}))

anyio.run(main)
"""


def test_the_request_span_is_the_sdk_s_parented_on_the_caller_s_traceparent() -> None:
    """Studio's trace waterfall: with a tracer installed, the lane opens the SDK's `tools/call` span,
    parented on `_meta.traceparent`, and the tool's trace context continues from it. In a process of
    its own: a tracer provider, once installed, stays for the life of the process."""
    done = subprocess.run([sys.executable, "-c", SPAN_CHECK], env=script_env(), capture_output=True, text=True,
                          timeout=60, cwd=HERE)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["answered"] == 1
    [span] = [s for s in seen["spans"] if s["name"] == "tools/call whoami"]
    assert span["kind"] == "server" and span["parent_id"] == "6" * 16 and span["remote_parent"]
    assert span["attributes"]["gen_ai.tool.name"] == "whoami" and span["attributes"]["mcp.protocol.version"] == VERSION
    # the tool's trace context continues the caller's trace
    assert seen["result"]["structuredContent"]["trace"]["traceparent"].split("-")[1] == "5" * 32
