"""The workbench the serve tests put behind a real MCP server: every content type, structured
output, progress, logs, failures, a slow tool that records whether it is still running,
resources, prompts, and a tool list that can change."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import mcp.types as mt
from pydantic import BaseModel

from workbench import CallContext, StaticWorkbench, ToolResult

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


class Sum(BaseModel):
    total: int


def add(a: int, b: int) -> Sum:
    """Add two integers."""
    return Sum(total=a + b)


def echo(text: str) -> str:
    """Echo the text back."""
    return text


def fail(reason: str = "boom") -> str:
    """Always fails."""
    raise RuntimeError(reason)


def media():  # no return annotation: a ToolResult is passed through as is
    """One of every MCP content type."""
    return ToolResult(
        content=[
            mt.TextContent(type="text", text="hello"),
            mt.ImageContent(type="image", data=PNG, mime_type="image/png"),
            mt.AudioContent(type="audio", data=PNG, mime_type="audio/wav"),
            mt.ResourceLink(type="resource_link", uri="demo://readme", name="readme"),
            mt.EmbeddedResource(
                type="resource", resource=mt.TextResourceContents(uri="demo://note", text="note", mime_type="text/plain")
            ),
        ],
        structured={"count": 5},
    )


async def whoami(ctx: CallContext) -> dict[str, Any]:
    """The caller's session, identity and trace context as the workbench sees them."""
    return {"session": ctx.session_id, "identity": ctx.identity, "trace": ctx.trace_context}


async def shout(text: str, ctx: CallContext) -> str:
    """Logs the text at warning level, then returns it upper-cased."""
    if ctx.log is not None:
        await ctx.log(mt.LoggingMessageNotificationParams(level="warning", data=f"shouting {text}", logger="shout"))
    return text.upper()


async def ask(question: str, ctx: CallContext) -> str:
    """Asks the client's model (sampling) and returns its answer."""
    if ctx.sampling is None:
        return "no sampling channel"
    params = mt.CreateMessageRequestParams(
        messages=[mt.SamplingMessage(role="user", content=mt.TextContent(type="text", text=question))], max_tokens=10
    )
    result = await ctx.sampling(None, params)  # type: ignore[arg-type]
    if isinstance(result, mt.ErrorData):
        return f"sampling failed: {result.message}"
    return result.content.text  # type: ignore[union-attr]


async def confirm(action: str, ctx: CallContext) -> str:
    """Asks the user (elicitation) whether to go ahead."""
    if ctx.elicitation is None:
        return "no elicitation channel"
    params = mt.ElicitRequestFormParams(
        message=f"Go ahead with {action}?",
        requested_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    )
    result = await ctx.elicitation(None, params)  # type: ignore[arg-type]
    if isinstance(result, mt.ErrorData):
        return f"elicitation failed: {result.message}"
    return f"{result.action}: {result.content}"


class ServeBench(StaticWorkbench):
    """StaticWorkbench plus resources, prompts, a slow tool, and a record of what happened."""

    def __init__(self) -> None:
        super().__init__([add, echo, fail, media, whoami, shout, ask, confirm], name="testbench")
        self.add(self._slow_tool())
        self.running: set[str] = set()
        self.cancelled: list[str] = []
        self.finished: list[str] = []
        self.closed_sessions: list[str] = []
        self.stopped = False

    def _slow_tool(self) -> Any:
        from workbench import FunctionTool

        async def slow(seconds: float, ctx: CallContext, tag: str = "") -> str:
            """Sleeps, reporting progress every 50 ms; records whether it is still running."""
            key = tag or f"{ctx.session_id}:{seconds}"
            self.running.add(key)
            try:
                steps = max(1, int(seconds / 0.05))
                for i in range(steps):
                    await anyio.sleep(seconds / steps)
                    await ctx.report_progress(i + 1, steps, f"step {i + 1}")
                self.finished.append(key)
                return f"slept {seconds}"
            except BaseException:
                self.cancelled.append(key)
                raise
            finally:
                self.running.discard(key)

        return FunctionTool(slow)

    async def close_session(self, session_id: str) -> None:
        self.closed_sessions.append(session_id)

    async def stop(self) -> None:
        self.stopped = True

    async def list_resources(self) -> list[mt.Resource]:
        return [mt.Resource(uri="demo://readme", name="readme", mime_type="text/plain")]

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        return [mt.ResourceTemplate(uri_template="demo://notes/{id}", name="note")]

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        if uri != "demo://readme":
            return await super().read_resource(uri, ctx)
        return mt.ReadResourceResult(contents=[mt.TextResourceContents(uri=uri, text="read me", mime_type="text/plain")])

    async def list_prompts(self) -> list[mt.Prompt]:
        return [mt.Prompt(name="summarize", arguments=[mt.PromptArgument(name="text", required=True)])]

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, ctx: CallContext | None = None
    ) -> mt.GetPromptResult:
        if name != "summarize":
            return await super().get_prompt(name, arguments, ctx)
        text = (arguments or {}).get("text", "")
        return mt.GetPromptResult(
            messages=[mt.PromptMessage(role="user", content=mt.TextContent(type="text", text=f"Summarize: {text}"))]
        )
