"""CPU per tool call of the served half of the hop, in process: no sockets, no client, no upstream.

    .venv/bin/python bench/bench_lane.py [--calls 3000] [--rounds 5]

`create_app` over a `StaticWorkbench([add])`, driven through ASGI directly: each call is one
2026-07-28 `tools/call` POST as the SDK `Client` sends it (the tool-call lane's path), handed to the
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


def request(call_id: int) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"jsonrpc": "2.0", "id": call_id, "method": "tools/call", "params": {
        "name": "add", "arguments": {"a": 2, "b": 40},
        "_meta": {"io.modelcontextprotocol/protocolVersion": VERSION,
                  "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "2.3.0"}}}}).encode()
    headers = [(b"host", b"127.0.0.1:8000"), (b"accept", b"application/json, text/event-stream"),
               (b"content-type", b"application/json"), (b"mcp-protocol-version", VERSION.encode()),
               (b"mcp-method", b"tools/call"), (b"mcp-name", b"add"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/mcp", "raw_path": b"/mcp", "root_path": "",
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
             "state": {}}
    return scope, body


async def one_call(app: Any, call_id: int) -> list[Message]:
    scope, body = request(call_id)
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


async def main(calls: int, rounds: int, check: bool) -> None:
    from servers import ServeSettings, create_app
    from workbench import StaticWorkbench

    async with StaticWorkbench([add]) as workbench:
        app = create_app(workbench, ServeSettings(transport="http"))
        async with app.router.lifespan_context(app):
            answer = await one_call(app, 0)
            if check:
                print(answer)
            assert answer[0]["status"] == 200 and b'"structuredContent"' in answer[-1]["body"], answer
            assert app.state.call_lane.answered == 1, "the call did not take the lane"
            samples = []
            for _ in range(rounds):
                started = time.process_time()
                for i in range(calls):
                    await one_call(app, i + 1)
                samples.append((time.process_time() - started) / calls * 1e6)
            print(f"CPU per call: median {statistics.median(samples):.1f} µs, least {min(samples):.1f} µs, rounds "
                  + ", ".join(f"{s:.1f}" for s in samples))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    anyio.run(main, args.calls, args.rounds, args.check)
