"""Raw 2026-07-28 requests for the MCP tasks wire (`io.modelcontextprotocol/tasks`): the SDK `Client`
has no tasks, so tests speak it with POSTs carrying the 2026 `_meta` envelope and routing headers."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2

from servers.tasks import TASKS_EXTENSION

VERSION = "2026-07-28"
TAKES_TASKS: dict[str, Any] = {"extensions": {TASKS_EXTENSION: {}}}
"""Client capabilities that declare the tasks extension."""


class Wire:
    """One identity's raw 2026-07-28 requests."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http, self.url = http, url

    async def send(self, method: str, params: dict[str, Any], *, capabilities: dict[str, Any] | None = None,
                   name: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the JSON-RPC response) for one request; `name` overrides the `Mcp-Name` header."""
        meta = {"io.modelcontextprotocol/protocolVersion": VERSION,
                "io.modelcontextprotocol/clientCapabilities": TAKES_TASKS if capabilities is None else capabilities}
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**params, "_meta": meta}}
        routed = name if name is not None else params.get("name", params.get("taskId"))
        sent = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                "mcp-protocol-version": VERSION, "mcp-method": method, **({"mcp-name": routed} if routed else {}),
                **(headers or {})}
        response = await self.http.post(self.url, content=json.dumps(body).encode(), headers=sent)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            frames = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
            return response.status_code, json.loads(next(f for f in reversed(frames) if f))
        return response.status_code, response.json()

    async def result(self, method: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        status, reply = await self.send(method, params, **kwargs)
        assert status == 200 and "result" in reply, reply
        return reply["result"]  # type: ignore[no-any-return]

    async def error(self, method: str, params: dict[str, Any], **kwargs: Any) -> tuple[int, dict[str, Any]]:
        status, reply = await self.send(method, params, **kwargs)
        assert "error" in reply, reply
        return status, reply["error"]

    async def create(self, tool: str, arguments: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        created = await self.result("tools/call", {"name": tool, "arguments": arguments}, **kwargs)
        assert created["resultType"] == "task", created
        return created

    async def settled(self, task_id: str) -> dict[str, Any]:
        with anyio.fail_after(10):
            while (task := await self.result("tasks/get", {"taskId": task_id}))["status"] in ("working", "input_required"):
                await anyio.sleep(0.05)
        return task
