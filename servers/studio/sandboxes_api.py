"""`/ui/api/sandboxes`: the live sandbox sessions of the caller's identity (age, memory, running
or idle), their workspace files (browse, download, upload), reset and stop.

A browser sees only the sandboxes its identity holds — the same rule as for MCP clients, whose
sessions belong to their identity: another identity's session id gets 404, as if unknown, so
ids cannot be probed. Paths are the sandbox's to check (its supervisor confines them to the
container); sizes are bounded here by the sandbox's own file-transfer limit, before buffering.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import SandboxWorkbench
from sandbox.box import DockerSandbox
from sandbox.errors import SandboxError
from servers.studio.web import api_error, json_body_limit, read_json_object, session_of
from workbench.composite import CompositeWorkbench
from workbench.core import Workbench

if TYPE_CHECKING:
    from servers.studio.app import StudioContext

SESSION_ID = re.compile(r"^[\w.:-]{1,200}$")
STATS_TIMEOUT = 5.0
"""Seconds to wait for the engine's memory figure of one container; past it the page shows none."""
MAX_PATH_CHARS = 4096

Endpoint = Callable[[Request, str, DockerSandbox], Awaitable[Response]]


def find_sandboxes(workbench: Workbench) -> SandboxWorkbench | None:
    """The sandbox source among the served workbench's mounts, if there is one."""
    if isinstance(workbench, SandboxWorkbench):
        return workbench
    if isinstance(workbench, CompositeWorkbench):
        for mount in workbench.mounts.values():
            if (found := find_sandboxes(mount.workbench)) is not None:
                return found
    return None


def _memory(container_id: str) -> dict[str, int] | None:
    """The engine's one-shot figure for a container: bytes in use and its limit."""
    from sandbox.container import docker_client

    try:
        stats = docker_client().api.stats(container_id, stream=False, one_shot=True)
    except Exception:  # gone meanwhile, or the engine is slow: the list still shows the session
        return None
    memory = stats.get("memory_stats") or {}
    if "usage" not in memory:
        return None
    cache = (memory.get("stats") or {}).get("inactive_file", 0)  # what `docker stats` subtracts too
    return {"used": int(memory["usage"]) - int(cache), "limit": int(memory.get("limit", 0))}


def sandbox_routes(context: StudioContext) -> list[BaseRoute]:
    sandboxes = find_sandboxes(context.server.workbench)

    def owned(request: Request) -> tuple[str, DockerSandbox] | Response:
        """The session named in the path, if the caller's identity holds it."""
        if sandboxes is None:
            return api_error(404, "no_sandbox", "this server has no sandbox source ([sandbox] enabled = true)")
        session_id = request.path_params["session"]
        held = sandboxes.live_sessions().get(session_id) if SESSION_ID.match(session_id) else None
        if held is None or held[0] != session_of(request).identity:
            return api_error(404, "not_found", f"no live sandbox session {session_id!r} of yours (it may have "
                                               "idled out or been stopped)")
        return session_id, held[1]

    def with_session(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            found = owned(request)
            if isinstance(found, Response):
                return found
            try:
                return await endpoint(request, *found)
            except SandboxError as e:  # the sandbox's own words: a bad path, a file too big, a crashed box
                return api_error(400, "sandbox", str(e))

        return handle

    def path_param(request: Request, default: str | None = None) -> str | Response:
        path = request.query_params.get("path", default)
        if not path or len(path) > MAX_PATH_CHARS or "\0" in path:
            return api_error(400, "bad_path", f"pass ?path= (at most {MAX_PATH_CHARS} characters)")
        return path

    async def list_sessions(request: Request) -> Response:
        if sandboxes is None:
            return JSONResponse({"available": False, "sandboxes": []})
        identity = session_of(request).identity
        mine = {sid: box for sid, (owner, box) in sandboxes.live_sessions().items() if owner == identity}
        memory: dict[str, dict[str, int] | None] = {}

        async def measure(sid: str, container: str) -> None:
            with anyio.move_on_after(STATS_TIMEOUT):
                memory[sid] = await anyio.to_thread.run_sync(_memory, container, abandon_on_cancel=True)

        async with anyio.create_task_group() as tg:
            for sid, box in mine.items():
                if box.container_id:
                    tg.start_soon(measure, sid, box.container_id)
        now = time.monotonic()
        rows = [{
            "session": sid, "identity": identity, "container": (box.container_id or "")[:12],
            "age_seconds": round(now - box.opened, 1), "idle_seconds": round(now - box.last_used, 1),
            "state": "running" if box.busy else "idle", "memory": memory.get(sid),
            "yours": sid == session_of(request).id,
        } for sid, box in sorted(mine.items(), key=lambda item: item[1].opened)]
        return JSONResponse({"available": True, "health": sandboxes.health().state, "sandboxes": rows})

    async def files(request: Request, session_id: str, box: DockerSandbox) -> Response:
        path = path_param(request, ".")
        if isinstance(path, Response):
            return path
        entries = await box.list_files(path)
        listed = [{"path": e.path, "type": e.type, "size": e.size} for e in entries]
        return JSONResponse({"session": session_id, "path": path, "entries": sorted(
            listed, key=lambda e: (e["type"] != "dir", str(e["path"]).lower()))})

    async def download(request: Request, session_id: str, box: DockerSandbox) -> Response:
        path = path_param(request)
        if isinstance(path, Response):
            return path
        data = await box.read_file(path)
        name = path.rstrip("/").rsplit("/", 1)[-1] or "file"
        # Bytes to save, never a page of this origin: a file from the sandbox is untrusted.
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        })

    async def upload(request: Request, session_id: str, box: DockerSandbox) -> Response:
        path = path_param(request)
        if isinstance(path, Response):
            return path
        limit = box.settings.file_limit
        if (refused := json_body_limit(request, limit)) is not None:
            return refused
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return api_error(413, "too_large", f"the file is over the sandbox's {limit}-byte transfer limit")
        where = await box.write_file(path, bytes(body))
        return JSONResponse({"path": where, "size": len(body)})

    async def reset(request: Request, session_id: str, box: DockerSandbox) -> Response:
        body = await read_json_object(request, 1024)
        if isinstance(body, Response):
            return body
        clear = body.get("clear_files", False)
        if not isinstance(clear, bool):
            return api_error(400, "bad_body", "'clear_files' must be true or false")
        await box.reset(clear_files=clear)
        return JSONResponse({"session": session_id, "reset": True, "cleared_files": clear})

    async def stop(request: Request, session_id: str, box: DockerSandbox) -> Response:
        assert sandboxes is not None  # `owned` found the session in it
        await sandboxes.close_session(session_id)
        return JSONResponse({"session": session_id, "stopped": True})

    routes: list[tuple[str, Any, list[str]]] = [
        ("/sandboxes/{session}/files", with_session(files), ["GET"]),
        ("/sandboxes/{session}/file", with_session(download), ["GET"]),
        ("/sandboxes/{session}/file", with_session(upload), ["PUT"]),
        ("/sandboxes/{session}/reset", with_session(reset), ["POST"]),
        ("/sandboxes/{session}", with_session(stop), ["DELETE"]),
    ]
    return [Route("/sandboxes", list_sessions, methods=["GET"]),
            *(Route(path, endpoint, methods=methods) for path, endpoint, methods in routes)]
