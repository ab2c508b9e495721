// The Runs page: every served tool call and every agent/team run, newest first, from the
// server's SQLite run store; one run's timeline replayed event by event, exportable as JSON.
// `renderEvent` (one agent event: a message, tool calls, tool results) is shared with the Playground.
import { api, h, navigate, notice, registerPage } from "/ui/static/studio.js";

const KINDS = [["", "All runs"], ["tool", "Tool calls"], ["agent", "Agent runs"], ["team", "Team runs"]];

/** `root.append` without the "null" text nodes the DOM makes of absent (conditional) parts. */
export function show(root, ...nodes) {
  root.append(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}

export function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function statusBadge(status) {
  const tone = { ok: "up", error: "error", cancelled: "warn", running: "starting" }[status] || "";
  return h("span", { class: `badge ${tone}` }, status);
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function usageText(usage) {
  if (!usage || !(usage.input_tokens || usage.output_tokens)) return null;
  return h("span", { class: "usage muted" }, `${usage.input_tokens} in · ${usage.output_tokens} out tokens`);
}

function argumentsText(raw) {
  try {
    return JSON.stringify(JSON.parse(raw), null, 2);
  } catch {
    return raw; // the model's malformed JSON, shown as it came
  }
}

/** One agent event (TextMessage, ToolCallEvent, ToolResultEvent) as a card; anything else as JSON. */
export function renderEvent(data) {
  if (data.type === "text") {
    return h("article", { class: `event message${data.source === "user" ? " from-user" : ""}` },
      h("header", {}, h("span", { class: "source" }, data.source), usageText(data.usage)),
      h("pre", { class: "content" }, data.content));
  }
  if (data.type === "tool_calls") {
    return h("article", { class: "event tool-calls" },
      h("header", {}, h("span", { class: "source" }, data.source), h("span", { class: "block-kind" }, "tool call"),
        usageText(data.usage)),
      data.content ? h("pre", { class: "content" }, data.content) : null,
      (data.calls || []).map((call) => h("div", { class: "call" },
        h("code", { class: "tool-name" }, call.name), h("pre", {}, argumentsText(call.arguments)))));
  }
  if (data.type === "tool_results") {
    return h("article", { class: "event tool-results" },
      h("header", {}, h("span", { class: "source" }, data.source), h("span", { class: "block-kind" }, "tool result")),
      (data.results || []).map((r) => h("div", { class: `call${r.is_error ? " is-error" : ""}` },
        h("code", { class: "tool-name" }, r.name), r.is_error ? h("span", { class: "badge error" }, "error") : null,
        h("pre", {}, r.content))));
  }
  return h("article", { class: "event" }, h("header", {}, h("span", { class: "block-kind" }, data.type || "event")),
    h("pre", {}, pretty(data)));
}

/** A served tool call's events and outcome (arguments, progress, result preview). */
function renderToolEvent(event) {
  if (event.type === "progress") {
    const d = event.data;
    return h("div", { class: "event progress-event" }, h("span", { class: "block-kind" }, "progress"),
      ` ${d.progress}${d.total ? ` / ${d.total}` : ""} `, d.message ? h("span", { class: "muted" }, d.message) : null);
  }
  return h("div", { class: "event" }, h("span", { class: "block-kind" }, event.type), h("pre", {}, pretty(event.data)));
}

function renderToolOutput(output) {
  const blocks = (output.content || []).map((c) => {
    if (c.type === "text") return h("pre", {}, c.text);
    if (c.type === "resource_link") return h("p", {}, h("span", { class: "block-kind" }, "resource link "), h("code", {}, c.uri));
    if (c.type === "resource") return h("div", {}, h("span", { class: "block-kind" }, `resource ${c.uri}`), c.text ? h("pre", {}, c.text) : ` ${c.bytes} bytes`);
    return h("p", { class: "muted" }, `${c.type} · ${c.mime_type || ""} · ${c.bytes} bytes (not kept)`);
  });
  return h("div", { class: `panel result${output.is_error ? " is-error" : ""}` },
    h("div", { class: "result-title" }, output.is_error ? "Error result" : "Result"), blocks,
    output.structured !== null && output.structured !== undefined
      ? h("details", { class: "json", open: true }, h("summary", {}, "Structured content"), h("pre", {}, pretty(output.structured)))
      : null);
}

registerPage("/ui/runs", async (ctx) => {
  const [id] = ctx.rest;
  if (id) return drawRun(ctx, id);
  return drawList(ctx);
}, { title: "Runs" });

async function drawList(ctx) {
  const q = ctx.query.get("q") || "";
  const kind = ctx.query.get("kind") || "";
  const search = h("input", { type: "search", placeholder: "Filter by name, identity, session or status  ( / )",
    "aria-label": "Filter runs", "data-search": true, value: q });
  const kindSelect = h("select", { "aria-label": "Kind of run" },
    KINDS.map(([value, label]) => h("option", { value, selected: value === kind }, label)));
  const apply = () => {
    const params = new URLSearchParams();
    if (search.value) params.set("q", search.value);
    if (kindSelect.value) params.set("kind", kindSelect.value);
    navigate(`/ui/runs${params.toString() ? `?${params}` : ""}`, { replace: true });
  };
  const form = h("form", { class: "toolbar", role: "search", onsubmit: (e) => { e.preventDefault(); apply(); } },
    search, kindSelect, h("button", { type: "submit" }, "Filter"),
    h("button", { type: "button", class: "quiet", onclick: () => navigate(location.pathname + location.search) }, "Refresh"));
  kindSelect.addEventListener("change", apply);
  const body = h("tbody", {});
  const more = h("button", { type: "button", class: "quiet" }, "Older runs");
  const status = h("p", { class: "muted status-line", role: "status" });
  show(ctx.root, h("h1", {}, "Runs"),
    h("p", { class: "muted" }, "Every tool call this server answered (MCP clients and Studio) and every agent or team run from the Playground."),
    form,
    h("table", { class: "runs" }, h("thead", {}, h("tr", {}, ["Started", "Kind", "Name", "Status", "Duration", "Identity", "Session", "Events"]
      .map((label) => h("th", {}, label)))), body),
    h("div", { class: "toolbar" }, more, status));

  let before = null;
  const load = async () => {
    const params = new URLSearchParams({ limit: "100" });
    if (q) params.set("q", q);
    if (kind) params.set("kind", kind);
    if (before !== null) params.set("before", String(before));
    const { runs } = await api(`runs?${params}`, { signal: ctx.signal });
    for (const run of runs) {
      body.append(h("tr", {},
        h("td", { class: "nowrap" }, when(run.started)),
        h("td", {}, h("span", { class: "badge" }, run.kind)),
        h("td", {}, h("a", { href: `/ui/runs/${run.id}` }, run.name)),
        h("td", {}, statusBadge(run.status)),
        h("td", { class: "num" }, duration(run.duration_ms)),
        h("td", { class: "mono small" }, run.identity),
        h("td", { class: "mono small" }, run.session),
        h("td", { class: "num" }, run.events)));
    }
    if (runs.length) before = runs[runs.length - 1].started;
    more.disabled = runs.length < 100;
    status.textContent = body.children.length ? `${body.children.length} run${body.children.length === 1 ? "" : "s"} shown` : "No runs recorded yet.";
  };
  more.addEventListener("click", () => load().catch((e) => status.replaceWith(notice(e, "error"))));
  await load();
}

/** The run's trace id: a link to its waterfall, or, when its spans were sampled out, the id alone
 * (the notice under the facts says why and how to have such calls traced). */
function traceFact(run) {
  if (!run.trace_id) return h("span", { class: "muted" }, "none");
  if (run.trace_note) return [h("code", {}, run.trace_id), h("span", { class: "muted" }, " (not recorded)")];
  return h("a", { href: `/ui/traces/${run.trace_id}` }, run.trace_id);
}

async function drawRun(ctx, id) {
  const run = await api(`runs/${encodeURIComponent(id)}`, { signal: ctx.signal });
  document.title = `${run.name} · Runs · Workbench Studio`;
  const started = run.started;
  const facts = [
    ["Kind", run.kind], ["Status", statusBadge(run.status)], ["Started", when(started)],
    ["Duration", duration(run.duration_ms)], ["Identity", h("code", {}, run.identity)], ["Session", h("code", {}, run.session)],
    ["Trace", traceFact(run)],
  ];
  const timeline = h("ol", { class: "timeline" }, run.events.map((event) => h("li", {},
    h("span", { class: "at muted mono" }, `+${duration((event.at - started) * 1000)}`),
    run.kind === "tool" ? renderToolEvent(event) : renderEvent(event.data))));
  show(ctx.root, 
    h("p", {}, h("a", { href: "/ui/runs" }, "← All runs")),
    h("div", { class: "toolbar" }, h("h1", {}, run.name), statusBadge(run.status),
      h("a", { class: "button quiet", href: `/ui/api/runs/${run.id}/export`, download: `run-${run.id}.json` }, "Export JSON"),
      run.trace_id && !run.trace_note ? h("a", { class: "button quiet", href: `/ui/traces/${run.trace_id}` }, "Open trace") : null),
    h("table", { class: "facts" }, h("tbody", {}, facts.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))))),
    run.trace_note ? h("p", { class: "notice info trace-note", role: "status" }, `No trace to show: ${run.trace_note}`) : null,
    h("h2", {}, run.kind === "tool" ? "Arguments" : "Task"),
    h("pre", {}, run.kind === "tool" ? pretty(run.input.arguments ?? run.input) : (run.input.task || "(continued the conversation)")),
    h("h2", {}, `Timeline (${run.events.length} events)`),
    run.events.length ? timeline : h("p", { class: "muted" }, "No events."),
    run.error ? h("div", { class: "notice error", role: "alert" }, run.error) : null,
    run.output ? h("h2", {}, "Outcome") : null,
    run.output ? (run.kind === "tool" ? renderToolOutput(run.output) : h("div", { class: "panel" },
      h("pre", {}, run.output.text || ""), usageText(run.output.usage),
      run.output.stop_reason ? h("p", { class: "muted" }, `Stopped: ${run.output.stop_reason}`) : null)) : null,
  );
}
