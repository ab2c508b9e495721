"""A scripted OpenAI-compatible Chat Completions server (Starlette + uvicorn) for tests and
benchmarks: the real `openai` client talks to it over real HTTP.

Each test scripts its own model name, so one session-wide server serves every test:

    server = ModelServer().start()               # a thread; server.base_url = "http://127.0.0.1:N/v1"
    server.script("t-add", [{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]},
                            {"content": "3"}])
    OpenAIChatClient("t-add", base_url=server.base_url)

A step is a dict: `content`, `tool_calls` (`arguments` an object, or a raw string to send
malformed JSON), `status` (e.g. 429/500, with optional `retry_after`), `delay` (seconds
before answering), `usage` ({"prompt_tokens", "completion_tokens"}). `respond(model, fn)`
answers with `fn(request_body) -> step` instead. The API key "bad-key" gets 401; a model
with no script gets 404. `requests(model)` returns the request bodies received.

Built-in models: "echo" (answers with the last message's text) and "tool-then-answer"
(calls the first offered tool with placeholder arguments, then answers "done: <result>").

Reuse from other test folders:
    sys.path.insert(0, str(ROOT / "tests" / "agents")); from model_server import ModelServer
Or run it standalone: `python tests/agents/model_server.py --port 8990`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Step = dict[str, Any]


def _placeholder(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in schema.get("required", []):
        kind = schema.get("properties", {}).get(name, {}).get("type")
        out[name] = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(kind, "x")
    return out


def echo(body: dict[str, Any]) -> Step:
    last = body["messages"][-1]
    return {"content": last.get("content") or ""}


def tool_then_answer(body: dict[str, Any]) -> Step:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"content": f"done: {last['content']}"}
    tools = body.get("tools") or []
    if not tools:
        return {"content": "no tools offered"}
    fn = tools[0]["function"]
    return {"tool_calls": [{"name": fn["name"], "arguments": _placeholder(fn.get("parameters", {}))}]}


class ModelServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only then, and
        # without it every keep-alive response stalls ~40 ms on Nagle + delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self._scripts: dict[str, list[Step]] = {}
        self._repeat: dict[str, bool] = {}
        self._responders: dict[str, Callable[[dict[str, Any]], Step]] = {"echo": echo, "tool-then-answer": tool_then_answer}
        self._requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                    timeout_graceful_shutdown=1))
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------
    def script(self, model: str, steps: list[Step], *, repeat: bool = False) -> str:
        """Answer the next requests for `model` with `steps`, in order (cycling if `repeat`)."""
        with self._lock:
            self._scripts[model] = list(steps)
            self._repeat[model] = repeat
            self._requests.pop(model, None)
        return model

    def respond(self, model: str, fn: Callable[[dict[str, Any]], Step]) -> str:
        with self._lock:
            self._responders[model] = fn
            self._requests.pop(model, None)
        return model

    def requests(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests.get(model, []))

    def remaining(self, model: str) -> int:
        with self._lock:
            return len(self._scripts.get(model, []))

    def _next_step(self, model: str, body: dict[str, Any]) -> Step | None:
        with self._lock:
            self._requests[model].append(body)
            if model in self._scripts:
                steps = self._scripts[model]
                if not steps:
                    return {"status": 500, "message": f"script for {model!r} is exhausted"}
                step = steps.pop(0)
                if self._repeat[model]:
                    steps.append(step)
                return step
            responder = self._responders.get(model)
        return responder(body) if responder else None

    # -- HTTP ------------------------------------------------------------------------------
    async def _models(self, request: Request) -> Response:
        names = sorted(set(self._scripts) | set(self._responders))
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "owned_by": "test"} for n in names]})

    @staticmethod
    def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
        kind = {401: "invalid_request_error", 404: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
        return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status, headers=headers)

    @staticmethod
    async def _wait(request: Request, seconds: float) -> bool:
        """Sleep, but stop early when the client disconnects (False), as a real server would."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, deadline - time.monotonic()))
            if await request.is_disconnected():
                return False
        return True

    async def _completions(self, request: Request) -> Response:
        if request.headers.get("authorization") == "Bearer bad-key":
            return self._error(401, "Incorrect API key provided: bad-key.", "invalid_api_key")
        body = await request.json()
        model = body.get("model", "")
        step = self._next_step(model, body)
        if step is None:
            return self._error(404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found")
        if step.get("delay") and not await self._wait(request, step["delay"]):
            return Response(status_code=499)  # the client went away (cancelled); nobody reads this
        if "status" in step:
            headers = {"retry-after": str(step["retry_after"])} if "retry_after" in step else None
            return self._error(step["status"], step.get("message", f"scripted HTTP {step['status']}"), "scripted", headers)
        calls = [{"id": c.get("id", f"call_{next(self._ids)}"), "type": "function",
                  "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c.get("arguments"), str)
                               else json.dumps(c.get("arguments", {}))}} for c in step.get("tool_calls", [])]
        content = step.get("content")
        usage = step.get("usage") or {"prompt_tokens": sum(len(json.dumps(m)) for m in body["messages"]) // 4,
                                      "completion_tokens": max(1, len(content or "") // 4) + 10 * len(calls)}
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        cid, created = f"chatcmpl-{next(self._ids)}", int(time.time())
        finish = "tool_calls" if calls else "stop"
        if body.get("stream"):
            return StreamingResponse(self._stream(cid, created, model, content, calls, usage, finish),
                                     media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        return JSONResponse({"id": cid, "object": "chat.completion", "created": created, "model": model,
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage})

    async def _stream(self, cid: str, created: int, model: str, content: str | None, calls: list[dict[str, Any]],
                      usage: dict[str, int], finish: str) -> Any:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
            choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if delta is not None else []
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices, **extra}
            return f"data: {json.dumps(data)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        for i in range(0, len(content or ""), 4):  # a few characters per chunk, like a real model
            yield chunk({"content": content[i:i + 4]})
            await asyncio.sleep(0)
        for index, call in enumerate(calls):
            args = call["function"]["arguments"]
            yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, finish)
        yield chunk(None, usage=usage)  # type: ignore[arg-type]
        yield b"data: [DONE]\n\n"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted model server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with ModelServer(port=args.port) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
