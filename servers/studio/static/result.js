// A tool result rendered as an MCP client receives it: text, images shown, audio playable,
// resource links followable (read through Studio), embedded resources, structured content as
// collapsible JSON, isError in red. Everything from the result is untrusted: it becomes text
// nodes and data: URLs of media elements only, never HTML.
import { api, fill, h, notice } from "/ui/static/studio.js";

const MEDIA = /^(image|audio)\/[\w.+-]+$/i;

function json(value, { open = true, label = "Structured content" } = {}) {
  return h("details", { class: "json", open }, h("summary", {}, label), h("pre", {}, JSON.stringify(value, null, 2)));
}

function dataUrl(mime, base64) {
  // The type decides how the browser reads the bytes; only media types reach a media element.
  return `data:${MEDIA.test(mime || "") ? mime : "application/octet-stream"};base64,${base64}`;
}

function download(name, mime, base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  // Served as bytes to save, never as a page of this origin.
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  return h("a", { href: url, download: name || "resource", class: "button quiet" }, `Download ${name || "resource"} (${mime || "bytes"}, ${bytes.length} bytes)`);
}

function kind(label, ...body) {
  return h("div", { class: "block" }, h("div", { class: "block-kind" }, label), body);
}

function resourceContents(res) {
  const name = (res.uri || "").split("/").pop();
  if (typeof res.text === "string") {
    return kind(`resource ${res.uri}${res.mimeType ? ` · ${res.mimeType}` : ""}`, h("pre", {}, res.text));
  }
  if (typeof res.blob === "string") {
    if (/^image\//i.test(res.mimeType || "")) return kind(`resource ${res.uri}`, h("img", { src: dataUrl(res.mimeType, res.blob), alt: res.uri }));
    if (/^audio\//i.test(res.mimeType || "")) return kind(`resource ${res.uri}`, h("audio", { controls: true, src: dataUrl(res.mimeType, res.blob) }));
    if (/^(text\/|application\/json)/i.test(res.mimeType || "")) { // text sent as bytes: shown as text, still downloadable
      const text = new TextDecoder().decode(Uint8Array.from(atob(res.blob), (c) => c.charCodeAt(0)));
      return kind(`resource ${res.uri} · ${res.mimeType}`, h("pre", {}, text), download(name, res.mimeType, res.blob));
    }
    return kind(`resource ${res.uri}`, download(name, res.mimeType, res.blob));
  }
  return kind(`resource ${res.uri}`, json(res, { label: "contents" }));
}

function resourceLink(block) {
  const target = h("div", { class: "resource-target" });
  const web = /^https?:\/\//i.test(block.uri);
  const open = web
    ? h("a", { href: block.uri, target: "_blank", rel: "noopener noreferrer" }, block.name || block.uri)
    : h("a", { href: `#${encodeURIComponent(block.uri)}`, onclick: async (e) => {
      e.preventDefault();
      target.replaceChildren(h("p", { class: "muted" }, `Reading ${block.uri}…`));
      try {
        const read = await api(`resource?uri=${encodeURIComponent(block.uri)}`);
        fill(target, (read.contents || []).map(resourceContents));
      } catch (err) {
        target.replaceChildren(notice(err, "error"));
      }
    } }, block.name || block.uri);
  return kind("resource link", h("div", {}, open, " ", h("code", { class: "muted" }, block.uri),
    block.mimeType ? h("span", { class: "badge" }, block.mimeType) : null),
    block.description ? h("p", { class: "muted" }, block.description) : null, target);
}

function contentBlock(block) {
  switch (block.type) {
    case "text":
      return kind("text", h("pre", {}, block.text));
    case "image":
      return kind(`image · ${block.mimeType}`, h("img", { src: dataUrl(block.mimeType, block.data), alt: "image returned by the tool" }));
    case "audio":
      return kind(`audio · ${block.mimeType}`, h("audio", { controls: true, src: dataUrl(block.mimeType, block.data) }));
    case "resource_link":
      return resourceLink(block);
    case "resource":
      return resourceContents(block.resource || {});
    default:
      return kind(block.type || "content", json(block, { label: "block" }));
  }
}

/** Render `result` (an MCP CallToolResult as JSON) into `container`. */
export function renderResult(container, result) {
  const isError = Boolean(result.isError);
  container.className = `result panel${isError ? " is-error" : ""}`;
  const blocks = (result.content || []).map(contentBlock);
  fill(container,
    h("p", { class: "result-title" }, isError ? "Error" : "Result",
      h("span", { class: "muted" }, `${(result.content || []).length} content block${(result.content || []).length === 1 ? "" : "s"}`)),
    blocks,
    result.structuredContent !== undefined ? json(result.structuredContent) : null,
    !blocks.length && result.structuredContent === undefined ? h("p", { class: "muted" }, "(empty result)") : null,
  );
}
