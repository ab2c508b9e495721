// The Traces page: the OpenTelemetry spans this server collected in memory, one trace as a
// waterfall (each span a row, indented under its parent, its bar placed on the trace's time
// axis). Bars are positioned through the CSSOM (element.style), which the page's CSP allows;
// inline style attributes it would refuse.
import { api, h, notice, registerPage } from "/ui/static/studio.js";
import { duration, show, statusBadge } from "/ui/static/runs.js";

registerPage("/ui/traces", async (ctx) => {
  const [id] = ctx.rest;
  if (id) return drawTrace(ctx, id);
  return drawList(ctx);
}, { title: "Traces" });

async function drawList(ctx) {
  const { traces, sampling } = await api("traces?limit=200", { signal: ctx.signal });
  show(ctx.root, h("h1", {}, "Traces"),
    h("p", { class: "muted" }, "Spans collected in this server process (newest first; kept in memory, not across restarts). ",
      "Open a run to jump to its trace."),
    h("p", { class: "muted sampling" }, sampling),
    traces.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["Root span", "Started", "Duration", "Spans", "Errors", "Trace id"].map((t) => h("th", {}, t)))),
        h("tbody", {}, traces.map((t) => h("tr", {},
          h("td", {}, h("a", { href: `/ui/traces/${t.trace_id}` }, t.name)),
          h("td", { class: "nowrap" }, new Date(t.start_ms).toLocaleString()),
          h("td", { class: "num" }, duration(t.duration_ms)),
          h("td", { class: "num" }, t.spans),
          h("td", { class: "num" }, t.errors ? h("span", { class: "badge error" }, t.errors) : "0"),
          h("td", { class: "mono small" }, t.trace_id)))))
      : h("p", { class: "muted" }, "No spans yet: call a tool or run an agent."));
}

/** Spans in waterfall order: each parent followed by its children by start time; spans whose
 * parent is not here (the caller's, or dropped) are roots. */
function ordered(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && byId.has(s.parent_id)) {
      if (!children.has(s.parent_id)) children.set(s.parent_id, []);
      children.get(s.parent_id).push(s);
    } else roots.push(s);
  }
  const out = [];
  const visit = (span, depth) => {
    out.push({ span, depth });
    for (const child of (children.get(span.span_id) || []).sort((a, b) => a.start_ms - b.start_ms)) visit(child, depth + 1);
  };
  for (const root of roots.sort((a, b) => a.start_ms - b.start_ms)) visit(root, 0);
  return out;
}

function details(span) {
  return h("div", { class: "span-details" },
    h("h2", {}, span.name),
    h("p", {}, statusBadge(span.status), " ", h("span", { class: "badge" }, span.kind), " ",
      h("span", { class: "muted" }, `${duration(span.duration_ms)} · span ${span.span_id}`),
      span.remote_parent ? h("span", { class: "muted" }, ` · parent ${span.parent_id} is in the caller's process`) : null),
    span.status_message ? h("p", { class: "notice error" }, span.status_message) : null,
    h("details", { class: "json", open: true }, h("summary", {}, "Attributes"), h("pre", {}, JSON.stringify(span.attributes, null, 2))),
    span.events.length
      ? h("details", { class: "json" }, h("summary", {}, `Events (${span.events.length})`), h("pre", {}, JSON.stringify(span.events, null, 2)))
      : null);
}

async function drawTrace(ctx, id) {
  const trace = await api(`traces/${encodeURIComponent(id)}`, { signal: ctx.signal });
  const rows = ordered(trace.spans);
  const start = Math.min(...trace.spans.map((s) => s.start_ms));
  const end = Math.max(...trace.spans.map((s) => s.start_ms + s.duration_ms));
  const total = Math.max(end - start, 0.001);
  const side = h("aside", { class: "panel span-panel", "aria-live": "polite" }, h("p", { class: "muted" }, "Pick a span to see its attributes."));
  const buttons = [];
  const select = (index) => {
    buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(i === index)));
    side.replaceChildren(details(rows[index].span));
  };
  const list = h("ol", { class: "waterfall", "aria-label": "Spans" }, rows.map(({ span, depth }, index) => {
    const bar = h("span", { class: `bar ${span.status === "error" ? "error" : ""} kind-${span.kind}` });
    bar.style.left = `${((span.start_ms - start) / total) * 100}%`;
    bar.style.width = `${Math.max((span.duration_ms / total) * 100, 0.4)}%`;
    const name = h("span", { class: "span-name" }, span.name);
    name.style.paddingLeft = `${depth * 1.1}rem`;
    const button = h("button", { type: "button", class: "span-row", "aria-pressed": "false", "data-depth": depth,
      "data-span": span.name, onclick: () => select(index),
      onkeydown: (e) => {
        if (e.key === "ArrowDown") { e.preventDefault(); buttons[index + 1]?.focus(); }
        if (e.key === "ArrowUp") { e.preventDefault(); buttons[index - 1]?.focus(); }
      } },
      name, h("span", { class: "track" }, bar), h("span", { class: "span-duration num" }, duration(span.duration_ms)));
    buttons.push(button);
    return h("li", {}, button);
  }));
  show(ctx.root, 
    h("p", {}, h("a", { href: "/ui/traces" }, "← All traces")),
    h("h1", {}, `Trace ${trace.trace_id}`),
    h("p", { class: "muted" }, `${trace.spans.length} spans over ${duration(total)}`,
      trace.dropped_spans ? ` (${trace.dropped_spans} more were dropped: the per-trace limit)` : "",
      trace.runs.length ? " · runs: " : "",
      trace.runs.map((r, i) => [i ? ", " : "", h("a", { href: `/ui/runs/${r.id}` }, `${r.kind} ${r.name}`)])),
    trace.spans.some((s) => s.remote_parent)
      ? notice("The first span's parent is in the caller's process: this trace id came with the request (traceparent).")
      : null,
    h("div", { class: "trace-layout" }, h("div", { class: "panel" },
      h("div", { class: "waterfall-head muted" }, h("span", {}, "Span"), h("span", {}, "Timeline"), h("span", {}, "Duration")),
      list), side));
  if (rows.length) select(0);
}
