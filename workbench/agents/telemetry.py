"""OpenTelemetry spans for messages, model calls and tool calls, named after the GenAI
semantic conventions (`gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.usage.*`,
`gen_ai.tool.name`, …).

Spans go to the global tracer provider: nothing is exported until the user installs one
with an exporter (`configure_tracing(exporter)` does it in one line). A W3C trace context
carried by a `CallContext` (e.g. an MCP request's `_meta.traceparent`) becomes the parent,
and the current one is injected into the `CallContext` of every tool call made below it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace import SpanKind as SpanKind  # re-exported: models pass telemetry.SpanKind.CLIENT

_tracer = trace.get_tracer("workbench.agents")

OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"


def tracer() -> trace.Tracer:
    """The agents' tracer (looked up per call, so tests can swap it)."""
    return _tracer


def configure_tracing(exporter: Any, *, service_name: str = "mcp-workbench") -> None:
    """Export every span to `exporter` (e.g. `OTLPSpanExporter()` or `ConsoleSpanExporter()`)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # one is installed already (Studio's span collector): export from it too
        current.add_span_processor(BatchSpanProcessor(exporter))
        # Studio's provider samples for its own memory; exported spans follow the user's sampler
        # (OTEL_TRACES_SAMPLER), not Studio's ratio (duck-typed: the agents do not import servers).
        defer = getattr(current.sampler, "defer_to_environment", None)
        if callable(defer):
            defer()
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


@contextmanager
def span(name: str, attributes: dict[str, Any], *, kind: SpanKind = SpanKind.INTERNAL,
         carrier: dict[str, str] | None = None) -> Iterator[Span]:
    """A span that records exceptions; `carrier` (W3C `traceparent`…) supplies the parent."""
    parent = propagate.extract(carrier) if carrier else None
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes,
                                       record_exception=True, set_status_on_exception=True) as s:
        yield s


def record_error(s: Span, message: str) -> None:
    s.set_status(Status(StatusCode.ERROR, message))


def current_carrier() -> dict[str, str]:
    """The current trace context as a W3C carrier, to hand to a tool call."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=otel_context.get_current())
    return carrier


def start_span(name: str, attributes: dict[str, Any], *, kind: SpanKind = SpanKind.INTERNAL) -> Span:
    """A span that is *not* made current: for async generators, where attaching a context
    across `yield` would detach it in the wrong place. End it with `span.end()`."""
    return _tracer.start_span(name, kind=kind, attributes=attributes)
