"""RunStore: runs and events round-trip through the SQLite file, and every bound holds."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from servers.studio.runs import PRUNE_EVERY, PRUNE_TO, RunStore, bounded_json, default_path


def test_a_run_round_trips_with_its_events_in_order(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    run = store.start_run("agent", "executor", identity="token-1", session="s1", input={"task": "hi"},
                          trace_id="ab" * 16)
    store.add_event(run, "text", {"source": "user", "content": "hi"})
    store.add_event(run, "tool_calls", {"calls": [{"name": "sandbox__run_python"}]})
    store.finish_run(run, "ok", output={"text": "done"})
    got = store.get_run(run)
    assert got is not None
    assert (got["kind"], got["name"], got["status"], got["identity"], got["session"]) == (
        "agent", "executor", "ok", "token-1", "s1")
    assert got["input"] == {"task": "hi"} and got["output"] == {"text": "done"}
    assert [e["type"] for e in got["events"]] == ["text", "tool_calls"]
    assert got["duration_ms"] is not None and got["duration_ms"] >= 0
    assert store.runs_of_trace("ab" * 16)[0]["id"] == run
    # the file survives a reopen (another process, a restart)
    store.close()
    assert RunStore(tmp_path / "runs.sqlite").get_run(run) is not None


def test_a_run_reads_the_same_whether_its_batch_was_written_before_it_ended_or_after(tmp_path: Path) -> None:
    """A run that ends before its batch is written is folded into one row; one that ends later is
    updated in place. Both read back alike, events counted, bytes summed."""
    store = RunStore(tmp_path / "runs.sqlite")

    def run(flush_midway: bool) -> dict[str, object]:
        run_id = store.start_run("tool", "echo", identity="alice", session="s", input={"text": "hi"})
        store.add_event(run_id, "progress", {"progress": 1})
        if flush_midway:
            store.flush()
        store.add_event(run_id, "progress", {"progress": 2})
        store.finish_run(run_id, "error", output={"text": "out"}, error="boom", duration_ms=12.5)
        got = store.get_run(run_id)
        assert got is not None
        row = store._read("SELECT events, bytes FROM runs WHERE id = ?", (run_id,))[0]
        return {**{k: got[k] for k in ("status", "input", "output", "error", "duration_ms")},
                "events": [e["data"] for e in got["events"]], "counted": row["events"], "bytes": row["bytes"]}

    folded, updated = run(flush_midway=False), run(flush_midway=True)
    assert folded == updated
    assert folded["status"] == "error" and folded["error"] == "boom" and folded["duration_ms"] == 12.5
    assert folded["events"] == [{"progress": 1}, {"progress": 2}] and folded["counted"] == 2
    assert folded["bytes"] == len(json.dumps({"text": "hi"}, separators=(",", ":"))) + 2 * len('{"progress":1}') \
        + len('{"text":"out"}') + len("boom")


def test_the_file_is_private(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "state" / "runs.sqlite")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700


def test_list_filters_pages_and_escapes_like(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "r.sqlite")
    ids = [store.start_run("tool", name, identity="i", session="s", input={})
           for name in ("demo__add", "demo__echo", "100%_tool")]
    store.start_run("agent", "executor", identity="i", session="s", input={})
    assert {r["name"] for r in store.list_runs(kind="tool")} == {"demo__add", "demo__echo", "100%_tool"}
    assert [r["name"] for r in store.list_runs(query="add")] == ["demo__add"]
    assert [r["name"] for r in store.list_runs(query="%")] == ["100%_tool"]  # % is a character, not a wildcard
    assert store.list_runs(query="running") and len(store.list_runs(limit=2)) == 2
    newest = store.list_runs()
    older = store.list_runs(before=newest[1]["started"])
    assert all(r["started"] < newest[1]["started"] for r in older)
    assert ids[0] in {r["id"] for r in store.list_runs(limit=10)}


def test_an_event_is_cut_to_the_byte_limit(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "r.sqlite", max_event_bytes=1000)
    run = store.start_run("tool", "t", identity="i", session="s", input={"code": "x" * 50_000})
    store.add_event(run, "progress", {"message": "y" * 50_000})
    got = store.get_run(run)
    assert got is not None
    assert got["input"]["truncated"] is True and got["input"]["bytes"] > 50_000
    assert len(json.dumps(got["events"][0]["data"])) < 1100


def test_events_per_run_stop_at_the_limit_with_one_marker(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "r.sqlite", max_events_per_run=5)
    run = store.start_run("agent", "a", identity="i", session="s", input={})
    for i in range(50):
        store.add_event(run, "text", {"i": i})
    events = store.get_run(run)["events"]  # type: ignore[index]
    assert len(events) == 6 and events[-1]["type"] == "truncated"


def test_old_and_oversized_runs_are_pruned_newest_kept(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "r.sqlite", max_bytes=20_000)
    ids = []
    for i in range(30):
        ids.append(store.start_run("tool", f"t{i}", identity="i", session="s", input={"pad": "z" * 2000}))
        time.sleep(0.001)
    store.prune()
    kept = {r["id"] for r in store.list_runs(limit=100)}
    assert ids[-1] in kept and ids[0] not in kept and len(kept) < 30
    # events go with their run (no orphans left to grow the file)
    [orphans] = store._read("SELECT COUNT(*) FROM events WHERE run_id NOT IN (SELECT id FROM runs)", ())
    assert orphans[0] == 0

    aged = RunStore(tmp_path / "aged.sqlite", retention_days=0)
    aged.start_run("tool", "t", identity="i", session="s", input={})
    aged.prune()
    assert aged.list_runs() == []


def test_the_size_prune_scans_only_once_the_budget_is_passed(tmp_path: Path) -> None:
    """Pruning by size sorts every run: a store within its budget never runs it, however many runs
    it adds; the bytes of outputs and events count toward the budget like inputs."""
    store = RunStore(tmp_path / "r.sqlite", max_bytes=200_000)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    for i in range(PRUNE_EVERY * 2):
        store.finish_run(store.start_run("tool", "t", identity="i", session="s", input={}), "ok", output={"n": i})
    store.flush()
    assert not [s for s in statements if "OVER (" in s]

    for _ in range(PRUNE_EVERY):  # small inputs, large outputs: past the budget
        run = store.start_run("tool", "t", identity="i", session="s", input={})
        store.add_event(run, "progress", {"pad": "p" * 500})
        store.finish_run(run, "ok", output={"pad": "z" * 1000})
    store.flush()
    assert [s for s in statements if "OVER (" in s]
    [total] = store._read("SELECT SUM(bytes) FROM runs", ())
    assert total[0] <= 200_000 * PRUNE_TO


def test_a_busy_or_broken_file_never_raises_into_the_caller(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "r.sqlite")
    store.close()
    run = store.start_run("tool", "t", identity="i", session="s", input={})  # closed connection: logged, dropped
    store.add_event(run, "x", {})
    store.finish_run(run, "ok")


def test_open_and_default_path(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path / "state"))
    assert default_path() == tmp_path / "state" / "runs.sqlite"
    assert RunStore.open("") is None
    opened = RunStore.open(None)
    assert opened is not None and opened.path == tmp_path / "state" / "runs.sqlite"
    (tmp_path / "file").write_text("")
    assert RunStore.open(str(tmp_path / "file" / "runs.sqlite")) is None  # cannot open: recording off, no crash


def test_bounded_json_marks_what_it_cut() -> None:
    assert json.loads(bounded_json({"a": 1}, 100)) == {"a": 1}
    cut = json.loads(bounded_json({"a": "x" * 500}, 200))
    assert cut["truncated"] is True and len(cut["preview"]) <= 200


# ---- in a real browser, against a real `workbench serve` on examples/workbench.toml -----------------

def _capture(failures: list[BaseException], fn: Callable[[], object]) -> None:
    try:
        fn()
    except BaseException as e:  # handed to the test's thread, which asserts on it
        failures.append(e)


def test_a_call_from_an_mcp_client_shows_on_the_runs_page(page, studio_server, shot) -> None:  # type: ignore[no-untyped-def]
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def call() -> None:
        async with httpx2.AsyncClient(headers=studio_server.auth(), timeout=30) as http, \
                Client(streamable_http_client(f"{studio_server.base}/mcp", http_client=http)) as client:
            assert (await client.call_tool("demo__add", {"a": 2, "b": 40})).structured_content == {"total": 42}

    # Playwright's sync API runs an event loop in this thread: the MCP client gets a thread of its own.
    failures: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(failures, lambda: anyio.run(call)))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and not failures, failures
    page.goto(f"{studio_server.base}/ui/runs")
    page.get_by_label("Kind of run").select_option("tool")
    page.wait_for_url("**/ui/runs?kind=tool")
    row = page.locator("table.runs tbody tr", has_text="demo__add").first
    row.wait_for()
    assert "ok" in row.inner_text() and "token-" in row.inner_text()
    page.keyboard.press("/")  # "/" focuses the filter
    page.keyboard.type("demo__add")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/runs?q=demo__add&kind=tool")
    page.locator("table.runs tbody tr", has_text="demo__add").first.wait_for()
    assert page.locator("table.runs tbody tr", has_text="demo__echo").count() == 0
    shot(page, "runs-list")
    page.locator("table.runs tbody tr", has_text="demo__add").first.get_by_role("link").click()
    page.locator("h1", has_text="demo__add").wait_for()
    assert '"a": 2' in page.locator("pre").first.inner_text()
    assert '"total": 42' in page.locator(".result").inner_text()
    shot(page, "run-tool-call")


def test_identity_filters_runs_and_their_traces(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "r.sqlite")
    mine = store.start_run("tool", "t", identity="me", session="s", input={}, trace_id="a" * 32)
    theirs = store.start_run("tool", "t", identity="them", session="s", input={}, trace_id="b" * 32)
    store.start_run("agent", "a", identity="me", session="s", input={}, trace_id="a" * 32)  # same trace, once
    assert {r["id"] for r in store.list_runs(identity="me")} == {mine} | {r["id"] for r in store.list_runs(kind="agent")}
    assert store.get_run(theirs, identity="me") is None and store.get_run(theirs, identity="them") is not None
    assert store.trace_ids(identity="me") == ["a" * 32]
    assert store.runs_of_trace("b" * 32, identity="me") == []
    assert sorted(store.trace_ids()) == ["a" * 32, "b" * 32]


def test_a_run_whose_trace_was_sampled_out_says_so_instead_of_an_empty_waterfall(page, studio_server) -> None:  # type: ignore[no-untyped-def]
    import httpx2

    trace_id = "7" * 32  # a caller that traces but did not sample this call (flags 00): Studio keeps no spans
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "demo__add", "arguments": {"a": 20, "b": 22}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "traceparent": f"00-{trace_id}-{'8' * 16}-00"}}}
    with httpx2.Client(base_url=studio_server.base, headers=studio_server.auth(), timeout=30) as http:
        answer = http.post("/mcp", json=body, headers={
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "demo__add",
            "Accept": "application/json, text/event-stream"})
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while not (runs := [r for r in http.get("/ui/api/runs", params={"q": "demo__add"}).json()["runs"]
                            if r["trace_id"] == trace_id]) and time.monotonic() < deadline:
            time.sleep(0.05)
    [run] = runs
    page.goto(f"{studio_server.base}/ui/runs/{run['id']}")
    note = page.locator(".trace-note")
    note.wait_for()
    assert "trace_sample" in note.inner_text() and "traceparent" in note.inner_text()
    assert "(not recorded)" in page.locator("table.facts").inner_text()
    assert page.get_by_role("link", name="Open trace").count() == 0
    assert page.locator("table.facts a", has_text=trace_id).count() == 0  # no link to an empty waterfall
    page.get_by_role("link", name="Traces", exact=True).click()  # which traces are recorded, said where they are
    assert "trace_sample" in page.locator("p.sampling").inner_text()


def test_a_file_from_before_sampling_opens_with_its_runs_traced_and_ids_sort_by_time(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, identity TEXT NOT NULL,
            session TEXT NOT NULL, status TEXT NOT NULL, started REAL NOT NULL, ended REAL, duration_ms REAL,
            trace_id TEXT, input TEXT NOT NULL, output TEXT, error TEXT, events INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX runs_trace ON runs (trace_id);
        INSERT INTO runs (id, kind, name, identity, session, status, started, trace_id, input)
            VALUES ('0123456789abcdef', 'tool', 'old', 'me', 's', 'ok', CAST(strftime('%s', 'now') AS REAL), 'cd' || printf('%030d', 0), '{}');
    """)
    old.close()
    store = RunStore(path)
    got = store.get_run("0123456789abcdef")
    assert got is not None and got["traced"] is True  # recorded before sampling: every span was kept
    assert store.runs_of_trace("cd" + "0" * 30)[0]["id"] == "0123456789abcdef"
    indexes = {r["name"] for r in store._read("SELECT name FROM sqlite_master WHERE type = 'index'", ())}
    assert "runs_trace" not in indexes and "runs_traced" in indexes
    # new runs: time first, so they go in the id index in the order they came; a sampled-out one is not in
    # the trace index
    made = [store.start_run("tool", "t", identity="me", session="s", input={}, trace_id="ef" * 16, traced=False)
            for _ in range(50)]
    millis = [run_id[:11] for run_id in made]  # the time part, in milliseconds; random within one
    assert sorted(millis) == millis and len(set(made)) == 50 and all(len(i) == 24 for i in made)
    assert store.runs_of_trace("ef" * 16) == [] and store.trace_ids(identity="me") == ["cd" + "0" * 30]
    assert store.get_run(made[0])["traced"] is False  # type: ignore[index]
    store.close()
    assert RunStore(path).get_run(made[-1]) is not None  # and reopens as it is


def test_runs_still_queued_when_the_process_exits_cleanly_are_written(tmp_path: Path) -> None:
    """Writes wait up to FLUSH_SECONDS in memory; a process that ends (SIGTERM's graceful path, a CLI
    returning) without closing the store still writes them on its way out."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "runs.sqlite"
    script = (
        "import sys; from pathlib import Path; from servers.studio.runs import RunStore\n"
        "store = RunStore(Path(sys.argv[1]))\n"
        "for i in range(40):\n"
        "    run = store.start_run('tool', f'queued-{i}', identity='i', session='s', input={'i': i})\n"
        "    store.finish_run(run, 'ok', output={'i': i})\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    runs = RunStore(path).list_runs(limit=100)
    assert len(runs) == 40 and all(r["status"] == "ok" for r in runs)
