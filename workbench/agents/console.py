"""`run_in_console`: a run streamed readably in the terminal (what `workbench run` shows)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from workbench.agents.base import Runner
from workbench.agents.messages import TaskResult, TextChunk, TextMessage, ToolCallEvent, ToolResultEvent
from workbench.core import CallContext


def _clip(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


async def run_in_console(runner: Runner, task: str | None, console: Console | None = None, *,
                         ctx: CallContext | None = None) -> TaskResult:
    """Stream `runner`'s run on `task` to `console` (stdout by default) and return the result."""
    console = console or Console()
    started = time.monotonic()
    speaker: str | None = None  # whose header was printed last
    mid_line = False  # streamed chunks left the cursor mid-line
    result: TaskResult | None = None
    async for event in runner.run_stream(task, ctx=ctx):
        if isinstance(event, TaskResult):
            result = event
            continue
        if event.source != speaker:
            if mid_line:
                console.print()
                mid_line = False
            console.print(Rule(f"[bold]{escape(event.source)}", align="left"))
            speaker = event.source
        if isinstance(event, TextChunk):
            console.print(escape(event.content), end="", soft_wrap=True, highlight=False)
            mid_line = True
        elif isinstance(event, TextMessage):
            if mid_line:  # the text was already shown chunk by chunk
                console.print()
                mid_line = False
            else:
                console.print(escape(_clip(event.content, 4000)), highlight=False)
        elif isinstance(event, ToolCallEvent):
            if mid_line:
                console.print()
                mid_line = False
            for call in event.calls:
                console.print(f"[cyan]→ {escape(call.name)}[/]([dim]{escape(_clip(call.arguments, 300))}[/])",
                              highlight=False)
        elif isinstance(event, ToolResultEvent):
            for r in event.results:
                style = "red" if r.is_error else "green"
                error = " error" if r.is_error else ""
                console.print(f"[{style}]← {escape(r.name)}{error}:[/] {escape(_clip(r.content))}",
                              highlight=False)
    assert result is not None
    elapsed = time.monotonic() - started
    reason = f"stopped: {escape(result.stop_reason)} · " if result.stop_reason else ""
    console.print(Rule(style="dim"))
    console.print(f"[dim]{reason}{result.usage.input_tokens} input + {result.usage.output_tokens} output tokens · "
                  f"{elapsed:.1f} s[/]", highlight=False)
    return result
