// Health & config: the server and each source (refreshed live), what `workbench doctor` checks,
// and the loaded config with secrets masked — with the config file's errors, by file, line and key.
import { api, fill, h, notice, registerPage } from "/ui/static/studio.js";

const REFRESH_MS = 5000;

registerPage("/ui/health", async (ctx) => {
  const status = h("section", { class: "panel health-status", "aria-labelledby": "health-status" });
  const checks = h("section", { class: "health-checks" });
  const config = h("section", { class: "health-config" });
  ctx.root.append(h("h1", {}, "Health & config"), status, checks, config);

  const drawStatus = async () => {
    try {
      fill(status, statusView(await api("health", { signal: ctx.signal })));
    } catch (e) {
      if (e.name !== "AbortError") fill(status, notice(e, "error"));
    }
  };
  await drawStatus();
  const timer = setInterval(drawStatus, REFRESH_MS);
  ctx.signal.addEventListener("abort", () => clearInterval(timer));

  runChecks(checks, ctx.signal, false);
  try {
    fill(config, configView(await api("config", { signal: ctx.signal })));
  } catch (e) {
    if (e.name !== "AbortError") fill(config, h("h2", {}, "Config"), notice(e, "error"));
  }
}, { title: "Health" });

function statusView(data) {
  const kind = data.status === "ready" ? "up" : data.status === "draining" ? "warn" : "down";
  return [
    h("h2", { id: "health-status" }, "Server ", h("span", { class: `badge ${kind}` }, data.status)),
    h("p", { class: "muted" }, `${data.sessions} client session${data.sessions === 1 ? "" : "s"}, `,
      `${data.inflight_calls} call${data.inflight_calls === 1 ? "" : "s"} running. Refreshed every ${REFRESH_MS / 1000} s.`),
    h("table", { "aria-label": "Sources" },
      h("thead", {}, h("tr", {}, h("th", {}, "source"), h("th", {}, "state"), h("th", {}, "detail"))),
      h("tbody", {}, Object.entries(data.sources).map(([name, s]) => h("tr", {},
        h("td", {}, name), h("td", {}, h("span", { class: `badge ${s.state}` }, s.state)),
        h("td", { class: s.state === "up" ? "muted" : "" }, s.detail || ""))))),
  ];
}

async function runChecks(root, signal, again) {
  const button = h("button", { type: "button", class: "quiet", onclick: () => runChecks(root, signal, true) }, "Run again");
  // The table's place is kept while the checks run (they start each MCP server once: seconds).
  fill(root, h("h2", {}, "Checks"), h("div", { class: "panel checks-body", "aria-busy": "true" },
    h("p", { class: "muted" }, "Running the doctor's checks (Docker, the sandbox image, every server and model)…")));
  button.disabled = true;
  try {
    const data = await api(`health/checks${again ? "?again=1" : ""}`, { signal });
    if (!data.available) {
      fill(root, h("h2", {}, "Checks"), notice("The doctor's checks are not available in this server (started without the CLI)."));
      return;
    }
    const failed = data.checks.filter((c) => !c.ok && c.required).length;
    fill(root,
      h("h2", {}, "Checks ", h("span", { class: `badge ${failed ? "down" : "up"}` }, failed ? `${failed} failed` : "all passed")),
      h("div", { class: "toolbar" }, button, h("span", { class: "muted" }, `ran at ${new Date(data.ran_at * 1000).toLocaleTimeString()}`)),
      h("table", { "aria-label": "Checks" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "check"), h("th", {}, "detail"), h("th", {}, "what to do"))),
        h("tbody", {}, data.checks.map((c) => h("tr", { class: c.ok ? "" : c.required ? "failed" : "warning" },
          h("td", {}, h("span", { class: `badge ${c.ok ? "up" : c.required ? "down" : "warn"}`,
            "aria-label": c.ok ? "passed" : c.required ? "failed" : "warning" }, c.ok ? "✓" : c.required ? "✗" : "!")),
          h("td", {}, c.name), h("td", {}, c.detail), h("td", { class: "muted" }, c.hint || ""))))));
  } catch (e) {
    if (e.name !== "AbortError") fill(root, h("h2", {}, "Checks"), notice(e, "error"), button);
  } finally {
    button.disabled = false;
  }
}

function configView(data) {
  if (!data.available) return [h("h2", {}, "Config"), notice("No config file: this server was configured in code.")];
  const error = data.error;
  return [
    h("h2", {}, "Config"),
    h("p", {}, "File: ", h("code", {}, data.path || "(none)")),
    error
      ? h("div", { class: "notice error config-error", role: "alert" },
        h("strong", {}, "The config file has an error now"), " — the next start would fail:",
        h("dl", { class: "where" },
          error.file ? [h("dt", {}, "file"), h("dd", {}, h("code", {}, error.file))] : null,
          error.line ? [h("dt", {}, "line"), h("dd", {}, String(error.line))] : null,
          error.key ? [h("dt", {}, "key"), h("dd", {}, h("code", {}, error.key))] : null,
          [h("dt", {}, "problem"), h("dd", {}, error.message)]))
      : h("p", { class: "muted" }, "The file is valid as it is now. Secrets are masked below."),
    h("details", { class: "json", open: true }, h("summary", {}, "Loaded config (secrets masked)"),
      h("pre", {}, JSON.stringify(data.config, null, 2))),
  ];
}
