"""A hostile client against the real server (uvicorn on 127.0.0.1, real MCP clients): each
attack is refused cleanly — no traceback, no resource held — and afterwards the server still
answers a normal client."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from serve_toolkit import ServeBench
from serving import Served, http_client, serving, until_closed

from servers import ServeError, ServeSettings
from servers.listener import MAX_HEAD_BYTES
from servers.logs import JsonLines
from servers.session_cap import LegacySessionCap
from workbench.core import first_error

pytestmark = pytest.mark.anyio

TOKEN = "hostile-suite-token-5f2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOKEN_IDENTITY = "token-" + hashlib.sha256(TOKEN.encode()).hexdigest()[:16]
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def still_serves(served: Served, headers: dict[str, str] | None = None) -> None:
    for mode in ("legacy", "auto"):
        async with http_client(served.url, mode=mode, headers=headers) as client:
            assert (await client.call_tool("echo", {"text": "still here"})).content[0].text == "still here"


# ---- 1. identity on every call ---------------------------------------------------------------
async def test_every_call_carries_who_is_calling_and_never_the_token(mode: str) -> None:
    settings = ServeSettings(transport="http", auth_token=TOKEN, background=["whoami"])
    async with serving(ServeBench(), settings) as served, http_client(served.url, mode=mode, headers=AUTH) as client:
        direct = (await client.call_tool("whoami", {})).structured_content
        job = (await client.call_tool("jobs__start", {"tool": "whoami"})).structured_content
        in_background = (await client.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 5})).structured_content
    assert direct["identity"] == in_background["identity"] == TOKEN_IDENTITY  # a job runs as whoever started it
    assert TOKEN not in json.dumps([direct, in_background])

    # Without auth a presented token is unverified: every caller is one anonymous identity, so
    # inventing tokens cannot dodge per-identity caps.
    async with serving(ServeBench()) as served:
        for made_up in ("Bearer one", "Bearer two"):
            async with http_client(served.url, mode=mode, headers={"Authorization": made_up}) as client:
                assert (await client.call_tool("whoami", {})).structured_content["identity"] == "anonymous"


# ---- 2. legacy sessions: per identity, in total, idle expiry ----------------------------------
async def open_session(http: httpx2.AsyncClient, url: str) -> httpx2.Response:
    return await http.post(url, json=INIT, headers=HEADERS)


async def wait_until(condition: object, seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.02)


async def test_one_identity_cannot_hold_more_than_its_legacy_sessions() -> None:
    settings = ServeSettings(transport="http", auth_token=TOKEN, max_sessions_per_identity=3)
    async with serving(ServeBench(), settings) as served, httpx2.AsyncClient(headers=AUTH, timeout=10) as http:
        opened = [await open_session(http, served.url) for _ in range(3)]
        assert [r.status_code for r in opened] == [200, 200, 200]
        started = time.monotonic()
        refused = await open_session(http, served.url)
        assert time.monotonic() - started < 1.0  # refused at once, not queued
        assert refused.status_code == 429 and "mcp-session-id" not in refused.headers
        message = refused.json()["error"]["message"]
        assert "serve.max_sessions_per_identity = 3" in message and "DELETE" in message and "expire" in message
        with pytest.raises(BaseExceptionGroup) as sdk_refused:  # a real SDK client is refused with the same words
            async with http_client(served.url, mode="legacy", headers=AUTH) as client:
                await client.list_tools()
        assert "serve.max_sessions_per_identity" in str(first_error(sdk_refused.value))
        # A request that names no session but is not `initialize` opens nothing and holds no slot.
        stray = await http.post(served.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=HEADERS)
        assert stray.status_code >= 400 and "mcp-session-id" not in stray.headers

        # DELETE gives the slot back; the next session gets in.
        gone = await http.delete(served.url, headers={"Mcp-Session-Id": opened[0].headers["mcp-session-id"]})
        assert gone.status_code == 200
        await wait_until(lambda: served.server.legacy_cap.live[TOKEN_IDENTITY] == 2)
        assert (await open_session(http, served.url)).status_code == 200
        assert served.server.legacy_cap.live[TOKEN_IDENTITY] == 3
        for response in opened[1:]:
            await http.delete(served.url, headers={"Mcp-Session-Id": response.headers["mcp-session-id"]})
        # 2026-07-28 is sessionless, so the cap does not apply; a normal client still works.
        await still_serves(served, AUTH)


async def test_concurrent_openings_cannot_overshoot_the_cap() -> None:
    settings = ServeSettings(transport="http", max_sessions_per_identity=4)
    async with serving(ServeBench(), settings) as served, httpx2.AsyncClient(timeout=10) as http:
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await open_session(http, served.url)).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(one)
        assert sorted(statuses) == [200] * 4 + [429] * 8
        assert served.server.legacy_cap.live["anonymous"] == 4


async def test_idle_legacy_sessions_expire_and_free_their_slots() -> None:
    settings = ServeSettings(transport="http", max_sessions_per_identity=2, session_idle_timeout=0.5)
    async with serving(ServeBench(), settings) as served, httpx2.AsyncClient(timeout=10) as http:
        opened = [await open_session(http, served.url) for _ in range(2)]
        assert (await open_session(http, served.url)).status_code == 429
        await wait_until(lambda: served.server.legacy_cap.live["anonymous"] == 0)
        expired = await http.post(served.url, json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
                                  headers={**HEADERS, "Mcp-Session-Id": opened[0].headers["mcp-session-id"]})
        assert expired.status_code == 404  # the SDK forgot it too
        assert (await open_session(http, served.url)).status_code == 200
        await still_serves(served)


async def test_sessions_are_capped_in_total_as_well() -> None:
    settings = ServeSettings(transport="http", max_sessions=2, max_sessions_per_identity=10)
    async with serving(ServeBench(), settings) as served, httpx2.AsyncClient(timeout=10) as http:
        opened = [await open_session(http, served.url) for _ in range(2)]
        assert (await open_session(http, served.url)).status_code == 503
        assert served.server.legacy_cap.live["anonymous"] == 2  # the refused one holds no slot
        for response in opened:
            await http.delete(served.url, headers={"Mcp-Session-Id": response.headers["mcp-session-id"]})
        await still_serves(served)


def test_another_identity_is_not_held_back_by_a_full_one() -> None:
    # One static token gives one identity over HTTP, so two identities are shown on the cap itself.
    cap = LegacySessionCap(2, idle_timeout=60)
    alice, bob = "token-alice", "token-bob"
    scopes = [{"headers": []} for _ in range(3)]
    assert cap.reserve(scopes[0], alice) and cap.claim(scopes[0], "s1")
    assert cap.reserve(scopes[1], alice) and cap.claim(scopes[1], "s2")
    assert not cap.reserve(scopes[2], alice)  # alice is full
    assert cap.reserve(scopes[2], bob)  # bob is not
    cap.unreserve(scopes[2])  # bob's opening failed: his slot is back
    cap.release("s1")
    cap.release("s1")  # the SDK may end a session twice: counted once
    assert dict(cap.live) == {alice: 1}


# ---- 3. numbers in the arguments of the tools we define ---------------------------------------
def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("wait", ["nan", "NaN", "inf", "-inf", -1, "-0.5"])
async def test_job_wait_must_be_a_finite_non_negative_number(wait: object, caplog: pytest.LogCaptureFixture) -> None:
    settings = ServeSettings(transport="http", background=["slow"])
    async with serving(ServeBench(), settings) as served, http_client(served.url, mode="legacy") as client:
        schema = {t.name: t for t in (await client.list_tools()).tools}["jobs__result"].input_schema
        assert schema["properties"]["wait"]["minimum"] == 0
        job = (await client.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 0.1}})).structured_content
        refused = await client.call_tool("jobs__result", {"job_id": job["job_id"], "wait": wait})
        assert refused.is_error and "jobs__result: invalid arguments: wait:" in refused.content[0].text
        done = await client.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 5})
        assert not done.is_error
        await still_serves(served)
    assert errors_logged(caplog) == []


# ---- 4. request heads that never finish (slowloris) -------------------------------------------
async def closed_within(stream: anyio.abc.ByteStream, seconds: float) -> float:
    """Seconds until the server closes `stream` (reading whatever it sends); fails after `seconds`."""
    started = time.monotonic()
    with anyio.fail_after(seconds):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return time.monotonic() - started


async def test_a_request_head_that_never_finishes_is_cut_off() -> None:
    settings = ServeSettings(transport="http", header_timeout=0.5)
    async with serving(ServeBench(), settings) as served:
        port = settings.port
        # Half a request line, then nothing.
        async with await anyio.connect_tcp("127.0.0.1", port) as stalled:
            await stalled.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert await closed_within(stalled, 3.0) >= 0.3

        # Trickling one byte at a time does not reset the deadline.
        async with await anyio.connect_tcp("127.0.0.1", port) as trickle:
            started = time.monotonic()
            with anyio.move_on_after(3.0):
                try:
                    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100:
                        await trickle.send(bytes([byte]))
                        await anyio.sleep(0.05)
                except anyio.BrokenResourceError:  # the server hung up part way
                    pass
            assert time.monotonic() - started < 2.0

        # A kept-alive connection: the next request's head has the same deadline.
        async with await anyio.connect_tcp("127.0.0.1", port) as kept:
            await kept.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            with anyio.fail_after(3):
                while b'"status":"ok"' not in answer:
                    answer += await kept.receive()
            await kept.send(b"GET /heal")
            assert await closed_within(kept, 3.0) < 2.0  # uvicorn's keep-alive timer (5 s) is not what closed it

        # The deadline is the head's only: a call that outlasts it, on the same connection, completes.
        async with http_client(served.url, mode="auto") as client:
            assert (await client.call_tool("slow", {"seconds": 1.0})).content[0].text == "slept 1.0"  # type: ignore[union-attr]
        await still_serves(served)


async def test_a_request_head_too_large_is_refused_whole_or_in_pieces() -> None:
    settings = ServeSettings(transport="http", header_timeout=60)  # only the size can cut these off
    async with serving(ServeBench(), settings) as served:
        port = settings.port
        # A complete head, in one write, with one header past the limit.
        async with await anyio.connect_tcp("127.0.0.1", port) as whole:
            await whole.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n")
            assert (await until_closed(whole)).startswith(b"HTTP/1.1 431 ")

        # Many small headers add up the same way.
        async with await anyio.connect_tcp("127.0.0.1", port) as many:
            headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(MAX_HEAD_BYTES // 100))
            await many.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
            assert (await until_closed(many)).startswith(b"HTTP/1.1 431 ")

        # A head that never ends, one header value growing 1 KiB per write: the parser would buffer it.
        async with await anyio.connect_tcp("127.0.0.1", port) as growing:
            await growing.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
            sent = 0
            with anyio.fail_after(10):
                try:
                    while sent <= 4 * MAX_HEAD_BYTES:
                        await growing.send(b"a" * 1024)
                        sent += 1024
                        await anyio.sleep(0.001)
                except anyio.BrokenResourceError:  # the server hung up part way
                    pass
            assert sent <= 2 * MAX_HEAD_BYTES, sent  # cut off near the limit, not by the kernel's buffers
            # The 431 may be lost to the reset a close with unread bytes causes; the close is what counts.
            answer = await until_closed(growing)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")

        # A head just under the limit is served.
        async with await anyio.connect_tcp("127.0.0.1", port) as fits:
            await fits.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Padding: "
                            + b"a" * (MAX_HEAD_BYTES - 200) + b"\r\n\r\n")
            assert (await until_closed(fits)).startswith(b"HTTP/1.1 200 ")

        # Not HTTP at all: uvicorn's 400, not mistaken for a head too large.
        async with await anyio.connect_tcp("127.0.0.1", port) as garbage:
            await garbage.send(b"\x16\x03\x01 not http at all\r\n\r\n")
            assert (await until_closed(garbage)).startswith(b"HTTP/1.1 400 ")

        # A large body, in the same write as its head, is the body's business (the SDK bounds it), not the head's.
        async with await anyio.connect_tcp("127.0.0.1", port) as body:
            payload = json.dumps({**INIT, "params": {**INIT["params"], "padding": "p" * 4 * MAX_HEAD_BYTES}}).encode()
            await body.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                            b"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
            assert (await until_closed(body)).startswith(b"HTTP/1.1 200 ")

        await still_serves(served)


async def test_whitespace_around_a_header_value_is_not_part_of_it() -> None:
    """RFC 9110 §5.5: the optional whitespace around a field value is not the value. llhttp keeps a
    trailing one; kept, `Mcp-Name: add ` no longer matched the body's tool and the call was refused."""
    settings = ServeSettings(transport="http")
    async with serving(ServeBench(), settings):
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "add", "arguments": {"a": 40, "b": 2}, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
        async with await anyio.connect_tcp("127.0.0.1", settings.port) as raw:
            await raw.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                           b"Accept: application/json, text/event-stream \t\r\nContent-Type: application/json\r\n"
                           b"MCP-Protocol-Version: 2026-07-28  \r\nMcp-Method: tools/call\t\r\nMcp-Name:  add  \r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = await until_closed(raw)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert b'"total":42' in answer.replace(b" ", b""), answer[-400:]


def test_the_listener_serves_on_the_guarded_httptools_protocol() -> None:
    """The head tests above run on the protocol `workbench serve` uses."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from servers.listener import GuardedHttpTools, http_listener

    listener = http_listener(lambda *_: None, ServeSettings(transport="http", header_timeout=3))  # type: ignore[arg-type]
    listener.config.load()
    protocol = listener.config.http_protocol_class
    assert issubclass(protocol, GuardedHttpTools) and issubclass(protocol, HttpToolsProtocol)
    assert protocol.header_timeout == 3


# ---- 5. binding every interface keeps Host/Origin checks on ------------------------------------
def test_every_interface_without_allowed_hosts_is_refused(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::"):
        with pytest.raises(ServeError, match=r'serve.allowed_hosts = \["tools.example.com", ...\]') as refused:
            ServeSettings(transport="http", host=host, auth_token=TOKEN).check()
        assert "127.0.0.1" in str(refused.value)
    named = ServeSettings(transport="http", host="0.0.0.0", auth_token=TOKEN, allowed_hosts=["tools.example.com"])
    named.check()
    assert named.transport_security().enable_dns_rebinding_protection

    cfg = tmp_path / "w.toml"  # the CLI says so as a config error (exit 2), before anything listens
    cfg.write_text('[serve]\nauth_token_env = "WB_HOSTILE_TOKEN"\n\n[sandbox]\nenabled = false\n')
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "serve", "--config", str(cfg), "--transport", "http", "--host", "0.0.0.0"],
        check=False, capture_output=True, text=True, timeout=60, env={**os.environ, "WB_HOSTILE_TOKEN": TOKEN},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2, proc.stderr
    assert "serve.allowed_hosts" in proc.stderr and "Traceback" not in proc.stderr


# ---- 6. failed authentication is logged, the presented token never --------------------------
async def test_failed_authentication_is_logged_without_the_presented_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workbench")
    guess = "guessed-token-that-must-not-be-logged"
    settings = ServeSettings(transport="http", auth_token=TOKEN)
    async with serving(ServeBench(), settings) as served, httpx2.AsyncClient(timeout=10) as http:
        for authorization in (None, f"Basic {guess}", f"Bearer {guess}"):
            headers = {**HEADERS, "Authorization": authorization} if authorization else HEADERS
            assert (await http.post(served.url, json=INIT, headers=headers)).status_code == 401
        await still_serves(served, AUTH)
    failures = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert [r.reason for r in failures] == ["missing", "wrong scheme", "invalid"]  # type: ignore[attr-defined]
    assert all(r.path == "/mcp" and r.client.startswith("127.0.0.1:") for r in failures)  # type: ignore[attr-defined]
    lines = [JsonLines().format(r) for r in caplog.records]  # as the operator's log shipper sees them
    assert not [line for line in lines if guess in line or TOKEN in line]
    logged = [json.loads(line) for line in lines]
    assert any(e["msg"] == "authentication failed" and e.get("reason") == "invalid" for e in logged)


async def test_stateless_sessions_are_capped_in_total() -> None:
    """2026-07-28 clients name their own session (Workbench-Session): minting new values cannot
    grow the server's session table past serve.max_sessions."""
    settings = ServeSettings(transport="http", max_sessions=3)
    async with serving(ServeBench(), settings) as served:
        texts = []
        for i in range(5):
            async with http_client(served.url, mode="auto", headers={"Workbench-Session": f"minted-{i}"}) as client:
                r = await client.call_tool("echo", {"text": "hi"})
                texts.append((r.is_error, r.content[0].text))
        assert [t for t in texts if not t[0]] == [(False, "hi")] * 3
        assert all(error and "serve.max_sessions" in text for error, text in texts[3:]), texts
        assert sum(1 for s in served.server.sessions.sessions.values() if s.stateless) == 3
        async with http_client(served.url, mode="auto", headers={"Workbench-Session": "minted-0"}) as client:
            assert (await client.call_tool("echo", {"text": "known"})).content[0].text == "known"  # a known one still works


async def test_an_identity_cannot_run_more_jobs_by_minting_sessions_over_http() -> None:
    """The per-identity job bound, from real clients that each name a new Workbench-Session."""
    settings = ServeSettings(transport="http", auth_token=TOKEN, background=["slow"], max_concurrent_calls_per_client=1)
    async with serving(ServeBench(), settings) as served:
        outcomes = []
        for i in range(6):
            headers = {**AUTH, "Workbench-Session": f"minted-{i}"}
            async with http_client(served.url, mode="auto", headers=headers) as client:
                r = await client.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 30}})
                outcomes.append((r.is_error, r.content[0].text))
        assert [error for error, _ in outcomes] == [False] * 4 + [True] * 2, outcomes
        assert "this identity already runs 4 jobs" in outcomes[4][1]
