// The Tools page: every source with its health, every tool; a form from the tool's input schema,
// the call streamed (progress, then the result rendered as a client sees it), cancellable.
import { api, fill, h, navigate, notice, registerPage, sse } from "/ui/static/studio.js";
import { fieldFor } from "/ui/static/form.js";
import { renderResult } from "/ui/static/result.js";

let catalog = null; // {tools, sources}, kept while moving between tools; reloaded on /ui/tools
let filterText = ""; // the list's filter, kept while moving between tools

registerPage("/ui/tools", async (ctx) => {
  const [name] = ctx.rest;
  if (!catalog || !name) catalog = await api("tools", { signal: ctx.signal });
  const list = h("nav", { class: "tool-list", "aria-label": "Tools" });
  const detail = h("section", { class: "tool-detail", "aria-live": "polite" });
  const search = h("input", {
    type: "search", placeholder: "Filter tools  ( / )", "aria-label": "Filter tools", "data-search": true,
    value: ctx.query.get("q") ?? filterText,
    oninput: () => { filterText = search.value; drawList(list, search.value, name); },
    onkeydown: (e) => {
      if (e.key === "Enter") list.querySelector("a")?.click();
    },
  });
  const reload = h("button", { class: "quiet", type: "button", onclick: () => { catalog = null; navigate(location.pathname); } },
    "Reload");
  ctx.root.append(
    h("div", { class: "split" },
      h("div", {}, h("div", { class: "toolbar" }, search, reload), list),
      detail,
    ),
  );
  drawList(list, search.value, name);
  if (!name) {
    detail.append(h("h1", {}, "Tools"), summary());
    return;
  }
  const tool = catalog.tools.find((t) => t.name === name);
  if (!tool) {
    detail.append(h("h1", {}, name), notice(`No tool named ${name} is served here (was it renamed, or is its source down?).`, "error"));
    return;
  }
  document.title = `${name} · Tools · Workbench Studio`;
  drawTool(detail, tool, ctx.signal);
}, { title: "Tools" });

function summary() {
  const counts = {};
  for (const t of catalog.tools) counts[t.source] = (counts[t.source] || 0) + 1;
  const rows = Object.entries(catalog.sources).map(([key, s]) => h("tr", {},
    h("td", {}, key), h("td", {}, h("span", { class: `badge ${s.state}` }, s.state)),
    h("td", { class: "num" }, counts[key] || 0), h("td", { class: "muted" }, s.detail || "")));
  return h("div", {},
    h("p", { class: "muted" }, `${catalog.tools.length} tools from ${Object.keys(catalog.sources).length} sources. `,
      "Pick one to call it."),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "source"), h("th", {}, "state"), h("th", {}, "tools"),
      h("th", {}, "detail"))), h("tbody", {}, rows)));
}

function firstLine(text) {
  return (text || "").trim().split(/\n\s*\n/)[0].replace(/\s+/g, " ");
}

function drawList(list, filter, selected) {
  const needle = filter.trim().toLowerCase();
  const bySource = new Map(Object.keys(catalog.sources).map((k) => [k, []]));
  for (const tool of catalog.tools) {
    const text = `${tool.name} ${tool.title || ""} ${tool.description || ""}`.toLowerCase();
    if (needle && !text.includes(needle)) continue;
    if (!bySource.has(tool.source)) bySource.set(tool.source, []);
    bySource.get(tool.source).push(tool);
  }
  const groups = [];
  for (const [source, tools] of bySource) {
    const health = catalog.sources[source];
    if (!tools.length && (needle || !health)) continue;
    groups.push(h("div", { class: "source" }, source,
      health ? h("span", { class: `badge ${health.state}`, title: health.detail || health.state }, health.state) : null));
    if (health && health.state !== "up" && health.detail) groups.push(h("div", { class: "detail" }, health.detail));
    groups.push(h("ul", { role: "list" }, tools.map((tool) => h("li", {},
      h("a", { href: `/ui/tools/${encodeURIComponent(tool.name)}`, "aria-current": tool.name === selected ? "page" : null },
        tool.name, h("span", { class: "summary" }, firstLine(tool.title || tool.description)))))));
  }
  list.replaceChildren(...(groups.length ? groups : [h("p", { class: "muted" }, "No tool matches.")]));
}

function annotationBadges(tool) {
  const a = tool.annotations || {};
  const out = [];
  if (a.readOnlyHint) out.push(h("span", { class: "badge" }, "read-only"));
  if (a.destructiveHint) out.push(h("span", { class: "badge warn" }, "destructive"));
  if (a.idempotentHint) out.push(h("span", { class: "badge" }, "idempotent"));
  if (a.openWorldHint) out.push(h("span", { class: "badge" }, "open world"));
  return out;
}

/** A question the call asks the person (the policy's approval, or a tool's own form elicitation):
 * a yes/no question gets Approve and Deny; any other form is filled in, submitted or declined. */
function question(q) {
  const props = Object.entries(q.schema?.properties || {});
  const yesNo = props.length === 1 && props[0][1].type === "boolean" ? props[0][0] : null;
  const form = yesNo ? null : fieldFor(q.schema || { type: "object" }, { schema: q.schema, root: q.schema, top: true });
  const said = h("p", { class: "muted", role: "status" });
  const buttons = [];
  const answer = async (action, content) => {
    for (const b of buttons) b.disabled = true;
    try {
      await api(`questions/${encodeURIComponent(q.id)}`, { method: "POST", body: { action, content } });
      said.textContent = action === "accept" ? (yesNo ? "Approved." : "Answered.") : "Declined.";
    } catch (err) {
      said.replaceChildren(notice(err, "error"));
    }
  };
  const ok = yesNo
    ? h("button", { type: "button", onclick: () => answer("accept", { [yesNo]: true }) }, "Approve")
    : h("button", { type: "button", onclick: () => {
      let content;
      try { content = form.get() ?? {}; } catch (err) { said.replaceChildren(notice(err, "error")); return; }
      answer("accept", content);
    } }, "Submit");
  const no = h("button", { type: "button", class: "danger", onclick: () => answer("decline") }, yesNo ? "Deny" : "Decline");
  buttons.push(ok, no);
  return h("div", { class: "question panel", role: "group", "aria-label": "Question from the call" },
    h("p", { class: "result-title" }, "The call asks"), h("p", {}, q.message),
    form ? form.el : null, h("div", { class: "toolbar" }, ok, no), said);
}

function drawTool(root, tool, pageSignal) {
  const schema = tool.inputSchema || { type: "object" };
  const form = fieldFor(schema, { name: "", schema, root: schema, top: true });
  const jsonBox = h("textarea", { class: "json-args", "aria-label": "Arguments as JSON", rows: 8, hidden: true });
  let asJson = false;
  const toggle = h("button", { type: "button", class: "quiet", "aria-pressed": "false", onclick: () => {
    try {
      if (!asJson) {
        let current = {};
        try { current = form.get() ?? {}; } catch { /* a half-filled form: start the JSON from scratch */ }
        jsonBox.value = JSON.stringify(current, null, 2);
      } else form.set(JSON.parse(jsonBox.value || "{}"));
    } catch (e) {
      status.replaceChildren(notice(e, "error"));
      return;
    }
    asJson = !asJson;
    toggle.setAttribute("aria-pressed", String(asJson));
    toggle.textContent = asJson ? "Edit as form" : "Edit as JSON";
    form.el.hidden = asJson;
    jsonBox.hidden = !asJson;
  } }, "Edit as JSON");
  const callButton = h("button", { type: "submit" }, "Call");
  const cancelButton = h("button", { type: "button", class: "danger", disabled: true }, "Cancel");
  const status = h("div", { class: "progress", role: "status" });
  const result = h("div", { class: "result panel", "aria-label": "Result" }, h("p", { class: "muted" }, "The result appears here."));
  let running = null;

  cancelButton.addEventListener("click", () => running?.abort());
  pageSignal.addEventListener("abort", () => running?.abort());

  const onSubmit = async (e) => {
    e.preventDefault();
    let args;
    try {
      args = asJson ? JSON.parse(jsonBox.value || "{}") : (form.get() ?? {});
      if (typeof args !== "object" || Array.isArray(args) || args === null) throw new Error("the arguments must be a JSON object");
    } catch (err) {
      status.replaceChildren(notice(err, "error"));
      return;
    }
    running = new AbortController();
    callButton.disabled = true;
    cancelButton.disabled = false;
    const started = performance.now();
    const bar = h("progress", { "aria-label": "Progress" });
    const words = h("span", { class: "muted" }, "Running…");
    const logs = h("div", { class: "logs" });
    status.replaceChildren(bar, words);
    result.className = "result panel running";
    result.replaceChildren(h("p", { class: "muted" }, `Calling ${tool.name}…`), logs);
    let finished = false;
    try {
      await sse(`tools/${encodeURIComponent(tool.name)}/call`, {
        body: { arguments: args },
        signal: running.signal,
        onEvent: (event, data) => {
          if (event === "progress") {
            if (data.total) { bar.max = data.total; bar.value = data.progress; } else bar.removeAttribute("value");
            words.textContent = `${data.progress}${data.total ? ` / ${data.total}` : ""}${data.message ? ` — ${data.message}` : ""}`;
          } else if (event === "question") {
            result.append(question(data));
          } else if (event === "log") {
            logs.append(h("div", { class: "mono muted" }, `[${data.level}] ${typeof data.data === "string" ? data.data : JSON.stringify(data.data)}`));
          } else if (event === "result") {
            finished = true;
            status.replaceChildren(h("span", { class: "muted" }, `Finished in ${Math.round(data.duration_ms)} ms`));
            renderResult(result, data.result);
          } else if (event === "error") {
            finished = true;
            status.replaceChildren();
            result.className = "result panel is-error";
            result.replaceChildren(h("p", { class: "result-title" }, "Error"), h("pre", {}, data.message));
          }
        },
      });
      if (!finished) throw new Error("the stream ended without a result (did the server stop?)");
    } catch (err) {
      if (err.name === "AbortError") {
        status.replaceChildren(h("span", { class: "muted" }, `Cancelled after ${Math.round(performance.now() - started)} ms`));
        result.className = "result panel";
        result.replaceChildren(h("p", { class: "muted" }, "The call was cancelled."));
      } else {
        status.replaceChildren(notice(err, "error"));
      }
    } finally {
      running = null;
      callButton.disabled = false;
      cancelButton.disabled = true;
    }
  };

  fill(root,
    h("h1", {}, tool.title && tool.title !== tool.name ? `${tool.title} ` : "", h("code", {}, tool.name)),
    h("p", { class: "toolbar" }, h("span", { class: "badge" }, tool.source), annotationBadges(tool)),
    tool.description ? h("p", { class: "description" }, tool.description) : null,
    h("form", { class: "panel call-form", onsubmit: onSubmit, novalidate: true },
      form.el, jsonBox,
      h("div", { class: "toolbar" }, callButton, cancelButton, toggle)),
    status,
    result,
    h("details", { class: "json" }, h("summary", {}, "Input schema"), h("pre", {}, JSON.stringify(schema, null, 2))),
    tool.outputSchema ? h("details", { class: "json" }, h("summary", {}, "Output schema"),
      h("pre", {}, JSON.stringify(tool.outputSchema, null, 2))) : null,
  );
}
