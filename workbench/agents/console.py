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
    streaming_from: str | None = None
    result: TaskResult | None = None
    async for event in runner.run_stream(task, ctx=ctx):
        if isinstance(event, TextChunk):
            if streaming_from != event.source:
                console.print(Rule(f"[bold]{escape(event.source)}", align="left"))
                streaming_from = event.source
            console.print(escape(event.content), end="", soft_wrap=True, highlight=False)
            continue
        if isinstance(event, TextMessage):
            if streaming_from == event.source:
                console.print()  # the text was already shown chunk by chunk
            else:
                console.print(Rule(f"[bold]{escape(event.source)}", align="left"))
                console.print(escape(_clip(event.content, 4000)), highlight=False)
            streaming_from = None
        elif isinstance(event, ToolCallEvent):
            for call in event.calls:
                console.print(f"[cyan]→ {escape(call.name)}[/]([dim]{escape(_clip(call.arguments, 300))}[/])", highlight=False)
        elif isinstance(event, ToolResultEvent):
            for r in event.results:
                style = "red" if r.is_error else "green"
                console.print(f"[{style}]← {escape(r.name)}{' error' if r.is_error else ''}:[/] {escape(_clip(r.content))}",
                              highlight=False)
        elif isinstance(event, TaskResult):
            result = event
    assert result is not None
    elapsed = time.monotonic() - started
    reason = f"stopped: {escape(result.stop_reason)} · " if result.stop_reason else ""
    console.print(Rule(style="dim"))
    console.print(f"[dim]{reason}{result.usage.input_tokens} input + {result.usage.output_tokens} output tokens · "
                  f"{elapsed:.1f} s[/]", highlight=False)
    return result
