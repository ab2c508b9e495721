// Forms generated from JSON Schema (a tool's inputSchema): objects, arrays, enums, defaults,
// optional values (anyOf with null), $ref into $defs. Each field is {el, get(), set(value)}:
// get() returns undefined for "leave it out", so optional fields left empty are not sent.
import { h } from "/ui/static/studio.js";

let ids = 0;
const MAX_DEPTH = 12; // a recursive schema ($ref to itself) stops here and becomes a JSON box

function resolve(schema, root, depth = 0) {
  let s = schema || {};
  while (s.$ref && depth < MAX_DEPTH) {
    const path = s.$ref.replace(/^#\//, "").split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    let target = root;
    for (const part of path) target = target?.[part];
    if (!target) break;
    const { $ref, ...rest } = s;
    s = { ...target, ...rest };
    depth++;
  }
  if (Array.isArray(s.allOf) && s.allOf.length === 1) s = { ...resolve(s.allOf[0], root, depth + 1), ...s, allOf: undefined };
  return s;
}

/** Optional[X] as pydantic writes it: anyOf [X, {type: null}] → X (nullable). */
function unwrapNullable(schema, root) {
  const variants = schema.anyOf || schema.oneOf;
  if (Array.isArray(variants)) {
    const rest = variants.filter((v) => resolve(v, root).type !== "null");
    if (rest.length === 1) {
      const { anyOf, oneOf, ...own } = schema;
      return { ...resolve(rest[0], root), ...own, nullable: true };
    }
  }
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((t) => t !== "null");
    if (types.length === 1) return { ...schema, type: types[0], nullable: schema.type.includes("null") };
  }
  return schema;
}

function kindOf(s) {
  if (Array.isArray(s.enum)) return "enum";
  if (s.const !== undefined) return "const";
  if (s.type === "object" || (!s.type && s.properties)) return s.properties ? "object" : "json";
  if (s.type === "array") return "array";
  if (s.type === "boolean") return "boolean";
  if (s.type === "integer" || s.type === "number") return "number";
  if (s.type === "string") return "string";
  return "json"; // anyOf of several shapes, or no type at all: the user writes JSON
}

function describe(s) {
  const text = s.description || "";
  const extra = [];
  if (s.minimum !== undefined) extra.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) extra.push(`≤ ${s.maximum}`);
  if (s.minLength !== undefined) extra.push(`at least ${s.minLength} characters`);
  if (s.maxLength !== undefined) extra.push(`at most ${s.maxLength} characters`);
  if (s.format) extra.push(s.format);
  return [text, extra.join(", ")].filter(Boolean).join(" — ");
}

function labelled(id, name, s, required, control) {
  const hint = describe(s);
  if (required && control.matches?.("input, select, textarea")) control.setAttribute("aria-required", "true");
  return h("div", { class: "field" },
    name ? h("label", { for: id }, s.title && s.title.toLowerCase() !== name.toLowerCase() ? `${name} (${s.title})` : name,
      required ? h("span", { class: "required", "aria-hidden": "true", title: "required" }, "*") : null) : null,
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    control);
}

const LONG_TEXT = /code|script|content|body|text|source|query|prompt|task|patch|diff|markdown|html|json|yaml/i;

/** A field for `schema`. opts: {name, root (the whole schema, for $ref), required, top, path}. */
export function fieldFor(rawSchema, { name = "", root, required = false, top = false, path = name, depth = 0 } = {}) {
  const s = unwrapNullable(resolve(rawSchema, root), root);
  const id = `f${++ids}`;
  const kind = depth > MAX_DEPTH ? "json" : kindOf(s);
  const hintRef = describe(s) ? `${id}-hint` : null;
  const where = path || "the arguments";

  if (kind === "object") {
    const need = new Set(s.required || []);
    const children = Object.entries(s.properties).map(([key, sub]) =>
      [key, fieldFor(sub, { name: key, root, required: need.has(key), path: path ? `${path}.${key}` : key, depth: depth + 1 })]);
    const body = children.map(([, f]) => f.el);
    const el = top
      ? h("div", { class: "fields" }, body.length ? body : h("p", { class: "muted" }, "This tool takes no arguments."))
      : h("fieldset", {}, name ? h("legend", {}, name, required ? h("span", { class: "required", "aria-hidden": "true" }, "*") : null) : null,
        describe(s) ? h("p", { class: "hint" }, describe(s)) : null, body);
    return {
      el,
      get() {
        const out = {};
        for (const [key, f] of children) {
          const v = f.get();
          if (v !== undefined) out[key] = v;
        }
        if (!top && !required && Object.keys(out).length === 0) return undefined;
        return out;
      },
      set(value) {
        for (const [key, f] of children) f.set(value?.[key]);
      },
    };
  }

  if (kind === "array") {
    const itemSchema = resolve(s.items || {}, root);
    if (Array.isArray(itemSchema.enum)) { // multi-select enum: a checkbox per value
      const boxes = itemSchema.enum.map((v) => h("input", { type: "checkbox", value: JSON.stringify(v), id: `${id}-${ids++}` }));
      const defaults = Array.isArray(s.default) ? s.default.map((v) => JSON.stringify(v)) : [];
      boxes.forEach((b) => { b.checked = defaults.includes(b.value); });
      return {
        el: labelled(id, name, s, required, h("div", { id, role: "group", "aria-describedby": hintRef },
          boxes.map((b, i) => h("label", { class: "inline", for: b.id }, b, ` ${String(itemSchema.enum[i])}`)))),
        get() {
          const picked = boxes.filter((b) => b.checked).map((b) => JSON.parse(b.value));
          return picked.length || required ? picked : undefined;
        },
        set(value) { boxes.forEach((b) => { b.checked = Array.isArray(value) && value.map((v) => JSON.stringify(v)).includes(b.value); }); },
      };
    }
    const items = [];
    const list = h("div", { class: "array", id });
    const add = (value) => {
      const field = fieldFor(s.items || {}, { name: "", root, required: true, path: `${where}[${items.length}]`, depth: depth + 1 });
      if (value !== undefined) field.set(value);
      const row = h("div", { class: "array-item" }, field.el,
        h("button", { type: "button", class: "quiet", "aria-label": `Remove item from ${name || "list"}`, onclick: () => {
          items.splice(items.indexOf(entry), 1);
          row.remove();
        } }, "Remove"));
      const entry = { field, row };
      items.push(entry);
      list.append(row);
      return field;
    };
    if (Array.isArray(s.default)) s.default.forEach((v) => add(v));
    const addButton = h("button", { type: "button", class: "quiet", onclick: () => add()?.el.querySelector("input, select, textarea")?.focus() },
      `Add ${name ? `to ${name}` : "item"}`);
    return {
      el: labelled(id, name, s, required, h("div", {}, list, addButton)),
      get() {
        const out = items.map((it) => it.field.get()).filter((v) => v !== undefined);
        return out.length || required ? out : undefined;
      },
      set(value) {
        items.splice(0).forEach((it) => it.row.remove());
        if (Array.isArray(value)) value.forEach((v) => add(v));
      },
    };
  }

  if (kind === "enum" || kind === "const") {
    const values = kind === "const" ? [s.const] : s.enum;
    const select = h("select", { id, "aria-describedby": hintRef },
      !required || s.default === undefined ? h("option", { value: "" }, required ? "— choose —" : "— leave out —") : null,
      values.map((v, i) => h("option", { value: String(i) }, String(v))));
    const set = (value) => {
      const i = values.findIndex((v) => JSON.stringify(v) === JSON.stringify(value));
      select.value = i >= 0 ? String(i) : "";
    };
    set(s.default);
    return {
      el: labelled(id, name, s, required, select),
      get() {
        if (select.value === "") {
          if (required) throw new Error(`${where}: choose a value`);
          return undefined;
        }
        return values[Number(select.value)];
      },
      set,
    };
  }

  if (kind === "boolean") {
    const box = h("input", { type: "checkbox", id, "aria-describedby": hintRef });
    box.checked = s.default === true;
    // An optional boolean without a default is only sent once touched: "unset" differs from false.
    let touched = required || s.default !== undefined;
    box.addEventListener("change", () => { touched = true; });
    return {
      el: labelled(id, name, s, required, h("div", {}, box)),
      get: () => (touched ? box.checked : undefined),
      set(value) { box.checked = value === true; touched = value !== undefined || required; },
    };
  }

  if (kind === "number") {
    const input = h("input", { type: "number", id, step: s.type === "integer" ? "1" : "any", "aria-describedby": hintRef,
      min: s.minimum ?? null, max: s.maximum ?? null, required: required || null });
    if (s.default !== undefined && s.default !== null) input.value = String(s.default);
    return {
      el: labelled(id, name, s, required, input),
      get() {
        if (input.value.trim() === "") {
          if (required) throw new Error(`${where}: enter a number`);
          return undefined;
        }
        const n = Number(input.value);
        if (!Number.isFinite(n) || (s.type === "integer" && !Number.isInteger(n))) {
          throw new Error(`${where}: ${input.value} is not ${s.type === "integer" ? "an integer" : "a number"}`);
        }
        return n;
      },
      set(value) { input.value = value === undefined || value === null ? "" : String(value); },
    };
  }

  if (kind === "string") {
    const long = LONG_TEXT.test(name) || (s.maxLength ?? 0) > 200 || s.format === "textarea";
    const input = long
      ? h("textarea", { id, rows: 6, spellcheck: "false", "aria-describedby": hintRef })
      : h("input", { type: s.format === "uri" ? "url" : s.format === "email" ? "email" : "text", id, "aria-describedby": hintRef });
    if (typeof s.default === "string") input.value = s.default;
    return {
      el: labelled(id, name, s, required, input),
      get() {
        if (input.value === "" && !required) return undefined;
        return input.value;
      },
      set(value) { input.value = value === undefined || value === null ? "" : String(value); },
    };
  }

  // Anything else (free-form objects, unions of shapes): JSON, checked when the call is made.
  const box = h("textarea", { id, rows: 4, spellcheck: "false", "aria-describedby": hintRef, placeholder: "JSON" });
  if (s.default !== undefined) box.value = JSON.stringify(s.default, null, 2);
  return {
    el: labelled(id, name, s, required, box),
    get() {
      if (box.value.trim() === "") {
        if (top) return {};
        if (required) throw new Error(`${where}: enter a JSON value`);
        return undefined;
      }
      try {
        return JSON.parse(box.value);
      } catch (e) {
        throw new Error(`${where}: not valid JSON (${e.message})`);
      }
    },
    set(value) { box.value = value === undefined ? "" : JSON.stringify(value, null, 2); },
  };
}
