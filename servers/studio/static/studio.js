// Studio's core: the router, the `api()` / `sse()` fetch helpers and the `h()` DOM helper.
// Every page is a module that calls `registerPage(prefix, render)`; the server returns the same
// shell for every page URL, so links, bookmarks and reloads work, and this router renders by path.
// No framework and no build step: plain ES modules the package serves as they are.

const pages = [];
// Each page's module, loaded when one of its URLs is first shown (it calls registerPage): the
// shell loads only this file, so a page costs nothing until it is visited.
const PAGE_MODULES = {
  "/ui/tools": "/ui/static/tools.js",
  "/ui/playground": "/ui/static/playground.js",
  "/ui/runs": "/ui/static/runs.js",
  "/ui/traces": "/ui/static/traces.js",
  "/ui/sandboxes": "/ui/static/sandboxes.js",
  "/ui/health": "/ui/static/health.js",
};
const loading = new Map(); // module URL -> its import() promise
let current = null; // {controller} of the page on screen: aborted when another page renders
let started = false; // DOMContentLoaded fired: every page module in the shell has registered

/** Register a page: `render(ctx)` draws into `ctx.root` for every path starting with `prefix`.
 * ctx = {root, path, rest (the path after the prefix, decoded segments), query, signal}.
 * `signal` aborts when the user leaves the page: pass it to api()/sse() so nothing outlives it. */
export function registerPage(prefix, render, { title = "" } = {}) {
  pages.push({ prefix, render, title });
  pages.sort((a, b) => b.prefix.length - a.prefix.length); // the longest prefix wins
  if (started) route(); // a page registered late (loaded on demand): show it if it is the one asked for
}

/** Build a DOM element. attrs: class, style (string), on<event> (functions), dataset keys as
 * data-*, anything else as an attribute; `true` sets a boolean attribute, null/false skips it.
 * Children: nodes, strings (always text, never HTML), numbers, arrays; null/undefined/false skip. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked" && "checked" in el) el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Replace `el`'s children, with h()'s rules for children (arrays flattened, null skipped). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Error of an API call: `status` is the HTTP status, `message` what the server said. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function csrfToken() {
  return document.querySelector('meta[name="studio-csrf"]')?.content || "";
}

function request(path, { method = "GET", body, signal, headers = {} } = {}) {
  const init = { method, signal, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET" && method !== "HEAD") init.headers["X-Studio-CSRF"] = csrfToken();
  if (body instanceof FormData || body instanceof Blob) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  return fetch(`/ui/api/${path.replace(/^\//, "")}`, init);
}

async function failure(response) {
  if (response.status === 401) { // the session ended: log in again, then come back here
    location.assign(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  let message = `${response.status} ${response.statusText}`;
  try {
    const data = await response.json();
    // A JSON-RPC error object where the rate limit answers (servers.rate_limit.RequestGate).
    message = data.error_description || data.error?.message || data.error || message;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message);
}

/** JSON API call under /ui/api/: `api("tools")`, `api("runs/1", {method: "DELETE"})`.
 * Resolves to the parsed JSON (or null for 204); rejects with ApiError. */
export async function api(path, options = {}) {
  const response = await request(path, options);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

/** POST to a Server-Sent Events endpoint and call `onEvent(event, data)` for each event (data is
 * parsed JSON). Resolves when the stream ends; aborting `signal` closes the stream, which is how
 * the server learns to cancel (e.g. a running tool call). */
export async function sse(path, { body, signal, onEvent, method = "POST" }) {
  const response = await request(path, { method, body, signal, headers: { Accept: "text/event-stream" } });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

/** Navigate inside Studio without a reload. */
export function navigate(url, { replace = false } = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", url);
  route();
}

/** A small status line: `notice(root, "Saved")`, `notice(root, err, "error")`. */
export function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, String(text?.message ?? text));
}

function splitPath(path, prefix) {
  return path.slice(prefix.length).split("/").filter(Boolean).map(decodeURIComponent);
}

export function route() {
  const root = document.getElementById("page");
  if (!root) return;
  const path = location.pathname.replace(/\/+$/, "") || "/ui";
  const target = path === "/ui" ? "/ui/tools" : path;
  const page = pages.find((p) => target === p.prefix || target.startsWith(p.prefix + "/"));
  const module = Object.entries(PAGE_MODULES).find(([prefix]) => target === prefix || target.startsWith(prefix + "/"));
  if (!page && module && !loading.has(module[1])) {
    const load = import(module[1]);
    loading.set(module[1], load);
    load.then(route, (e) => root.replaceChildren(notice(`Cannot load this page: ${e.message}`, "error")));
    return;
  }
  if (current) current.controller.abort();
  const controller = new AbortController();
  current = { controller };
  for (const link of document.querySelectorAll("nav.site a")) {
    const here = target === link.pathname || target.startsWith(link.pathname + "/");
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  root.replaceChildren();
  if (!page) {
    root.append(h("h1", {}, "Not found"), notice(`Nothing at ${path}.`, "error"));
    return;
  }
  document.title = `${page.title || page.prefix.split("/").pop()} · Workbench Studio`;
  const ctx = { root, path: target, rest: splitPath(target, page.prefix), query: new URLSearchParams(location.search),
                signal: controller.signal };
  Promise.resolve()
    .then(() => page.render(ctx))
    .catch((e) => {
      if (e?.name === "AbortError") return;
      root.append(notice(e, "error"));
    });
}

// Links inside Studio change the page without a reload; modified clicks keep the browser's behaviour.
document.addEventListener("click", (e) => {
  const link = e.target.closest?.("a[href]");
  if (!link || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (link.origin !== location.origin || !link.pathname.startsWith("/ui/") || link.target || link.hasAttribute("download")) return;
  if (link.pathname.startsWith("/ui/api/") || link.pathname.startsWith("/ui/static/") || link.pathname === "/ui/login") return;
  e.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener("popstate", route);

// "/" focuses the page's search box (like GitHub and MDN); Escape leaves it.
document.addEventListener("keydown", (e) => {
  const typing = e.target.closest?.("input, textarea, select, [contenteditable]");
  if (e.key === "/" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    const search = document.querySelector("[data-search]");
    if (search) {
      e.preventDefault();
      search.focus();
      search.select?.();
    }
  } else if (e.key === "Escape" && e.target.matches?.("[data-search]")) {
    e.target.blur();
  }
});

// Module scripts run before DOMContentLoaded, in order: by then every page in the shell has registered.
function start() {
  started = true;
  route();
}
if (document.readyState === "complete") start();
else document.addEventListener("DOMContentLoaded", start);
