"""The session lane (`servers.session_lane`): ordinary 2025-era `tools/call` POSTs on a live session
are answered without the SDK's session stack, with the SDK's answer; the session's idle expiry,
owner and cancellation hold for them; everything else reaches the SDK untouched.

Through real HTTP: the SDK `Client` (legacy mode) for the ordinary path, raw POSTs on a session
opened by hand for the comparisons and the edge cases. A request sent with one header twice is
never the lane's (the SDK ignores the copy): the same request, the SDK's answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp.types as mt
import pytest
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from serving import Served, http_client, serving
from test_call_lane import Bench, lane_of

from servers import ServeSettings
from servers.session_lane import SessionLane

pytestmark = pytest.mark.anyio

LEGACY = "2025-11-25"
FORCE_SDK = [("x-force-sdk", "1"), ("x-force-sdk", "2")]


class Session:
    """A 2025-era session opened by hand over raw HTTP."""

    def __init__(self, http: httpx2.AsyncClient, served: Served, session_id: str) -> None:
        self.http = http
        self.served = served
        self.id = session_id

    def headers(self, **extra: str) -> list[tuple[str, str]]:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": LEGACY, "mcp-session-id": self.id, **extra}
        return [(k, v) for k, v in headers.items() if v]

    async def post(self, body: Any, headers: list[tuple[str, str]] | None = None) -> httpx2.Response:
        return await self.http.post(self.served.url, content=json.dumps(body).encode(),
                                    headers=headers if headers is not None else self.headers())


def call(name: str, arguments: dict[str, Any], request_id: Any = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, **params}}


def cancel(request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}


@asynccontextmanager
async def session(served: Served, capabilities: dict[str, Any] | None = None, token: str | None = None
                  ) -> AsyncIterator[Session]:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30), headers=auth) as http:
        opening = Session(http, served, "")
        initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": capabilities or {}, "clientInfo": {"name": "raw", "version": "1"}}}
        response = await opening.post(initialize, opening.headers(**{"mcp-session-id": ""}))
        assert response.status_code == 200, response.text
        opened = Session(http, served, response.headers["mcp-session-id"])
        assert (await opened.post({"jsonrpc": "2.0", "method": "notifications/initialized"})).status_code == 202
        yield opened


ALICE_TOKEN, BOB_TOKEN = "alice-" + "a" * 26, "bob-" + "b" * 28
TWO_PEOPLE = {"alice": ALICE_TOKEN, "bob": BOB_TOKEN}


@asynccontextmanager
async def alice_and_bob(served: Served) -> AsyncIterator[tuple[Session, Session]]:
    """Alice's session, and Bob's client naming it (a server with `TWO_PEOPLE` as its tokens)."""
    async with session(served, token=ALICE_TOKEN) as alice, \
            httpx2.AsyncClient(timeout=httpx2.Timeout(30), headers={"Authorization": f"Bearer {BOB_TOKEN}"}) as b:
        yield alice, Session(b, served, alice.id)


def events(response: httpx2.Response) -> list[Any]:
    """The JSON-RPC messages of an SSE response, in order."""
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


def seen(response: httpx2.Response) -> tuple[int, str, str | None, list[Any]]:
    return (response.status_code, response.headers.get("content-type", ""), response.headers.get("mcp-session-id"),
            events(response))


# ---- taken, and answered as the SDK answers -------------------------------------------------------


async def test_a_legacy_sdk_client_s_calls_take_the_session_lane() -> None:
    async with serving(Bench()) as served, http_client(served.url, mode="legacy") as client:
        lane = lane_of(served)
        added = await client.call_tool("add", {"a": 2, "b": 40})
        assert client.protocol_version == LEGACY and added.structured_content == {"total": 42}
        media = await client.call_tool("media", {})
        assert [c.type for c in media.content] == ["text", "image", "audio", "resource_link", "resource"]
        failed = await client.call_tool("fail", {"reason": "disk full"})
        assert failed.is_error and "disk full" in failed.content[0].text
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nope", {})
        assert unknown.value.code == mt.INVALID_PARAMS and "add" in unknown.value.message
        assert lane.answered == 4


@pytest.mark.parametrize("body", [
    pytest.param(call("add", {"a": 2, "b": 40}), id="ok"),
    pytest.param(call("media", {}), id="every-content-type"),
    pytest.param(call("fail", {"reason": "x"}), id="tool-error"),
    pytest.param(call("add", {"a": "x"}), id="bad-arguments"),
    pytest.param(call("nope", {}), id="unknown-tool"),
    pytest.param(call("needs_sampling", {}), id="upstream-jsonrpc-error"),
    pytest.param(call("shout", {"text": "hi"}), id="a-log-before-the-answer"),
    pytest.param(call("whoami", {}, request_id="req-7",
                      _meta={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}), id="string-id-and-trace"),
])
async def test_the_session_lane_answers_what_the_sdk_answers(body: dict[str, Any]) -> None:
    async with serving(Bench()) as served, session(served) as s:
        by_lane = await s.post(body)
        assert lane_of(served).answered == 1
        by_sdk = await s.post(body, s.headers() + FORCE_SDK)
        assert lane_of(served).answered == 1
    assert seen(by_lane) == seen(by_sdk)
    assert by_lane.headers["content-type"] == "text/event-stream" and by_lane.headers["mcp-session-id"] == s.id
    if body["params"]["name"] == "shout":
        assert [e.get("method") for e in events(by_lane)] == ["notifications/message", None]


OTHER_BODIES: dict[str, Any] = {
    "batch": [call("add", {"a": 1, "b": 2})],
    "other-method": {**call("add", {}), "method": "tools/list"},
    "bool-id": call("add", {"a": 1, "b": 2}, request_id=True),
    "arguments-not-an-object": call("add", [1, 2]),  # type: ignore[arg-type]
    "a-task": call("add", {"a": 1, "b": 2}, task={"ttl": 1000}),
}


@pytest.mark.parametrize("case", ["progress-token", "version-header-differs", "no-version-header", "no-sse-accept",
                                  "wrong-content-type", "a-client-that-can-be-asked", "unknown-session",
                                  *OTHER_BODIES])
async def test_a_session_request_that_is_not_ordinary_gets_the_sdk_s_answer(case: str) -> None:
    capabilities = {"sampling": {}} if case == "a-client-that-can-be-asked" else None
    async with serving(Bench()) as served, session(served, capabilities) as s:
        body = OTHER_BODIES.get(case) or call(
            "add", {"a": 1, "b": 2}, _meta={"progressToken": "p"} if case == "progress-token" else {})
        headers = s.headers(**{
            "version-header-differs": {"mcp-protocol-version": "2025-06-18"},
            "no-version-header": {"mcp-protocol-version": ""},
            "no-sse-accept": {"accept": "application/json"},
            "wrong-content-type": {"content-type": "text/plain"},
            "unknown-session": {"mcp-session-id": "f" * 32},
        }.get(case, {}))
        through_lane = await s.post(body, headers)
        untouched = await s.post(body, headers + FORCE_SDK)
        assert lane_of(served).answered == 0
    assert seen(through_lane) == seen(untouched)


async def test_the_sdk_still_holds_sessions_where_the_lane_reads_them() -> None:
    """The one private name of the SDK the session lane reads. If this fails, the SDK changed how its
    session manager keeps sessions: `SessionLane.transport` must follow it, or the lane must go."""
    async with serving(Bench()) as served, session(served) as s:
        sessions = lane_of(served).sessions
        assert isinstance(sessions, SessionLane) and isinstance(sessions.manager, StreamableHTTPSessionManager)
        held = sessions.manager._server_instances
        assert isinstance(held, dict) and isinstance(held[s.id], StreamableHTTPServerTransport)
        assert sessions.transport(s.id) is held[s.id] and held[s.id].idle_scope is not None


# ---- what a session adds: idle expiry, owner, cancellation --------------------------------------


async def test_a_long_call_on_the_lane_keeps_its_session_and_the_idle_countdown_restarts_after() -> None:
    """The SDK expires a session with no request of its own in flight: without the lane counting its
    calls, a call longer than the idle timeout would lose its session mid-call."""
    async with serving(Bench(), ServeSettings(transport="http", session_idle_timeout=0.6)) as served, \
            session(served) as s:
        slow = await s.post(call("slow", {"seconds": 1.2}))
        assert events(slow)[-1]["result"]["content"][0]["text"] == "slept 1.2"
        again = await s.post(call("add", {"a": 1, "b": 1}, request_id=2))
        assert again.status_code == 200 and events(again)[-1]["result"]["structuredContent"] == {"total": 2}
        assert lane_of(served).answered == 2
        await anyio.sleep(1.5)  # idle past the timeout: the session is gone
        expired = await s.post(call("add", {"a": 1, "b": 1}, request_id=3))
        assert expired.status_code == 404


async def test_notifications_cancelled_cancels_a_call_on_the_lane() -> None:
    bench = Bench()
    async with serving(bench) as served, session(served) as s:
        answers: list[httpx2.Response] = []

        async def slow_call() -> None:
            answers.append(await s.post(call("slow", {"seconds": 30, "tag": "stop-me"}, request_id=41)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_call)
            with anyio.fail_after(5):
                while "stop-me" not in bench.running:
                    await anyio.sleep(0.01)
            assert (await s.post(cancel(41))).status_code == 202
        assert "stop-me" in bench.cancelled and "stop-me" not in bench.finished
        assert events(answers[0]) == [{"jsonrpc": "2.0", "id": 41,
                                       "error": {"code": -32800, "message": "Request cancelled"}}]
        assert lane_of(served).answered == 1 and served.server.inflight == 0


async def test_another_principal_s_cancel_does_not_reach_the_call() -> None:
    bench = Bench()
    settings = ServeSettings(transport="http", tokens=TWO_PEOPLE)
    async with serving(bench, settings) as served, alice_and_bob(served) as (alice, bob):
        async def slow_call() -> None:
            await alice.post(call("slow", {"seconds": 0.8, "tag": "alice's"}, request_id=5))

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_call)
            with anyio.fail_after(5):
                while "alice's" not in bench.running:
                    await anyio.sleep(0.01)
            assert (await bob.post(cancel(5))).status_code == 404
        assert "alice's" in bench.finished and lane_of(served).answered == 1


async def test_a_client_that_hangs_up_cancels_its_session_call() -> None:
    bench = Bench()
    async with serving(bench) as served, session(served) as s:
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.post, call("slow", {"seconds": 30, "tag": "gone"}))
            with anyio.fail_after(5):
                while "gone" not in bench.running:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()  # the client closes the connection mid-call
        with anyio.fail_after(5):
            while "gone" not in bench.cancelled or served.server.inflight:
                await anyio.sleep(0.02)
        assert lane_of(served).answered == 1 and "gone" not in bench.finished


async def test_another_principal_naming_a_session_does_not_keep_it_alive() -> None:
    """Only the owner's requests reach the SDK's transport and hold its idle countdown; counting another
    principal's (404) requests would let anyone keep someone else's session from expiring."""
    settings = ServeSettings(transport="http", session_idle_timeout=0.6, tokens=TWO_PEOPLE)
    async with serving(Bench(), settings) as served, alice_and_bob(served) as (alice, bob):
        assert (await alice.post(call("add", {"a": 1, "b": 1}))).status_code == 200
        for _ in range(8):  # bob names alice's session every 0.2 s, for twice her idle timeout
            assert (await bob.post(call("add", {"a": 1, "b": 1}))).status_code == 404
            await anyio.sleep(0.2)
        assert (await alice.post(call("add", {"a": 1, "b": 1}, request_id=2))).status_code == 404


async def test_nothing_is_written_for_a_call_once_its_answer_is_on_its_way() -> None:
    """A log from work the call started (a background job) after the call returned is dropped, never
    written after the response's last byte."""
    from servers.lane_reply import CallWatch

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        await anyio.sleep_forever()

    watch = CallWatch(receive, send, anyio.CancelScope(), [(b"content-type", b"text/event-stream")])
    await watch.emit(b"data: early\r\n\r\n")
    assert await watch.stop() is True
    await watch.emit(b"data: late\r\n\r\n")
    assert [m.get("body") for m in sent] == [None, b"data: early\r\n\r\n"]


async def test_a_long_silent_session_call_keeps_its_stream_alive_with_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the SDK's event stream does: a call silent past the keepalive window gets pings on its stream
    (committed early), then its answer."""
    import servers.lane_reply as lane_reply

    monkeypatch.setattr(lane_reply, "KEEPALIVE", 0.2)
    async with serving(Bench()) as served, session(served) as s:
        response = await s.post(call("slow", {"seconds": 0.7}))
        assert lane_of(served).answered == 1
    assert response.headers["content-type"] == "text/event-stream" and response.text.count(": ping") >= 2
    assert events(response) == [{"jsonrpc": "2.0", "id": 1, "result": events(response)[-1]["result"]}]
    assert events(response)[-1]["result"]["content"][0]["text"] == "slept 0.7"
