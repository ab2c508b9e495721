"""`Playground`: Studio's conversations with the configured agents and teams.

A conversation is a private copy (`Runner.clone()`) of one agent or team, so two browsers —
or a browser and an MCP client calling the same agent as a tool — never share a history.
Each run streams the runner's events to the caller as they happen, records them as a run in
the `RunStore`, and runs under one root span, so its trace (agent turns, model calls, tool
calls, sandbox runs) can be opened from the run. The next task in the same conversation
continues it; `save`/`load` move its state in and out as JSON.

Bounded: at most `max_conversations` live (the least recently used idle one goes first),
one run at a time per conversation, tasks up to `MAX_TASK_CHARS`. A run ends when it
finishes, when `stop` is called, or when its stream's client goes away.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
from opentelemetry import propagate, trace

from servers.studio.runs import RunStatus, RunStore
from servers.studio.traces import traced
from workbench.agents.base import Runner, StateError
from workbench.agents.messages import TaskResult, TextChunk
from workbench.agents.teams import GroupChat
from workbench.core import CallContext, WorkbenchError

MAX_TASK_CHARS = 32_000
STATE_FORMAT = "mcp-workbench.playground/1"
Emit = Callable[[str, Any], Awaitable[None]]
_tracer = trace.get_tracer("workbench.studio")


class PlaygroundError(WorkbenchError):
    """A request the playground cannot take; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Conversation:
    id: str
    agent: str
    runner: Runner
    identity: str
    running: anyio.CancelScope | None = None
    runs: list[str] = field(default_factory=list)
    last_used: float = field(default_factory=time.monotonic)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "agent": self.agent, "running": self.running is not None, "runs": self.runs}


def kind_of(runner: Runner) -> str:
    return "team" if isinstance(runner, GroupChat) else "agent"


class Playground:
    def __init__(self, runners: Mapping[str, Runner], store: RunStore | None, *, max_conversations: int = 32) -> None:
        self.runners = dict(runners)
        self.store = store
        self.max_conversations = max_conversations
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()

    def catalog(self) -> list[dict[str, Any]]:
        """The agents and teams to pick from."""
        return [{"name": name, "kind": kind_of(runner), "description": runner.description,
                 "members": [p.name for p in runner.participants] if isinstance(runner, GroupChat) else []}
                for name, runner in sorted(self.runners.items())]

    def conversation(self, conversation_id: str, identity: str) -> Conversation:
        found = self._conversations.get(conversation_id)
        if found is None or found.identity != identity:  # another identity's id reads as unknown
            raise PlaygroundError("no such conversation (it ended, or the server restarted): start a new one", 404)
        found.last_used = time.monotonic()
        self._conversations.move_to_end(conversation_id)
        return found

    def new(self, agent: str, identity: str) -> Conversation:
        runner = self.runners.get(agent)
        if runner is None:
            raise PlaygroundError(f"no agent or team {agent!r} (have: {', '.join(sorted(self.runners)) or 'none'})",
                                  404)
        while len(self._conversations) >= self.max_conversations:
            idle = next((c for c in self._conversations.values() if c.running is None), None)
            if idle is None:
                raise PlaygroundError(f"{self.max_conversations} conversations are running: stop one first", 429)
            del self._conversations[idle.id]
        conversation = Conversation(secrets.token_urlsafe(16), agent, runner.clone(), identity)
        self._conversations[conversation.id] = conversation
        return conversation

    def stop(self, conversation: Conversation) -> bool:
        """Cancel the conversation's running run; False when none was running."""
        if conversation.running is None:
            return False
        conversation.running.cancel()
        return True

    async def save(self, conversation: Conversation) -> dict[str, Any]:
        if conversation.running is not None:
            raise PlaygroundError("the conversation is running: stop it or wait for it before saving", 409)
        return {"format": STATE_FORMAT, "agent": conversation.agent, "state": await conversation.runner.save_state()}

    async def load(self, saved: Any, identity: str) -> Conversation:
        """A new conversation from `save()`'s JSON (the agent must still exist, and its shape fit)."""
        fits = isinstance(saved, dict) and saved.get("format") == STATE_FORMAT and isinstance(saved.get("state"), dict)
        if not fits:
            raise PlaygroundError(f"not a saved playground conversation: expected JSON with \"format\": "
                                  f"\"{STATE_FORMAT}\", \"agent\" and \"state\"")
        conversation = self.new(str(saved.get("agent")), identity)
        try:
            await conversation.runner.load_state(saved["state"])
        except (StateError, ValueError, KeyError, TypeError) as e:  # pydantic's ValidationError is a ValueError
            del self._conversations[conversation.id]
            raise PlaygroundError(f"cannot load this state into {conversation.agent}: {str(e)[:500]}") from None
        return conversation

    async def run(self, conversation: Conversation, task: str, emit: Emit, *, session_id: str) -> None:
        """Run `task` (empty: continue where the last run stopped) and emit `run`, one `event` per
        message or tool call/result (`chunk` for streamed text), then `result` or `stopped` or `error`."""
        if len(task) > MAX_TASK_CHARS:
            raise PlaygroundError(f"the task is {len(task)} characters; the limit is {MAX_TASK_CHARS}")
        if conversation.running is not None:
            raise PlaygroundError("this conversation is already running: stop it or wait for it", 409)
        name = conversation.agent
        with traced(), _tracer.start_as_current_span(f"studio.run {name}", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name,
                "workbench.conversation": conversation.id}) as span:
            context = span.get_span_context()
            trace_id = format(context.trace_id, "032x") if context.is_valid else None
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            run_id = self._start(conversation, task, session_id, trace_id, span.is_recording())
            await emit("run", {"run_id": run_id, "trace_id": trace_id, "conversation": conversation.id,
                               "agent": name, "kind": kind_of(conversation.runner)})
            ctx = CallContext(session_id=session_id, identity=conversation.identity, trace_context=carrier)
            started = time.perf_counter()
            result: TaskResult | None = None
            scope = conversation.running = anyio.CancelScope()
            try:
                with scope:
                    async with aclosing(conversation.runner.run_stream(task or None, ctx=ctx)) as stream:
                        async for item in stream:
                            if isinstance(item, TaskResult):
                                result = item
                                continue
                            data = item.model_dump(mode="json")
                            if not isinstance(item, TextChunk):
                                self._event(run_id, data)
                            await emit("chunk" if isinstance(item, TextChunk) else "event", data)
            except Exception as e:  # a broken model or source ends this run, not the server; say why
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(e)[:200]))
                self._finish(run_id, "error", started, error=f"{type(e).__name__}: {e}")
                await emit("error", {"message": f"{name} failed: {type(e).__name__}: {e}"})
                return
            except BaseException:  # the client went away: the stream is cancelled, the run with it
                self._finish(run_id, "cancelled", started, error="the client closed the stream")
                raise
            finally:
                conversation.running = None
                conversation.last_used = time.monotonic()
            if result is None:  # stopped
                self._finish(run_id, "cancelled", started, error="stopped from the playground")
                await emit("stopped", {"run_id": run_id})
                return
            output = {"text": result.text, "stop_reason": result.stop_reason,
                      "usage": result.usage.model_dump(mode="json")}
            self._finish(run_id, "ok", started, output=output)
            await emit("result", {"run_id": run_id, **output})

    # ---- recording ---------------------------------------------------------------------
    def _start(self, conversation: Conversation, task: str, session_id: str, trace_id: str | None,
               recorded: bool) -> str | None:
        if self.store is None:
            return None
        run_id = self.store.start_run(
            "team" if kind_of(conversation.runner) == "team" else "agent", conversation.agent,
            identity=conversation.identity, session=session_id, trace_id=trace_id, traced=recorded,
            input={"task": task, "conversation": conversation.id, "continues": len(conversation.runs)},
        )
        conversation.runs.append(run_id)
        del conversation.runs[:-100]  # ids for the page, not a history: the store has the runs
        return run_id

    def _event(self, run_id: str | None, data: dict[str, Any]) -> None:
        if self.store is not None and run_id is not None:
            self.store.add_event(run_id, str(data.get("type", "event")), data)

    def _finish(self, run_id: str | None, status: RunStatus, started: float, *, output: Any = None,
                error: str | None = None) -> None:
        if self.store is not None and run_id is not None:
            self.store.finish_run(run_id, status, output=output, error=error,
                                  duration_ms=(time.perf_counter() - started) * 1000)
