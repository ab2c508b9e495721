"""`AgentTool`: an agent or a team as a tool, so it can sit on a workbench and be served
over MCP. Inner events stream out as progress messages ("coder: …"); the result is the
final answer as text plus `{answer, messages, stop_reason, usage}` as structured content.
Cancelling the call stops the run at whatever it awaits."""

from __future__ import annotations

from typing import Any

import anyio

from workbench.agents import telemetry
from workbench.agents.base import Runner
from workbench.agents.messages import TaskResult, TextChunk, TextMessage, ToolCallEvent, ToolResultEvent, dump_events
from workbench.core import CallContext, Tool, ToolResult, WorkbenchError
from workbench.naming import safe_tool_name

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task": {"type": "string", "description": "What to do, in plain words."},
        "context": {"type": "string", "description": "Optional background the agent should know."},
    },
    "required": ["task"],
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "messages": {"type": "array", "items": {"type": "object"}},
        "stop_reason": {"type": ["string", "null"]},
        "usage": {
            "type": "object",
            "properties": {"input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}},
        },
    },
    "required": ["answer", "messages", "stop_reason", "usage"],
}


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(event: Any) -> str | None:
    """One line for a progress message; None for events not worth a notification."""
    if isinstance(event, TextMessage):
        return f"{event.source}: {_clip(event.content, 200)}"
    if isinstance(event, ToolCallEvent):
        return f"{event.source} calls " + ", ".join(f"{c.name}({_clip(c.arguments, 80)})" for c in event.calls)
    if isinstance(event, ToolResultEvent):
        return f"{event.source} got " + ", ".join(
            f"{r.name}{' [error]' if r.is_error else ''}: {_clip(r.content, 120)}" for r in event.results)
    return None


class AgentTool(Tool):
    """`AgentTool(coder)` or `AgentTool(team, name="review")`.

    With `fresh=True` (the default) every call runs on a clone with an empty conversation,
    so concurrent callers never share or wait for one another. `fresh=False` keeps one
    conversation across calls (calls then take turns).
    """

    def __init__(self, runner: Runner, *, name: str | None = None, description: str | None = None,
                 fresh: bool = True) -> None:
        self.runner = runner
        self.name = safe_tool_name(name or runner.name)
        self.description = description or runner.description
        self.input_schema = INPUT_SCHEMA
        self.output_schema = OUTPUT_SCHEMA
        self.fresh = fresh
        self._lock = anyio.Lock()

    async def run(self, arguments: dict[str, Any], ctx: CallContext) -> ToolResult:
        task, context = arguments.get("task"), arguments.get("context")
        if not isinstance(task, str) or not task.strip():
            return ToolResult.error(f"{self.name} needs a non-empty string 'task'")
        if context is not None and not isinstance(context, str):
            return ToolResult.error(f"{self.name}: 'context' must be a string")
        text = f"{task}\n\nContext:\n{context}" if context else task
        if self.fresh:
            return await self._run(self.runner.clone(), text, ctx)
        async with self._lock:
            return await self._run(self.runner, text, ctx)

    async def _run(self, runner: Runner, task: str, ctx: CallContext) -> ToolResult:
        result: TaskResult | None = None
        step = 0
        # The caller's W3C trace context (e.g. from an MCP request) parents the whole run.
        attributes = {telemetry.OPERATION: "invoke_agent", telemetry.AGENT_NAME: runner.name}
        with telemetry.span(f"invoke_agent {self.name}", attributes, carrier=ctx.trace_context):
            try:
                async for event in runner.run_stream(task, ctx=ctx):
                    if isinstance(event, TaskResult):
                        result = event
                    elif not isinstance(event, TextChunk) and (line := describe(event)):
                        step += 1
                        await ctx.report_progress(step, None, line)
            except WorkbenchError as e:  # a model or state error: the caller gets a message, not a crash
                return ToolResult.error(f"{self.name} failed: {e}")
            except TimeoutError:
                return ToolResult.error(f"{self.name} ran out of time (the call's deadline passed)")
        assert result is not None
        return ToolResult.from_text(result.text, structured={
            "answer": result.text, "messages": dump_events(result.messages),
            "stop_reason": result.stop_reason, "usage": result.usage.model_dump(),
        })
