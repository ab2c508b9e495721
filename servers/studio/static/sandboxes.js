// Sandboxes: the live sandbox sessions of your identity (age, memory, running or idle); a session's
// workspace files (browse folders, download, upload), reset and stop.
// URLs: /ui/sandboxes, /ui/sandboxes/<session>?path=<folder>
import { ApiError, api, fill, h, navigate, notice, registerPage } from "/ui/static/studio.js";

const REFRESH_MS = 5000;

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

const enc = encodeURIComponent;

registerPage("/ui/sandboxes", async (ctx) => {
  const [session] = ctx.rest;
  if (session) return drawSession(ctx, session);
  const body = h("div", { class: "sandboxes-body" }, h("p", { class: "muted" }, "Loading…"));
  ctx.root.append(h("h1", {}, "Sandboxes"), body);
  const draw = async () => {
    try {
      const data = await api("sandboxes", { signal: ctx.signal });
      fill(body, listView(data, draw));
    } catch (e) {
      if (e.name !== "AbortError") fill(body, notice(e, "error"));
    }
  };
  await draw();
  const timer = setInterval(draw, REFRESH_MS);
  ctx.signal.addEventListener("abort", () => clearInterval(timer));
}, { title: "Sandboxes" });

function listView(data, redraw) {
  if (!data.available) return notice("This server has no sandbox source ([sandbox] enabled = true in the config).");
  if (!data.sandboxes.length) {
    return h("p", { class: "muted" }, "No live sandbox session of yours. One starts with the first sandbox tool call ",
      "(from the Tools page, an agent or an MCP client with your token); idle ones are removed after a while.");
  }
  return [
    h("p", { class: "muted" }, `${data.sandboxes.length} live session${data.sandboxes.length === 1 ? "" : "s"} `,
      "of your identity. Refreshed every 5 s."),
    h("table", { "aria-label": "Sandbox sessions" },
      h("thead", {}, h("tr", {}, ["session", "state", "age", "idle", "memory", "container", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, data.sandboxes.map((s) => h("tr", {},
        h("td", {}, h("a", { href: `/ui/sandboxes/${enc(s.session)}` }, s.session), s.yours ? h("span", { class: "badge" }, "this browser") : null),
        h("td", {}, h("span", { class: `badge ${s.state === "running" ? "warn" : "up"}` }, s.state)),
        h("td", { class: "num" }, duration(s.age_seconds)),
        h("td", { class: "num" }, duration(s.idle_seconds)),
        h("td", { class: "num" }, s.memory ? `${bytes(s.memory.used)} / ${bytes(s.memory.limit)}` : "—"),
        h("td", {}, h("code", {}, s.container)),
        h("td", {}, stopButton(s.session, redraw)))))),
  ];
}

function stopButton(session, after) {
  return h("button", { type: "button", class: "danger", onclick: async (e) => {
    if (!confirm(`Stop sandbox ${session}? Its files and variables are lost.`)) return;
    e.target.disabled = true;
    try {
      await api(`sandboxes/${enc(session)}`, { method: "DELETE" });
    } catch (err) {
      alert(err.message);
    }
    after();
  } }, "Stop");
}

function parentOf(path) {
  if (path === "." || path === "/workspace" || !path.includes("/")) return ".";
  return path.replace(/\/[^/]*\/?$/, "") || ".";
}

function join(folder, name) {
  return folder === "." ? name : `${folder.replace(/\/$/, "")}/${name}`;
}

async function drawSession(ctx, session) {
  const folder = ctx.query.get("path") || ".";
  const status = h("div", { class: "progress", role: "status" });
  const listing = h("div", { class: "files-body" }, h("p", { class: "muted" }, "Loading…"));
  const here = (path) => `/ui/sandboxes/${enc(session)}${path === "." ? "" : `?path=${enc(path)}`}`;

  const fileInput = h("input", { type: "file", id: "upload-file", multiple: true });
  const upload = h("form", { class: "toolbar", onsubmit: async (e) => {
    e.preventDefault();
    for (const file of fileInput.files) {
      status.replaceChildren(h("span", { class: "muted" }, `Uploading ${file.name}…`));
      try {
        await api(`sandboxes/${enc(session)}/file?path=${enc(join(folder, file.name))}`, { method: "PUT", body: file });
      } catch (err) {
        status.replaceChildren(notice(err, "error"));
        return;
      }
    }
    status.replaceChildren(h("span", { class: "muted" }, `Uploaded ${fileInput.files.length} file(s).`));
    fileInput.value = "";
    draw();
  } }, h("label", { for: "upload-file" }, "Upload into this folder"), fileInput, h("button", { type: "submit" }, "Upload"));

  const reset = (clear) => async () => {
    if (clear && !confirm("Reset and empty the workspace? Every file is deleted.")) return;
    try {
      await api(`sandboxes/${enc(session)}/reset`, { method: "POST", body: { clear_files: clear } });
      status.replaceChildren(h("span", { class: "muted" }, clear ? "Reset; the workspace is empty." : "Reset: a fresh interpreter."));
      draw();
    } catch (err) {
      status.replaceChildren(notice(err, "error"));
    }
  };

  ctx.root.append(
    h("p", {}, h("a", { href: "/ui/sandboxes" }, "← Sandboxes")),
    h("h1", {}, "Sandbox ", h("code", {}, session)),
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "quiet", onclick: reset(false) }, "Reset interpreter"),
      h("button", { type: "button", class: "danger", onclick: reset(true) }, "Reset and empty workspace"),
      stopButton(session, () => navigate("/ui/sandboxes"))),
    upload, status,
    h("h2", {}, "Files in ", h("code", {}, folder === "." ? "/workspace" : folder)),
    listing,
  );

  async function draw() {
    try {
      const data = await api(`sandboxes/${enc(session)}/files?path=${enc(folder)}`, { signal: ctx.signal });
      const rows = data.entries.map((e) => {
        const path = join(folder, e.path);
        const name = e.type === "dir"
          ? h("a", { href: here(path) }, `${e.path}/`)
          : h("a", { href: `/ui/api/sandboxes/${enc(session)}/file?path=${enc(path)}`, download: e.path.split("/").pop() }, e.path);
        return h("tr", {}, h("td", {}, name), h("td", {}, e.type), h("td", { class: "num" }, e.type === "dir" ? "" : bytes(e.size)));
      });
      fill(listing,
        folder !== "." ? h("p", {}, h("a", { href: here(parentOf(folder)) }, "↑ Parent folder")) : null,
        rows.length
          ? h("table", { "aria-label": "Files" }, h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "type"), h("th", {}, "size"))),
            h("tbody", {}, rows))
          : h("p", { class: "muted" }, "This folder is empty."));
    } catch (e) {
      if (e.name === "AbortError") return;
      fill(listing, notice(e instanceof ApiError && e.status === 404 ? `${e.message}` : e, "error"),
        h("p", {}, h("a", { href: "/ui/sandboxes" }, "Back to the list")));
    }
  }
  await draw();
}
