"""`/ui/api/runs`, `/ui/api/traces` and `/ui/api/playground`: the Runs, Traces and Playground pages' API.

    GET  runs?kind=&q=&before=&limit=        newest first (tool calls served, agent and team runs)
    GET  runs/<id>                           one run with its events, in order
    GET  runs/<id>/export                    the same plus its trace's spans, as a JSON download
    GET  traces?limit=                       the newest traces kept in memory, and which are recorded
    GET  traces/<trace_id>                   one trace's spans (the waterfall) and the runs in it
    GET  playground/agents                   the agents and teams to pick from
    POST playground/run                      {agent | conversation, task} -> Server-Sent Events
    POST playground/conversations/<id>/stop  stop its running run
    GET  playground/conversations/<id>/state its state as a JSON download
    POST playground/conversations            {saved state} -> a new conversation continuing it

Every id in a path is checked against its shape before it reaches a query; bodies are bounded.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from servers.policy import current_caller
from servers.sessions import SessionLimitError
from servers.studio.events import Emit, EventStream
from servers.studio.runs import RunStore
from servers.studio.traces import SpanCollector, install_collector, sampling_note, sampling_policy
from servers.studio.web import api_error, read_json_object, session_of
from workbench.naming import safe_tool_name

if TYPE_CHECKING:
    from servers.studio.app import StudioContext
    from servers.studio.playground import Playground

RUN_ID = re.compile(r"^[0-9a-f]{16}(?:[0-9a-f]{8})?$")
"""A run's id: 24 hex digits (16 for runs recorded before ids began with the time)."""
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_RUN_BODY = 256 * 1024
MAX_STATE_BODY = 4 * 1024 * 1024
KINDS = ("tool", "agent", "team")


def _number(value: str | None, default: float | None) -> float | None:
    try:
        return default if value is None else float(value)
    except ValueError:
        return default


def routes(context: StudioContext, *, store: RunStore | None = None, collector: SpanCollector | None = None,
           playground: Playground | None = None) -> list[BaseRoute]:
    """The routes, relative to `/ui/api`. By default the store is the server's recorder's, the spans
    the process's collector (installed now, sampling at the server's `trace_sample`), the playground
    made of `context.runners`."""
    # Here, not at the top: the playground loads the agents package (and the model clients' SDKs),
    # which `import servers` must not pay for when no Studio is mounted.
    from servers.studio.playground import Playground, PlaygroundError

    server = context.server
    store = store if store is not None else server.recorder.store
    collector = collector or install_collector(server.settings.trace_sample)
    playground = playground or Playground(context.runners, store)

    def no_store() -> Response:
        return api_error(503, "no_store", "runs are not recorded on this server (serve.runs_path is \"\")")

    async def list_runs(request: Request) -> Response:
        if store is None:
            return no_store()
        q = request.query_params
        kind = q.get("kind") or None
        if kind is not None and kind not in KINDS:
            return api_error(400, "bad_kind", f"kind is one of {', '.join(KINDS)}")
        limit = int(_number(q.get("limit"), 100) or 100)
        runs = store.list_runs(identity=session_of(request).identity, kind=kind, query=(q.get("q") or "")[:200] or None,
                               before=_number(q.get("before"), None), limit=limit)
        return JSONResponse({"runs": runs})

    def find_run(request: Request) -> dict[str, Any] | Response:
        if store is None:
            return no_store()
        run_id = request.path_params["run_id"]
        run = store.get_run(run_id, identity=session_of(request).identity) if RUN_ID.match(run_id) else None
        if run is None:
            return api_error(404, "not_found", "no such run (it may have been pruned: runs are kept within "
                                               "their size and age limits)")
        if run["trace_id"] and not run["traced"]:
            run["trace_note"] = sampling_note()  # the page says why there is no waterfall, not an empty one
        return run

    async def get_run(request: Request) -> Response:
        run = find_run(request)
        return run if isinstance(run, Response) else JSONResponse(run)

    async def export_run(request: Request) -> Response:
        run = find_run(request)
        if isinstance(run, Response):
            return run
        spans = collector.trace(run["trace_id"]) if run["trace_id"] and run["traced"] else None
        return JSONResponse({"run": run, "trace": spans},
                            headers={"Content-Disposition": f'attachment; filename="run-{run["id"]}.json"'})

    # A trace is shown to the identity that has a run in it: spans carry other callers' tool names,
    # arguments sizes and timings, and a trace id is whatever a caller sent in its traceparent.
    async def list_traces(request: Request) -> Response:
        if store is None:
            return no_store()
        limit = max(1, min(int(_number(request.query_params.get("limit"), 50) or 50), collector.max_traces))
        mine = store.trace_ids(identity=session_of(request).identity, limit=limit)
        return JSONResponse({"traces": collector.recent(limit, among=mine), "sampling": sampling_policy()})

    async def get_trace(request: Request) -> Response:
        if store is None:
            return no_store()
        trace_id = request.path_params["trace_id"].lower()
        runs = store.runs_of_trace(trace_id, identity=session_of(request).identity) if TRACE_ID.match(trace_id) else []
        found = collector.trace(trace_id) if runs else None
        if found is None:
            return api_error(404, "not_found", "no such trace of yours in memory: only the newest "
                                               f"{collector.max_traces} traces are kept, and none survive a restart")
        found["runs"] = [{k: v for k, v in r.items() if k != "identity"} for r in runs]
        return JSONResponse(found)

    def may_run(agent: str) -> bool:
        """Whether the caller (bound by Studio's guard) may run `agent` here: as over MCP, where the
        agent is the tool of its name, the policy must grant that tool, without an approval (the
        Playground asks nothing; such an agent runs from the Tools page, which asks)."""
        policy = server.policy.policy
        if policy is None:
            return True
        grant, tool = policy.grant(current_caller()), safe_tool_name(agent)
        return grant.tools.admits(tool) and not grant.approval.admits(tool)

    def denied(agent: str) -> str:
        who = current_caller()
        return (f"permission denied: the server's policy does not let {who.identity if who else 'this caller'!r} "
                f"run {agent!r} from the Playground (it needs the tool {safe_tool_name(agent)!r}, without approval)")

    async def agents(request: Request) -> Response:
        return JSONResponse({"agents": [a for a in playground.catalog() if may_run(a["name"])]})

    def conversation_id(request: Request) -> str | None:
        value: str = request.path_params["conversation_id"]
        return value if CONVERSATION_ID.match(value) else None

    async def run(request: Request) -> Response:
        body = await read_json_object(request, MAX_RUN_BODY)
        if isinstance(body, Response):
            return body
        task, agent, existing = body.get("task", ""), body.get("agent"), body.get("conversation")
        if not isinstance(task, str):
            return api_error(400, "bad_task", "'task' must be a string (empty continues the conversation)")
        if server.draining:
            return api_error(503, "draining", "the server is shutting down; retry on a running server")
        session = session_of(request)
        try:
            if isinstance(existing, str) and existing:
                conversation = playground.conversation(existing, session.identity)
            elif isinstance(agent, str) and agent:
                if not may_run(agent):  # before it holds one of the bounded conversation slots
                    raise PlaygroundError(denied(agent), 403)
                conversation = playground.new(agent, session.identity)
            else:
                return api_error(400, "bad_request", "name an 'agent' to start a conversation, or a 'conversation'")
            if not may_run(conversation.agent):  # the policy may have changed since (a restart)
                raise PlaygroundError(denied(conversation.agent), 403)
            if conversation.running is not None:
                raise PlaygroundError("this conversation is already running: stop it or wait for it", 409)
            server.sessions.touch(session.id, stateless=True)  # its sandbox idles out like any stateless client's
        except PlaygroundError as e:
            return api_error(e.status, "playground", str(e))
        except SessionLimitError as e:
            return api_error(429, "too_many_sessions", str(e))

        async def produce(emit: Emit) -> None:
            try:
                await playground.run(conversation, task, emit, session_id=session.id)
            except PlaygroundError as e:
                await emit("error", {"message": str(e)})

        return EventStream(produce)

    async def stop(request: Request) -> Response:
        found = conversation_id(request)
        try:
            if found is None:
                raise PlaygroundError("no such conversation", 404)
            stopped = playground.stop(playground.conversation(found, session_of(request).identity))
        except PlaygroundError as e:
            return api_error(e.status, "playground", str(e))
        return JSONResponse({"stopped": stopped})

    async def save(request: Request) -> Response:
        found = conversation_id(request)
        try:
            if found is None:
                raise PlaygroundError("no such conversation", 404)
            conversation = playground.conversation(found, session_of(request).identity)
            saved = await playground.save(conversation)
        except PlaygroundError as e:
            return api_error(e.status, "playground", str(e))
        filename = f"{conversation.agent}-{conversation.id[:8]}.json"
        return JSONResponse(saved, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def load(request: Request) -> Response:
        body = await read_json_object(request, MAX_STATE_BODY)
        if isinstance(body, Response):
            return body
        try:
            conversation = await playground.load(body, session_of(request).identity)
        except PlaygroundError as e:
            return api_error(e.status, "playground", str(e))
        return JSONResponse(conversation.summary(), status_code=201)

    return [
        Route("/runs", list_runs, methods=["GET"]),
        Route("/runs/{run_id}", get_run, methods=["GET"]),
        Route("/runs/{run_id}/export", export_run, methods=["GET"]),
        Route("/traces", list_traces, methods=["GET"]),
        Route("/traces/{trace_id}", get_trace, methods=["GET"]),
        Route("/playground/agents", agents, methods=["GET"]),
        Route("/playground/run", run, methods=["POST"]),
        Route("/playground/conversations", load, methods=["POST"]),
        Route("/playground/conversations/{conversation_id}/stop", stop, methods=["POST"]),
        Route("/playground/conversations/{conversation_id}/state", save, methods=["GET"]),
    ]
