"""`SpanCollector`: the OpenTelemetry spans of this process, kept in memory for Studio's waterfall.

A `SpanProcessor` on the global tracer provider, next to whatever exporter is there: when
`configure_tracing` (OTLP, console) installed an SDK provider first, the collector is added
to it and export goes on; otherwise the collector installs an SDK provider of its own, to
which `configure_tracing` adds its exporter later. No collector process is needed.

Sampled, because a recorded span costs the call it times (a gateway hop's two spans, recorded,
cost ~0.1 ms of CPU; left out, a few µs: bench/bench_bookkeeping.py) and a trace only matters to
someone who opens it. Who decides:
- the provider is Studio's own (no exporter configured): `StudioSampler` records a trace when
  Studio's own pages started it (the Playground, the Tools page: `traced()`), when the caller's
  `traceparent` says it is sampled (an instrumented client wants it), and for `trace_sample` (the
  `[serve] trace_sample` key) of the rest, chosen by trace id (`TraceIdRatioBased`: every span of
  a trace, here and in a ratio-sampling upstream, gets the same answer); a child follows its
  parent (`ParentBased`), so a trace is whole or absent. An unsampled span is the SDK's
  `NonRecordingSpan`: no attributes kept, no processor called.
- an exporter is configured (`configure_tracing`, before or after Studio), or `OTEL_TRACES_SAMPLER`
  is set: the user's sampler (the SDK's, from `OTEL_TRACES_SAMPLER`; by default every trace) decides,
  for Studio's memory as for the export: their spans are never dropped behind their back.
A run whose trace was not recorded says so on its page (`sampling_note`).

Bounded: the newest `max_traces` traces (the least recently touched one goes first), at most
`max_spans_per_trace` spans each (later ones are counted, not kept), and every attribute cut
to `MAX_ATTRIBUTE_CHARS` — span attributes carry tool names and model ids chosen by callers.
(Not with the SDK's `SpanLimits`: an exporter added to Studio's provider would get cut spans.)
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

MAX_ATTRIBUTE_CHARS = 1000
MAX_ATTRIBUTES = 64
MAX_SPAN_EVENTS = 16
DEFAULT_TRACE_SAMPLE = 0.1
"""`[serve] trace_sample`'s default (`ServeConfig.trace_sample` is the same). Measured with
bench/bench_bookkeeping.py (best of 8 rounds, on a shared 2-core machine): recording every call's
spans cost ~140 µs of CPU per call, none ~0; a ratio costs its share of that, so 0.1 is ~14 µs,
below what the benchmark can tell from 0, while one served call in ten still shows a waterfall on
the Traces page with nothing configured. 0.01 would save ~12 µs more and leave that page nearly
empty; a person debugging sets 1.0 (or sends a sampled traceparent)."""
_ASKED: ContextVar[bool] = ContextVar("workbench_trace_asked", default=False)


@contextmanager
def traced() -> Iterator[None]:
    """Record the traces started inside whatever the sample ratio: runs started from Studio's own
    pages, whose person is about to open the trace."""
    token = _ASKED.set(True)
    try:
        yield
    finally:
        _ASKED.reset(token)


class _AskedOrRatio(TraceIdRatioBased):
    """A new trace: recorded when Studio asked for it, else by the ratio."""

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
                      attributes: Attributes = None, links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        if _ASKED.get():
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return super().should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)


def _environment_sampler() -> Sampler:
    # What the SDK makes of OTEL_TRACES_SAMPLER / _ARG (default parentbased_always_on), read the
    # SDK's own way: a provider that is never installed is the public route to it.
    return TracerProvider(shutdown_on_exit=False).sampler


class StudioSampler(Sampler):
    """Studio's own provider's sampler (see the module's docstring): its rule until the user's
    sampler takes over, which happens once and for good (`defer_to_environment`)."""

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self._own: Sampler = ParentBased(root=_AskedOrRatio(ratio))
        self.user: Sampler | None = _environment_sampler() if os.environ.get("OTEL_TRACES_SAMPLER") else None
        """The user's sampler, once they configured one (`OTEL_TRACES_SAMPLER`) or an exporter."""

    def set_ratio(self, ratio: float) -> None:
        self.ratio = ratio
        self._own = ParentBased(root=_AskedOrRatio(ratio))

    def defer_to_environment(self) -> None:
        """An exporter was added (`configure_tracing`): from now on the user's sampler decides."""
        if self.user is None:
            self.user = _environment_sampler()

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
                      attributes: Attributes = None, links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        return (self.user or self._own).should_sample(parent_context, trace_id, name, kind, attributes, links,
                                                      trace_state)

    def get_description(self) -> str:
        return self.user.get_description() if self.user else f"StudioSampler{{{self.ratio}}}"


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


def _trace_key(trace_id: str) -> int | None:
    try:
        return int(trace_id, 16)
    except ValueError:
        return None


class SpanCollector(SpanProcessor):
    def __init__(self, *, max_traces: int = 500, max_spans_per_trace: int = 2000) -> None:
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        # Keyed by the trace id as the SDK holds it (an int): formatted only when a page reads it.
        self._traces: OrderedDict[int, list[ReadableSpan | dict[str, Any]]] = OrderedDict()
        self._dropped: dict[int, int] = {}
        self._lock = threading.Lock()  # spans end in whatever thread ran them

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        # Kept as the SDK's finished span and turned into JSON only when a page asks, so ending a span
        # stays cheap on the call's path; an oversized one (a client's 4 MiB tool name) is cut now.
        context = span.context
        if context is None or span.start_time is None:
            return
        kept = span if _fits(span) else (span_record(span) or {})
        trace_id = context.trace_id
        with self._lock:
            spans = self._traces.get(trace_id)
            if spans is None:
                spans = self._traces[trace_id] = []
                if len(self._traces) > self.max_traces:
                    evicted, _ = self._traces.popitem(last=False)
                    self._dropped.pop(evicted, None)
            else:
                self._traces.move_to_end(trace_id)
            if len(spans) < self.max_spans_per_trace:
                spans.append(kept)
            else:
                self._dropped[trace_id] = self._dropped.get(trace_id, 0) + 1

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """Every kept span of one trace, in start order, and how many were dropped."""
        key = _trace_key(trace_id)
        with self._lock:
            spans = self._traces.get(key) if key is not None else None
            if spans is None or key is None:
                return None
            kept = list(spans)
            dropped = self._dropped.get(key, 0)
        records = [r for r in map(_as_record, kept) if r]
        return {"trace_id": format(key, "032x"), "spans": sorted(records, key=lambda s: s["start_ms"]),
                "dropped_spans": dropped}

    def recent(self, limit: int = 50, *, among: list[str] | None = None) -> list[dict[str, Any]]:
        """The most recently touched traces first (or those of `among` still kept, in its order): each
        one's root span, span count and errors."""
        with self._lock:
            if among is not None:
                keys = [k for k in map(_trace_key, reversed(among[:limit])) if k is not None]
                items = [(k, self._traces[k]) for k in keys if k in self._traces]
            else:
                items = list(self._traces.items())[-max(1, min(limit, self.max_traces)):]
            newest = [(format(key, "032x"), list(spans)) for key, spans in items]
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
_sampler: StudioSampler | None = None
"""Set when the collector installed the provider itself: then its sampler is Studio's."""
_install_lock = threading.Lock()


def install_collector(trace_sample: float | None = None) -> SpanCollector:
    """The process's collector, added to the global tracer provider on first use (an SDK provider
    is installed when there is none yet, so spans are recorded at all, sampled by `StudioSampler`
    at `trace_sample`: None keeps the ratio set last, `DEFAULT_TRACE_SAMPLE` at first)."""
    global _installed, _sampler
    with _install_lock:
        if _installed is None:
            collector = SpanCollector()
            provider = trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                sampler = StudioSampler(DEFAULT_TRACE_SAMPLE if trace_sample is None else trace_sample)
                trace.set_tracer_provider(TracerProvider(
                    sampler=sampler, resource=Resource.create({"service.name": "mcp-workbench"})))
                provider = trace.get_tracer_provider()  # another thread may have won the one-time set
                if isinstance(provider, TracerProvider) and provider.sampler is sampler:
                    _sampler = sampler
            if isinstance(provider, TracerProvider):
                provider.add_span_processor(collector)
            _installed = collector
        elif trace_sample is not None and _sampler is not None:
            _sampler.set_ratio(trace_sample)
        return _installed


def sampling_policy() -> str:
    """Which traces are recorded, in a sentence: for the Traces page."""
    if _sampler is None or _sampler.user is not None:
        return "Which traces are recorded is up to the tracer's sampler (OTEL_TRACES_SAMPLER, or your code's)."
    return (f"Recorded: runs started here, calls whose traceparent is sampled, and {_sampler.ratio:.0%} of the "
            f"other served calls ([serve] trace_sample = {_sampler.ratio:g}; 1.0 records them all).")


def sampling_note() -> str:
    """Why a run's trace may not have been recorded, and how to have it recorded: for its page."""
    if _sampler is None or _sampler.user is not None:
        return ("its spans were not recorded: the tracer's sampler (OTEL_TRACES_SAMPLER, or the provider your "
                "code installed) left this trace out, or no tracer was installed when it ran (served over stdio). "
                "Set OTEL_TRACES_SAMPLER=parentbased_always_on to record every trace.")
    return (f"its spans were not recorded: Studio records every run started from its own pages, every call whose "
            f"traceparent is sampled, and {_sampler.ratio:.0%} of the other calls ([serve] trace_sample = "
            f"{_sampler.ratio:g}). Set trace_sample = 1.0 in workbench.toml to record them all, or send a "
            "sampled traceparent with the calls you want to see. (A call served over stdio, where Studio does not "
            "run, has no spans at all.)")
