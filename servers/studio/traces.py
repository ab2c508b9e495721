"""`SpanCollector`: the OpenTelemetry spans of this process, kept in memory for Studio's waterfall.

A `SpanProcessor` on the global tracer provider, next to whatever exporter is there: when
`configure_tracing` (OTLP, console) installed an SDK provider first, the collector is added
to it and export goes on; otherwise the collector installs an SDK provider of its own, to
which `configure_tracing` adds its exporter later. No collector process is needed.

Bounded: the newest `max_traces` traces (the least recently touched one goes first), at most
`max_spans_per_trace` spans each (later ones are counted, not kept), and every attribute cut
to `MAX_ATTRIBUTE_CHARS` — span attributes carry tool names and model ids chosen by callers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import StatusCode

MAX_ATTRIBUTE_CHARS = 1000
MAX_ATTRIBUTES = 64
MAX_SPAN_EVENTS = 16


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_ATTRIBUTE_CHARS else value[:MAX_ATTRIBUTE_CHARS] + "…"
    if isinstance(value, tuple | list):
        return [_value(v) for v in list(value)[:32]]
    return value


def _attributes(attributes: Any) -> dict[str, Any]:
    return {k: _value(v) for k, v in list((attributes or {}).items())[:MAX_ATTRIBUTES]}


def span_record(span: ReadableSpan) -> dict[str, Any] | None:
    """A finished span as JSON-ready data (times in ms since the epoch), or None without a context."""
    context = span.get_span_context()
    if context is None or span.start_time is None:
        return None
    end = span.end_time or span.start_time
    status = span.status.status_code
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "remote_parent": bool(span.parent is not None and span.parent.is_remote),
        "name": _value(span.name),
        "kind": span.kind.name.lower(),
        "start_ms": span.start_time / 1e6,
        "duration_ms": (end - span.start_time) / 1e6,
        "status": "error" if status is StatusCode.ERROR else "ok" if status is StatusCode.OK else "unset",
        "status_message": _value(span.status.description or ""),
        "attributes": _attributes(span.attributes),
        "events": [{"name": _value(e.name), "at_ms": e.timestamp / 1e6, "attributes": _attributes(e.attributes)}
                   for e in list(span.events)[:MAX_SPAN_EVENTS]],
    }


def _fits(span: ReadableSpan) -> bool:
    """Whether the span is small enough to keep as it is (names and attributes can come from callers)."""
    attributes = span.attributes or {}
    return (len(span.name) <= MAX_ATTRIBUTE_CHARS and len(attributes) <= MAX_ATTRIBUTES
            and len(span.events) <= MAX_SPAN_EVENTS
            and all(not isinstance(v, str) or len(v) <= MAX_ATTRIBUTE_CHARS for v in attributes.values()))


def _as_record(kept: ReadableSpan | dict[str, Any]) -> dict[str, Any] | None:
    return kept if isinstance(kept, dict) else span_record(kept)


class SpanCollector(SpanProcessor):
    def __init__(self, *, max_traces: int = 500, max_spans_per_trace: int = 2000) -> None:
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self._traces: OrderedDict[str, list[ReadableSpan | dict[str, Any]]] = OrderedDict()
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()  # spans end in whatever thread ran them

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        # Kept as the SDK's finished span and turned into JSON only when a page asks, so ending a span
        # stays cheap on the call's path; an oversized one (a client's 4 MiB tool name) is cut now.
        context = span.get_span_context()
        if context is None or span.start_time is None:
            return
        trace_id = format(context.trace_id, "032x")
        with self._lock:
            spans = self._traces.get(trace_id)
            if spans is None:
                spans = self._traces[trace_id] = []
                while len(self._traces) > self.max_traces:
                    evicted, _ = self._traces.popitem(last=False)
                    self._dropped.pop(evicted, None)
            else:
                self._traces.move_to_end(trace_id)
            if len(spans) < self.max_spans_per_trace:
                spans.append(span if _fits(span) else (span_record(span) or {}))
            else:
                self._dropped[trace_id] = self._dropped.get(trace_id, 0) + 1

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """Every kept span of one trace, in start order, and how many were dropped."""
        with self._lock:
            spans = self._traces.get(trace_id.lower())
            if spans is None:
                return None
            kept = list(spans)
            dropped = self._dropped.get(trace_id.lower(), 0)
        records = [r for r in map(_as_record, kept) if r]
        return {"trace_id": trace_id.lower(), "spans": sorted(records, key=lambda s: s["start_ms"]),
                "dropped_spans": dropped}

    def recent(self, limit: int = 50, *, among: list[str] | None = None) -> list[dict[str, Any]]:
        """The most recently touched traces first (or those of `among` still kept, in its order): each
        one's root span, span count and errors."""
        with self._lock:
            if among is not None:
                items = [(t, self._traces[t]) for t in reversed(among[:limit]) if t in self._traces]
            else:
                items = list(self._traces.items())[-max(1, min(limit, self.max_traces)):]
            newest = [(trace_id, list(spans)) for trace_id, spans in items]
        summaries = []
        for trace_id, kept in reversed(newest):
            spans = [r for r in map(_as_record, kept) if r]
            if spans:
                ids = {s["span_id"] for s in spans}
                roots = [s for s in spans if s["parent_id"] not in ids]
                root = min(roots or spans, key=lambda s: s["start_ms"])
                start = min(s["start_ms"] for s in spans)
                end = max(s["start_ms"] + s["duration_ms"] for s in spans)
                summaries.append({
                    "trace_id": trace_id, "name": root["name"], "start_ms": start, "duration_ms": end - start,
                    "spans": len(spans), "errors": sum(1 for s in spans if s["status"] == "error"),
                })
        return summaries


_installed: SpanCollector | None = None
_install_lock = threading.Lock()


def install_collector() -> SpanCollector:
    """The process's collector, added to the global tracer provider on first use (an SDK provider
    is installed when there is none yet, so spans are recorded at all)."""
    global _installed
    with _install_lock:
        if _installed is None:
            provider = trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                provider = TracerProvider(resource=Resource.create({"service.name": "mcp-workbench"}))
                trace.set_tracer_provider(provider)
                provider = trace.get_tracer_provider()  # another thread may have won the one-time set
            collector = SpanCollector()
            if isinstance(provider, TracerProvider):
                provider.add_span_processor(collector)
            _installed = collector
        return _installed
