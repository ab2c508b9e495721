"""`RecordingWorkbench`: every tool call served — from MCP clients and from Studio alike — as a
run in the `RunStore`, inside an MCP request span.

What is kept: who (identity, session), which tool, the arguments (masked, bounded), progress
messages, the outcome (ok / error / cancelled / unknown tool), a preview of the result and the
duration. Argument values *are* stored, because replaying a call is what the Runs page is
for; but any key that names a secret (`password`, `token`, `api_key`, `authorization`, …) is
masked at every depth, every string is cut to `MAX_STRING_CHARS`, and binary content
(images, audio, blobs) is reduced to its type and size. The store lives in the user's own
state directory with owner-only permissions.

The run's trace is the MCP request span's, `tools/call <tool>` (MCP semantic conventions): the
SDK's server makes it, parented on the caller's `_meta.traceparent` when the request carried
one, so the caller's trace id is the run's; a call from Studio gets one of the same shape.
The call below gets the span's context, so an agent served as a tool and the sandbox run it
causes hang under it. A sampled-out span (servers/studio/traces.py) is still the request's: the
run keeps its trace id, marked as not traced, so its page says why there is no waterfall.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

import mcp.types as mt
import pydantic_core
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from servers.studio.runs import RunStatus, RunStore
from workbench.core import CallContext, ProgressCallback, ToolNotFoundError, ToolResult, Workbench, logger
from workbench.wrapper import WorkbenchWrapper

SECRET_KEY = re.compile(r"pass(word|phrase)?|secret|token|api[-_]?key|authori[sz]ation|cookie|credential|"
                        r"private[-_]?key|session[-_]?key", re.I)
MASK = "***"
MAX_STRING_CHARS = 4000
MAX_ITEMS = 100
MAX_DEPTH = 8
_tracer = trace.get_tracer("workbench.servers")


@functools.lru_cache(maxsize=4096)
def _short_secret_name(key: str) -> bool:
    # A tool's argument names repeat call after call: the regex runs once per name.
    return SECRET_KEY.search(key) is not None


def _secret_name(key: str) -> bool:
    return _short_secret_name(key) if len(key) <= 200 else SECRET_KEY.search(key) is not None  # cache short names only


def masked(value: Any, depth: int = 0) -> Any:
    """`value` with secret-named keys masked and every string, list and depth bounded."""
    if depth > MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {(key := str(k))[:200]: MASK if _secret_name(key) else masked(v, depth + 1)
                for k, v in itertools.islice(value.items(), MAX_ITEMS)}
    if isinstance(value, list | tuple):
        return [masked(v, depth + 1) for v in itertools.islice(value, MAX_ITEMS)]
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        return value[:MAX_STRING_CHARS] + f"… ({len(value)} chars)"
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)[:200]


def content_preview(block: mt.ContentBlock) -> dict[str, Any]:
    """One content block as the Runs page shows it: text bounded, binary as type and size."""
    if isinstance(block, mt.TextContent):
        return {"type": "text", "text": masked(block.text)}
    if isinstance(block, mt.ImageContent | mt.AudioContent):
        return {"type": block.type, "mime_type": block.mime_type, "bytes": len(block.data) * 3 // 4}
    if isinstance(block, mt.ResourceLink):
        return {"type": "resource_link", "uri": str(block.uri)[:2000], "name": block.name[:200]}
    resource = block.resource
    preview: dict[str, Any] = {"type": "resource", "uri": str(resource.uri)[:2000], "mime_type": resource.mime_type}
    if isinstance(resource, mt.TextResourceContents):
        preview["text"] = masked(resource.text)
    else:
        preview["bytes"] = len(resource.blob) * 3 // 4
    return preview


def result_preview(result: ToolResult) -> dict[str, Any]:
    return {"is_error": result.is_error, "content": [content_preview(c) for c in result.content[:MAX_ITEMS]],
            "structured": masked(result.structured)}


__all__ = ["RecordingWorkbench", "RunStore", "masked", "result_preview"]


class RecordingWorkbench(WorkbenchWrapper):
    """Records each call into `store` (None: spans only, nothing written)."""

    def __init__(self, inner: Workbench, store: RunStore | None) -> None:
        super().__init__(inner)
        self.store = store

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        ctx: CallContext | None = None) -> ToolResult:
        ctx = ctx or CallContext()
        # Without a tracer provider a span records nothing: none is made, and the caller's context is the run's.
        tracing = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        with self._request_span(name, ctx, tracing) as span:
            recording = span.is_recording()  # False when sampled out: then nothing is set on the span
            if recording:
                span.set_attributes({"mcp.session.id": ctx.session_id, "enduser.id": ctx.identity})
            span_context = span.get_span_context()
            trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else None
            carrier: dict[str, str] = {}
            if tracing and (recording or ctx.trace_context):
                # A sampled-out trace that no caller handed over is not passed on: the call runs in this
                # context, whose span says "not sampled" to any span below; the upstream lane does the same.
                propagate.inject(carrier)
            run_id = self._start(name, arguments, ctx, trace_id, recording)
            call_ctx = ctx
            if carrier or ctx.progress is not None:
                call_ctx = replace(ctx, trace_context=carrier or ctx.trace_context,
                                   progress=self._progress(run_id, ctx) if ctx.progress is not None else None)
            started = time.perf_counter()
            try:
                result = await self.inner.call_tool(name, arguments, call_ctx)
            except ToolNotFoundError as e:
                span.set_status(Status(StatusCode.ERROR, "unknown tool"))
                self._finish(run_id, "error", started, error=str(e))
                raise
            except BaseException as e:  # cancelled (client left, shutdown) or a workbench that broke its promise
                cancelled = not isinstance(e, Exception)
                self._finish(run_id, "cancelled" if cancelled else "error", started,
                             error="cancelled" if cancelled else f"{type(e).__name__}: {e}")
                raise
            if result.is_error and recording:
                span.set_status(Status(StatusCode.ERROR, result.text[:200]))
            self._finish(run_id, "error" if result.is_error else "ok", started, output=result_preview(result),
                         error=result.text[:500] if result.is_error else None)
            return result

    @staticmethod
    def _request_span(name: str, ctx: CallContext, tracing: bool) -> AbstractContextManager[Span]:
        """The MCP request's span: the SDK's own (its server middleware makes one per request, parented
        on the caller's `_meta.traceparent`) when there is one; else, for calls that did not come over
        MCP (Studio's), one of the same shape, parented on the call context's trace context."""
        current = trace.get_current_span()
        if current.get_span_context().is_valid:  # recording, or sampled out: the request's span either way
            return nullcontext(current)
        parent = propagate.extract(ctx.trace_context) if ctx.trace_context else None
        if not tracing:
            return nullcontext(current if parent is None else trace.get_current_span(parent))
        return _tracer.start_as_current_span(f"tools/call {name}", context=parent, kind=SpanKind.SERVER, attributes={
            "mcp.method.name": "tools/call", "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name})

    def _start(self, name: str, arguments: dict[str, Any] | None, ctx: CallContext, trace_id: str | None,
               traced: bool) -> str | None:
        if self.store is None:
            return None
        args = arguments or {}
        try:  # the arguments' JSON length: pydantic-core's encoder is several times faster than repr
            size = len(pydantic_core.to_json(args, fallback=str))
        except Exception:  # a hostile __str__ or bytes that are not UTF-8 must not break the call
            size = -1
        return self.store.start_run("tool", name, identity=ctx.identity, session=ctx.session_id, trace_id=trace_id,
                                    traced=traced, input={"arguments": masked(args), "arguments_chars": size})

    def _finish(self, run_id: str | None, status: RunStatus, started: float, *, output: Any = None,
                error: str | None = None) -> None:
        if self.store is None or run_id is None:
            return
        try:
            self.store.finish_run(run_id, status, output=output, error=error,
                                  duration_ms=(time.perf_counter() - started) * 1000)
        except Exception:  # never turn a served result into a failure
            logger.exception("recording the end of run %s failed", run_id)

    def _progress(self, run_id: str | None, ctx: CallContext) -> ProgressCallback:
        async def progress(done: float, total: float | None, message: str | None) -> None:
            if self.store is not None and run_id is not None:
                self.store.add_event(run_id, "progress", {"progress": done, "total": total,
                                                          "message": masked(message)})
            await ctx.report_progress(done, total, message)

        return progress
