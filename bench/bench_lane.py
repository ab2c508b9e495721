"""CPU per tool call of the served half of the hop, in process: no sockets, no client, no upstream.

    .venv/bin/python bench/bench_lane.py [--calls 3000] [--rounds 5] [--era 2026-07-28|2025-11-25]

`create_app` over a `StaticWorkbench([add])`, driven through ASGI directly: each call is one
`tools/call` POST as the SDK `Client` sends it — stateless at 2026-07-28, on a session opened first
(`initialize`, `notifications/initialized`) at 2025-11-25 — handed to the
app with a `receive` that gives the body and then waits (a client that stays connected) and a
`send` that keeps the answer. The process's CPU time per call is what the server's own code costs
(parsing, checks, the served chain, shaping and writing the answer) without the kernel's loopback
work and the HTTP parser, which no change here can remove; run it before and after a change, in
the same minute, and compare the medians. `--check` prints one answer, to see that it is right.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from starlette.types import Message

VERSION = "2026-07-28"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's packages, not the installed ones


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def request(call_id: int, era: str = VERSION, session: str | None = None,
            message: dict[str, Any] | None = None) -> tuple[dict[str, Any], bytes]:
    envelope = {"io.modelcontextprotocol/protocolVersion": era, "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "2.3.0"}}
    meta = {"_meta": envelope} if session is None else {}
    body = json.dumps(message or {"jsonrpc": "2.0", "id": call_id, "method": "tools/call",
                                  "params": {"name": "add", "arguments": {"a": 2, "b": 40}, **meta}}).encode()
    headers = [(b"host", b"127.0.0.1:8000"), (b"accept", b"application/json, text/event-stream"),
               (b"content-type", b"application/json"), (b"mcp-protocol-version", era.encode()),
               (b"content-length", str(len(body)).encode())]
    if session is not None:
        headers.append((b"mcp-session-id", session.encode()))
    elif era == VERSION:
        headers += [(b"mcp-method", b"tools/call"), (b"mcp-name", b"add")]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/mcp", "raw_path": b"/mcp", "root_path": "",
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
             "state": {}}
    return scope, body


async def open_session(app: Any, era: str) -> str:
    """A 2025-era session, opened as the SDK client opens it."""
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": era, "capabilities": {}, "clientInfo": {"name": "mcp", "version": "2.3.0"}}}
    scope, body = request(0, era, message=initialize)
    sent = await one_call(app, (scope, body))
    session = dict(sent[0]["headers"])[b"mcp-session-id"].decode()
    await one_call(app, request(0, era, session, {"jsonrpc": "2.0", "method": "notifications/initialized"}))
    return session


async def one_call(app: Any, prepared: tuple[dict[str, Any], bytes]) -> list[Message]:
    scope, body = prepared
    sent: list[Message] = []
    delivered = False
    hang_up = anyio.Event()

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    hang_up.set()
    return sent


async def main(calls: int, rounds: int, check: bool, era: str) -> None:
    from servers import ServeSettings, create_app
    from workbench import StaticWorkbench

    async with StaticWorkbench([add]) as workbench:
        app = create_app(workbench, ServeSettings(transport="http"))
        async with app.router.lifespan_context(app):
            session = await open_session(app, era) if era != VERSION else None
            answer = await one_call(app, request(0, era, session))
            if check:
                print(answer)
            assert answer[0]["status"] == 200 and b'"structuredContent"' in b"".join(
                m.get("body", b"") for m in answer[1:]), answer
            print(f"lane answered: {app.state.call_lane.answered}")
            samples = []
            for _ in range(rounds):
                started = time.process_time()
                for i in range(calls):
                    await one_call(app, request(i + 1, era, session))
                samples.append((time.process_time() - started) / calls * 1e6)
            print(f"CPU per call: median {statistics.median(samples):.1f} µs, least {min(samples):.1f} µs, rounds "
                  + ", ".join(f"{s:.1f}" for s in samples))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--era", default=VERSION, choices=[VERSION, "2025-11-25"])
    args = parser.parse_args()
    anyio.run(main, args.calls, args.rounds, args.check, args.era)
