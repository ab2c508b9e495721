// The Playground: pick an agent or a team, give it a task, watch the run stream — every
// message, tool call with its arguments, tool result (sandbox output), token usage. Stop it,
// continue the conversation with the next task, save its state to a file and load it back.
// The transcript only grows at its end inside a fixed scroll box, and the status line has
// its own reserved row, so nothing on the page jumps while a run streams.
import { api, h, notice, registerPage, sse } from "/ui/static/studio.js";
import { duration, renderEvent, show } from "/ui/static/runs.js";

let agents = null;

registerPage("/ui/playground", async (ctx) => {
  agents = agents || (await api("playground/agents", { signal: ctx.signal })).agents;
  if (!agents.length) {
    show(ctx.root, h("h1", {}, "Playground"), notice(
      "No agents or teams are configured (or none can run: an agent whose model has no API key or base_url is off). " +
      "Add [agents.NAME] to the config.", "error"));
    return;
  }
  let conversation = null; // the id once a run started or a state was loaded
  let running = null; // the AbortController of the streaming run
  const wanted = ctx.query.get("agent");
  const select = h("select", { id: "pg-agent", onchange: () => { describe(); reset(); } },
    agents.map((a) => h("option", { value: a.name, selected: a.name === wanted }, `${a.name} (${a.kind})`)));
  const description = h("p", { class: "muted description" });
  const task = h("textarea", { id: "pg-task", rows: 6, placeholder: "What to do. The executor runs fenced ```python and ```bash blocks. Ctrl+Enter runs.",
    onkeydown: (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); } } });
  const runButton = h("button", { type: "submit" }, "Run");
  const stopButton = h("button", { type: "button", class: "danger", disabled: true, onclick: () => stop() }, "Stop");
  const newButton = h("button", { type: "button", class: "quiet", onclick: () => reset() }, "New conversation");
  const saveButton = h("button", { type: "button", class: "quiet", disabled: true, onclick: () => save() }, "Save state");
  const loadInput = h("input", { type: "file", accept: "application/json,.json", id: "pg-load", class: "visually-hidden",
    onchange: () => load() });
  const loadLabel = h("label", { for: "pg-load", class: "button quiet file-button" }, "Load state…");
  const status = h("p", { class: "status-line", role: "status" }, "Ready.");
  const transcript = h("div", { class: "transcript", "aria-label": "Transcript", "aria-live": "polite", tabindex: "0" });
  const conversationLine = h("p", { class: "muted small conversation-line" }, "New conversation.");
  const form = h("form", { class: "panel", onsubmit: (e) => { e.preventDefault(); start(); } },
    h("div", { class: "field" }, h("label", { for: "pg-agent" }, "Agent or team"), select, description),
    h("div", { class: "field" }, h("label", { for: "pg-task" }, "Task"), task),
    h("div", { class: "toolbar" }, runButton, stopButton),
    h("div", { class: "toolbar" }, newButton, saveButton, loadInput, loadLabel),
    conversationLine);
  show(ctx.root, h("h1", {}, "Playground"),
    h("div", { class: "split playground" }, form, h("section", { class: "run-view" }, status, transcript)));

  function describe() {
    const a = agents.find((x) => x.name === select.value);
    description.textContent = [a.description, a.members.length ? `Members: ${a.members.join(", ")}.` : ""].filter(Boolean).join(" ");
  }
  function setRunning(on) {
    runButton.disabled = on;
    stopButton.disabled = !on;
    select.disabled = on;
    saveButton.disabled = on || !conversation;
  }
  function reset() {
    if (running) return;
    conversation = null;
    transcript.replaceChildren();
    conversationLine.textContent = "New conversation.";
    status.textContent = "Ready.";
    saveButton.disabled = true;
  }
  function add(node) {
    const atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
    transcript.append(node);
    if (atBottom) transcript.scrollTop = transcript.scrollHeight; // follow the run unless the user scrolled up
  }
  function setConversation(id, agent) {
    conversation = id;
    conversationLine.replaceChildren(`Conversation ${id.slice(0, 8)}… with ${agent}: the next task continues it.`);
  }

  async function start() {
    if (running) return;
    const text = task.value;
    if (!text.trim() && !conversation) {
      status.textContent = "Type a task first.";
      task.focus();
      return;
    }
    running = new AbortController();
    ctx.signal.addEventListener("abort", () => running?.abort()); // leaving the page ends the run
    setRunning(true);
    status.textContent = "Running…";
    const began = performance.now();
    let streaming = null; // the message being streamed chunk by chunk
    const body = conversation ? { conversation, task: text } : { agent: select.value, task: text };
    try {
      await sse("playground/run", { body, signal: running.signal, onEvent: (event, data) => {
        if (event === "run") {
          setConversation(data.conversation, data.agent);
          add(h("div", { class: "run-start muted small" }, `Run ${data.run_id || ""} · `,
            data.run_id ? h("a", { href: `/ui/runs/${data.run_id}` }, "open run") : null,
            data.trace_id ? [" · ", h("a", { href: `/ui/traces/${data.trace_id}` }, "open trace")] : null));
        } else if (event === "chunk") {
          if (!streaming) { streaming = h("pre", { class: "content streaming" }); add(h("article", { class: "event message" }, h("header", {}, h("span", { class: "source" }, data.source)), streaming)); }
          streaming.append(data.content);
        } else if (event === "event") {
          if (streaming && data.type === "text") { streaming.closest("article").remove(); streaming = null; }
          add(renderEvent(data));
        } else if (event === "result") {
          const usage = data.usage || {};
          add(h("div", { class: "run-end" }, h("span", { class: "badge up" }, "done"),
            ` ${duration(performance.now() - began)} · ${usage.input_tokens || 0} in / ${usage.output_tokens || 0} out tokens`,
            data.stop_reason ? ` · ${data.stop_reason}` : ""));
          status.textContent = "Finished.";
        } else if (event === "stopped") {
          add(h("div", { class: "run-end" }, h("span", { class: "badge warn" }, "stopped")));
          status.textContent = "Stopped.";
        } else if (event === "error") {
          add(notice(data.message, "error"));
          status.textContent = "Failed.";
        }
      } });
    } catch (e) {
      if (e?.name !== "AbortError") {
        add(notice(e, "error"));
        status.textContent = "Failed.";
      }
    } finally {
      running = null;
      setRunning(false);
      if (status.textContent === "Running…") status.textContent = "Ended.";
      task.value = "";
      task.focus();
    }
  }

  async function stop() {
    if (!running) return;
    status.textContent = "Stopping…";
    try {
      if (conversation) await api(`playground/conversations/${encodeURIComponent(conversation)}/stop`, { method: "POST" });
      else running.abort();
    } catch (e) {
      running?.abort(); // closing the stream stops the run too
    }
  }

  async function save() {
    try {
      const state = await api(`playground/conversations/${encodeURIComponent(conversation)}/state`);
      const url = URL.createObjectURL(new Blob([JSON.stringify(state, null, 2)], { type: "application/octet-stream" }));
      const link = h("a", { href: url, download: `${state.agent}-conversation.json` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      status.textContent = "State saved to a file.";
    } catch (e) {
      status.textContent = `Cannot save: ${e.message}`;
    }
  }

  async function load() {
    const file = loadInput.files[0];
    loadInput.value = "";
    if (!file) return;
    try {
      if (file.size > 4 * 1024 * 1024) throw new Error("the file is over 4 MiB: not a saved conversation");
      const saved = JSON.parse(await file.text());
      const loaded = await api("playground/conversations", { method: "POST", body: saved });
      select.value = loaded.agent;
      describe();
      transcript.replaceChildren(h("div", { class: "muted" }, `Loaded ${file.name} into a new conversation with ${loaded.agent}.`));
      setConversation(loaded.id, loaded.agent);
      saveButton.disabled = false;
      status.textContent = "Loaded: type a task to continue the conversation.";
    } catch (e) {
      status.textContent = `Cannot load ${file.name}: ${e.message}`;
    }
  }

  describe();
  task.focus();
}, { title: "Playground" });
