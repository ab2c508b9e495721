"""`/ui/api/tools`: the tools clients see, grouped by source with each source's health, and
`/ui/api/tools/<name>/call`: one call, streamed as Server-Sent Events, and `/ui/api/resource`:
a resource a result links to, read as a client would.

A call from Studio is a call like any MCP client's: it goes to the served workbench (the
`expose` allowlist applies), runs in the browser's own session (one sandbox per login, closed
when it idles out like any stateless client's) under the caller's identity (per-identity caps
count it), counts against the per-client concurrency limit, and is refused while the server
drains. The stream carries `progress`, `log` and `question` events (a question the call asks the
person — the policy's approval — answered at `/ui/api/questions/<id>`: `servers.studio.questions`),
then one `result` (the MCP
`CallToolResult`, exactly as a client would receive it) or one `error`. Closing the stream
cancels the call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import mcp.types as mt
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from servers.health import sources_seen
from servers.policy import FORBIDDEN
from servers.sessions import SessionLimitError
from servers.studio.events import Emit, EventStream
from servers.studio.questions import Questions
from servers.studio.traces import traced
from servers.studio.web import api_error, read_json_object, session_of
from workbench.composite import CompositeWorkbench
from workbench.core import ResourceNotFoundError, ToolNotFoundError, logger

if TYPE_CHECKING:
    from servers.studio.app import StudioContext

MAX_NAME_CHARS = 256
MAX_URI_CHARS = 4096
SERVER_SOURCE = "server"
"""Tools the server adds itself (background jobs), not any configured source."""


def tool_routes(context: StudioContext) -> list[BaseRoute]:
    server = context.server
    settings = server.settings
    questions = Questions()

    def source_of(name: str) -> str:
        workbench = server.workbench
        if isinstance(workbench, CompositeWorkbench) and (route := workbench.catalog.routes.get(name)) is not None:
            return route.source
        return SERVER_SOURCE

    async def list_tools(request: Request) -> Response:
        try:
            specs = await server.listed_tools()
        except Exception as e:  # a workbench that cannot list at all: say why, the page shows it
            logger.warning("studio: cannot list tools: %s", e)
            return api_error(503, "unavailable", f"cannot list tools: {e}")
        tools = [{**spec.model_dump(mode="json", by_alias=True, exclude_none=True), "source": source_of(spec.name)}
                 for spec in specs]
        return JSONResponse({"tools": tools, "sources": sources_seen(server, specs)})

    async def call_tool(request: Request) -> Response:
        name: str = request.path_params["name"]
        if len(name) > MAX_NAME_CHARS:
            return api_error(400, "bad_name", f"a tool name has at most {MAX_NAME_CHARS} characters")
        body = await read_json_object(request, settings.max_request_bytes)
        if isinstance(body, Response):
            return body
        arguments = body.get("arguments", {})
        if not isinstance(arguments, dict):
            return api_error(400, "bad_arguments", "'arguments' must be a JSON object of the tool's parameters")
        if server.draining:
            return api_error(503, "draining", "the server is shutting down; retry on a running server")
        session = session_of(request)
        try:
            client = server.sessions.touch(session.id, stateless=True)
        except SessionLimitError as e:
            return api_error(429, "too_many_sessions", str(e))
        limit = settings.max_concurrent_calls_per_client
        if client.active_calls >= limit:
            return api_error(429, "too_many_calls", f"{limit} calls from this browser are running already; "
                                                    "wait for one to finish or cancel it")
        client.active_calls += 1  # taken before the stream starts, so a burst of requests cannot pass the limit

        async def produce(emit: Emit) -> None:
            async def progress(done: float, total: float | None, message: str | None) -> None:
                await emit("progress", {"progress": done, "total": total, "message": message})

            async def log(params: mt.LoggingMessageNotificationParams) -> None:
                await emit("log", params.model_dump(mode="json", exclude_none=True))

            ctx = session.caller(progress=progress, log=log, elicitation=questions.asker(session.id, emit))
            started = time.perf_counter()
            outcome = "cancelled"
            try:
                with traced():  # the person at the console is about to look: its trace is recorded
                    result = await server.served.call_tool(name, arguments, ctx)
                outcome = "error" if result.is_error else "ok"
                await emit("result", {
                    "result": result.to_mcp().model_dump(mode="json", by_alias=True, exclude_none=True),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                })
            except ToolNotFoundError as e:
                outcome = "unknown tool"
                await emit("error", {"message": str(e)})
            finally:
                logger.info("tool call", extra={"session": session.id, "identity": session.identity, "tool": name,
                                                "outcome": outcome, "via": "studio",
                                                "duration_ms": round((time.perf_counter() - started) * 1000, 2)})

        def release() -> None:
            client.active_calls -= 1
            client.last_seen = time.monotonic()

        return EventStream(produce, on_close=release)

    async def read_resource(request: Request) -> Response:
        """A resource a result linked to, read as a client would (`resources/read`)."""
        uri = request.query_params.get("uri", "")
        if not uri or len(uri) > MAX_URI_CHARS:
            return api_error(400, "bad_uri", f"pass ?uri= with a resource URI of at most {MAX_URI_CHARS} characters")
        try:
            session = session_of(request)  # read as this browser's session, like its calls
            read = await server.served.read_resource(uri, session.caller())
        except ResourceNotFoundError as e:
            return api_error(404, "not_found", str(e))
        except MCPError as e:  # the policy's refusal (or an upstream's JSON-RPC error): its message
            return api_error(403 if e.error.code == FORBIDDEN else 502, "refused", e.error.message)
        except Exception as e:  # an upstream that fails to read: its message, not a traceback
            return api_error(502, "upstream", f"cannot read {uri}: {type(e).__name__}: {e}")
        return JSONResponse(read.model_dump(mode="json", by_alias=True, exclude_none=True))

    return [
        Route("/resource", read_resource, methods=["GET"]),
        Route("/tools", list_tools, methods=["GET"]),
        Route("/tools/{name}/call", call_tool, methods=["POST"]),
        *questions.routes(),
    ]
