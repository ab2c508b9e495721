"""`AssistantAgent`: a model with tools, in a bounded tool-call loop.

Each turn: ask the model; run the tool calls it asks for (concurrently); feed the results
back; repeat until the model answers in text or `max_tool_iterations` model calls have
asked for tools. At that bound the agent either reflects (one more model call, no tools)
or answers with the tool output itself. Tool failures, unknown tools and malformed JSON
arguments go back to the model as error results. The conversation is committed only when
a turn completes, so a cancelled turn leaves the agent (and its saved state) as before it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any, TypedDict

import anyio
from opentelemetry import trace

from workbench.agents import telemetry
from workbench.agents.base import Runner, check_name, check_state
from workbench.agents.messages import (
    Event,
    ModelResponse,
    TextChunk,
    TextMessage,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from workbench.agents.models import ChatClient
from workbench.agents.toolset import Toolset
from workbench.core import CallContext, Workbench


class _Options(TypedDict):
    """The keyword arguments an `AssistantAgent` was built with, so `clone` builds its twin alike."""

    workbench: Workbench | Sequence[Workbench] | None
    description: str
    system_message: str | None
    tools: Sequence[str] | None
    max_tool_iterations: int
    reflect_on_tool_use: bool
    tool_timeout: float | None
    model_client_stream: bool
    max_context_messages: int | None
    max_tool_result_chars: int


class AssistantAgent(Runner):
    """`AssistantAgent("coder", model, workbench=[tools, box], tools=["sandbox__*"])`.

    `tools` are globs over the workbenches' tool names (None: all). `tool_timeout` bounds
    each tool call in seconds; `model_client_stream` streams `TextChunk` events;
    `max_context_messages` sends only the latest part of a long conversation (the whole
    of it is kept and saved); a tool result longer than `max_tool_result_chars` is cut.
    """

    def __init__(self, name: str, model: ChatClient, workbench: Workbench | Sequence[Workbench] | None = None, *,
                 description: str = "", system_message: str | None = "You are a helpful assistant.",
                 tools: Sequence[str] | None = None, max_tool_iterations: int = 8, reflect_on_tool_use: bool = False,
                 tool_timeout: float | None = None, model_client_stream: bool = False,
                 max_context_messages: int | None = None, max_tool_result_chars: int = 50_000) -> None:
        if max_tool_iterations < 1:
            raise ValueError("max_tool_iterations must be at least 1")
        self.name = check_name(name)
        self.description = description or f"An assistant ({model.model})."
        self.model = model
        self.system_message = system_message
        self.max_tool_iterations = max_tool_iterations
        self.reflect_on_tool_use = reflect_on_tool_use
        self.model_client_stream = model_client_stream
        self.max_context_messages = max_context_messages
        self.toolset = Toolset(workbench, tools, tool_timeout=tool_timeout, max_result_chars=max_tool_result_chars)
        self._init = _Options(workbench=workbench, description=description, system_message=system_message, tools=tools,
                              max_tool_iterations=max_tool_iterations, reflect_on_tool_use=reflect_on_tool_use,
                              tool_timeout=tool_timeout, model_client_stream=model_client_stream,
                              max_context_messages=max_context_messages,
                              max_tool_result_chars=max_tool_result_chars)
        self._context: list[dict[str, Any]] = []

    def clone(self) -> AssistantAgent:
        twin = AssistantAgent(self.name, self.model, **self._init)
        twin.toolset = self.toolset  # no conversation state in it: share the listing
        return twin

    def _incoming(self, message: TextMessage) -> dict[str, Any]:
        entry: dict[str, Any] = {"role": "user", "content": message.content}
        if message.source != "user":
            entry["name"] = message.source  # other agents' turns, told apart for the model
        return entry

    async def _ask(self, context: list[dict[str, Any]], tools: list[dict[str, Any]] | None, ctx: CallContext,
                   span: trace.Span) -> AsyncGenerator[str | ModelResponse, None]:
        system = [{"role": "system", "content": self.system_message}] if self.system_message else []
        messages = system + self._window(context)
        if self.model_client_stream:
            stream = self.model.create_stream(messages, tools or None)
            async with aclosing(stream):
                while True:
                    with anyio.fail_after(ctx.remaining()):  # the deadline bounds each wait, never a yield
                        try:
                            item = await anext(stream)
                        except StopAsyncIteration:
                            return
                    yield item
        # No cancel scope may stay open across a `yield`: take the answer, then yield it.
        with trace.use_span(span, end_on_exit=False), anyio.fail_after(ctx.remaining()):
            response = await self.model.create(messages, tools or None)
        yield response

    def _window(self, context: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The last `max_context_messages` entries, never starting on a tool result whose call
        was cut off (the API rejects those)."""
        if self.max_context_messages is None or len(context) <= self.max_context_messages:
            return context
        start = len(context) - self.max_context_messages
        while start < len(context) - 1 and context[start]["role"] == "tool":
            start += 1
        return context[start:]

    async def respond(self, messages: list[TextMessage], ctx: CallContext) -> AsyncGenerator[Event, None]:
        context = self._context + [self._incoming(m) for m in messages]
        span = telemetry.start_span(f"invoke_agent {self.name}", {
            telemetry.OPERATION: "invoke_agent",
            telemetry.AGENT_NAME: self.name,
            telemetry.REQUEST_MODEL: self.model.model,
        })
        usage = Usage()
        try:
            with trace.use_span(span, end_on_exit=False):
                tools = await self.toolset.openai_tools()
            final: TextMessage | None = None
            last_results: list[str] = []
            # Up to max_tool_iterations calls that may use tools, then one without (reflection).
            for iteration in range(self.max_tool_iterations + 1):
                reflecting = iteration == self.max_tool_iterations
                if reflecting and not self.reflect_on_tool_use:
                    # Out of iterations without reflection: the tool output is the answer.
                    final = TextMessage(source=self.name, content="\n".join(last_results))
                    context.append({"role": "assistant", "content": final.content})
                    break
                response: ModelResponse | None = None
                async with aclosing(self._ask(context, None if reflecting else tools, ctx, span)) as answer:
                    async for item in answer:
                        if isinstance(item, ModelResponse):
                            response = item
                        else:
                            yield TextChunk(source=self.name, content=item)
                assert response is not None
                usage = usage + response.usage
                if not response.tool_calls or reflecting:
                    final = TextMessage(source=self.name, content=response.content or "", usage=response.usage)
                    context.append({"role": "assistant", "content": final.content})
                    break
                context.append(response.to_openai_message())
                yield ToolCallEvent(source=self.name, calls=response.tool_calls, content=response.content,
                                    usage=response.usage)
                with trace.use_span(span, end_on_exit=False):
                    results = await self.toolset.call_all(response.tool_calls, ctx)
                context.extend({"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in results)
                last_results = [r.content for r in results]
                yield ToolResultEvent(source=self.name, results=results)
            assert final is not None
            span.set_attribute(telemetry.INPUT_TOKENS, usage.input_tokens)
            span.set_attribute(telemetry.OUTPUT_TOKENS, usage.output_tokens)
            self._context = context  # commit: the turn completed
            yield final
        except Exception as e:
            telemetry.record_error(span, f"{type(e).__name__}: {e}")
            raise
        finally:
            span.end()

    async def save_state(self) -> dict[str, Any]:
        return {"type": "AssistantAgent", "version": 1, "name": self.name, "context": list(self._context)}

    async def load_state(self, state: dict[str, Any]) -> None:
        check_state(state, "AssistantAgent", self.name)
        self._context = list(state.get("context", []))

    async def reset(self) -> None:
        self._context = []
