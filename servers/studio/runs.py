"""`RunStore`: every agent/team run and every served tool call, with its events, in one SQLite file.

Why SQLite: it ships with Python, and one file is easy to find, copy and delete. Why batched:
a served call must not wait for a disk write (a commit costs ~100 µs on a busy machine, several
times a fast tool call), so writes are queued in memory and committed together, one transaction
every `FLUSH_SECONDS` or `FLUSH_ROWS` rows, by a writer thread that exits when idle; every read
flushes first, so the store always reads its own writes. A run that ends before its batch is
written (most served calls) is written once, as it ended: its start, events count and end are
folded into one row, not an INSERT and then an UPDATE; statements of one kind go to SQLite as
one `executemany`. Writes touch few pages: run ids begin with the time, and only runs whose
spans were recorded are in the trace index (a sampled-out run, most served calls, is not looked
up by trace). A busy file (another process holding
the write lock) waits at most `BUSY_TIMEOUT_MS`, then the batch is dropped and logged:
recording must never fail or stall the call it records.

Bounded three ways, because every value comes from a caller: an event's JSON is cut to
`max_event_bytes`, a run keeps at most `max_events_per_run` events (then one `truncated`
marker), and the file keeps the newest runs within `max_bytes` and `retention_days`
(pruned every `PRUNE_EVERY` new runs and at open). Pruning by size scans and sorts every run,
so it runs only when the bytes written (summed at open, counted since) pass `max_bytes`, and
then trims to `PRUNE_TO` of it: a full store costs one scan per tenth of its size written,
not one per `PRUNE_EVERY` runs. The queue itself is bounded by flushing
inline at `FLUSH_ROWS`.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import random
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Literal

import pydantic_core

from workbench.core import logger

RunKind = Literal["tool", "agent", "team"]
RunStatus = Literal["running", "ok", "error", "cancelled"]
STATE_DIR_ENV = "WORKBENCH_STATE_DIR"
BUSY_TIMEOUT_MS = 200
PRUNE_EVERY = 200
PRUNE_TO = 0.9
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 256
WRITER_IDLE_SECONDS = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    identity TEXT NOT NULL,
    session TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    duration_ms REAL,
    trace_id TEXT,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    events INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    traced INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


_RUN_COLUMNS = ("id", "kind", "name", "identity", "session", "status", "started", "ended", "duration_ms", "trace_id",
                "input", "output", "error", "events", "bytes", "traced")
# Only runs whose spans were recorded are looked up by trace (the Traces page): a sampled-out run's
# random trace id would cost an index page write of its own and is never asked for.
_TRACE_INDEX = "CREATE INDEX IF NOT EXISTS runs_traced ON runs (trace_id) WHERE traced = 1"

_INSERT_RUN = f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))})"
_COLUMN = {name: i for i, name in enumerate(_RUN_COLUMNS)}


def default_path() -> Path:
    """`$WORKBENCH_STATE_DIR/runs.sqlite`, else under `$XDG_STATE_HOME` (`~/.local/state`)."""
    state = os.environ.get(STATE_DIR_ENV)
    if state:
        return Path(state).expanduser() / "runs.sqlite"
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "mcp-workbench" / "runs.sqlite"


def to_json(value: Any) -> str:
    """`value` as JSON; pydantic-core's encoder, several times json.dumps' (one run costs three)."""
    try:
        return pydantic_core.to_json(value, fallback=str).decode()
    except (pydantic_core.PydanticSerializationError, ValueError):  # e.g. bytes that are not UTF-8
        return json.dumps(value, ensure_ascii=False, default=str)


def bounded_json(value: Any, limit: int) -> str:
    """`value` as JSON of at most `limit` characters; a longer one becomes a marked preview."""
    text = to_json(value)
    if len(text) <= limit:
        return text
    return json.dumps({"truncated": True, "bytes": len(text), "preview": text[: max(0, limit - 80)]})


class RunStore:
    """Open with `RunStore(path)`; safe to share between tasks and threads. `close()` flushes."""

    def __init__(self, path: Path, *, max_bytes: int = 256 * 1024 * 1024, retention_days: float = 30,
                 max_events_per_run: int = 2000, max_event_bytes: int = 64 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.retention_days = retention_days
        self.max_events_per_run = max_events_per_run
        self.max_event_bytes = max_event_bytes
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # arguments and outputs are the user's data
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
        path.chmod(0o600)
        self._db.row_factory = sqlite3.Row
        self._db_lock = threading.Lock()  # the connection: one statement or batch at a time, in order
        self._lock = threading.Lock()  # the queue and the live runs' event counts
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._new: dict[str, list[Any]] = {}
        """Rows (`_RUN_COLUMNS`) of the runs started since the last flush, kept current until it."""
        self._events: dict[str, int] = {}
        """Events so far of the runs started here and not finished: numbers the next one, bounds them."""
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._closed = False
        self._new_runs = 0
        with self._db_lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            if "traced" not in {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}:
                _add_traced_column(self._db)
            self._db.execute("DROP INDEX IF EXISTS runs_trace")  # every run's trace id, before sampling
            self._db.execute(_TRACE_INDEX)
            self._bytes: int = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM runs").fetchone()[0]
            """The runs' bytes in the file, as far as this store knows: what decides a prune by size."""
        self.prune()
        atexit.register(_flush_at_exit, weakref.ref(self))

    @classmethod
    def open(cls, path: str | None) -> RunStore | None:
        """The store at `path` (None: `default_path()`; "" turns recording off). A file that cannot
        be opened is logged and recording is off: serving does not depend on it."""
        if path == "":
            return None
        where = default_path() if path is None else Path(path).expanduser()
        try:
            return cls(where)
        except (OSError, sqlite3.Error) as e:
            logger.warning("runs are not recorded: cannot open %s: %s", where, e)
            return None

    def close(self) -> None:
        self.flush()
        with self._db_lock:
            self._closed = True
            self._db.close()
        self._wake.set()

    # ---- the write queue ---------------------------------------------------------------
    def _queue(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._pending.append((sql, params))
        self._queued()

    def _queued(self) -> None:
        """Something was queued: make sure the writer runs, or write now if the queue is full."""
        with self._lock:
            full = len(self._pending) + len(self._new) >= FLUSH_ROWS
            if self._writer is None and not full:
                self._writer = threading.Thread(target=self._write_loop, name="run-store-writer", daemon=True)
                self._writer.start()
        if full:  # a burst: write now rather than let the queue grow
            self.flush()

    def _write_loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            if self.flush():
                idle_since = time.monotonic()
            with self._lock:
                if self._closed or (not self._pending and time.monotonic() - idle_since > WRITER_IDLE_SECONDS):
                    self._writer = None  # the next write starts another
                    return

    def flush(self) -> bool:
        """Commit everything queued, in one transaction; False when there was nothing."""
        with self._db_lock:
            with self._lock:
                new, self._new = list(self._new.values()), {}
                batch, self._pending = self._pending, []
            if not (batch or new) or self._closed:
                return False
            try:
                self._db.execute("BEGIN")
                try:
                    # The new runs first: the queued events and updates may be theirs.
                    self._db.executemany(_INSERT_RUN, new)
                    for sql, group in itertools.groupby(batch, key=lambda statement: statement[0]):
                        self._db.executemany(sql, [params for _, params in group])
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:  # busy, full disk: lose this batch, keep serving
                logger.warning("run store: %d writes dropped: %s", len(batch) + len(new), e)
            return True

    # ---- writing -----------------------------------------------------------------------
    def start_run(self, kind: RunKind, name: str, *, identity: str, session: str, input: Any,
                  trace_id: str | None = None, traced: bool = True) -> str:
        """A new run; `traced`: whether its spans were recorded (False: its trace was sampled out)."""
        # An id, not a secret (reading runs needs the console token). Time first, so a batch's new ids
        # land on the last pages of the id index instead of one random page each (on a file of 100k
        # runs, a commit's CPU per run fell by a third, 38 → 27 µs); 52 random bits, so two servers
        # sharing a file do not collide within a millisecond (a collision would drop the batch).
        run_id = f"{time.time_ns() // 1_000_000:011x}{random.getrandbits(52):013x}"
        data = bounded_json(input, self.max_event_bytes)
        row = [run_id, kind, name[:200], identity[:200], session[:200], "running", time.time(), None, None, trace_id,
               data, None, None, 0, len(data), int(traced)]
        with self._lock:
            self._events[run_id] = 0
            self._new[run_id] = row
            self._bytes += len(data)
        self._queued()
        self._new_runs += 1
        if self._new_runs % PRUNE_EVERY == 0:
            self.prune()
        return run_id

    def add_event(self, run_id: str, type: str, data: Any) -> None:
        """Append one event to a running run; past `max_events_per_run`, one `truncated` marker and then nothing."""
        with self._lock:
            seq = self._events.get(run_id)
            if seq is None or seq > self.max_events_per_run:
                return
            self._events[run_id] = seq + 1
        if seq == self.max_events_per_run:
            type, text = "truncated", json.dumps({"reason": f"more than {self.max_events_per_run} events"})
        else:
            text = bounded_json(data, self.max_event_bytes)
        with self._lock:
            self._bytes += len(text)
            self._pending.append(("INSERT INTO events (run_id, seq, at, type, data) VALUES (?, ?, ?, ?, ?)",
                                  (run_id, seq, time.time(), type[:64], text)))
            row = self._new.get(run_id)
            if row is not None:  # not written yet: its row counts the event
                row[_COLUMN["events"]] += 1
                row[_COLUMN["bytes"]] += len(text)
            else:
                self._pending.append(("UPDATE runs SET events = events + 1, bytes = bytes + ? WHERE id = ?",
                                      (len(text), run_id)))
        self._queued()

    def finish_run(self, run_id: str, status: RunStatus, *, output: Any = None, error: str | None = None,
                   duration_ms: float | None = None) -> None:
        with self._lock:
            self._events.pop(run_id, None)
        text = None if output is None else bounded_json(output, self.max_event_bytes)
        error = None if error is None else error[:4000]
        now = time.time()
        with self._lock:
            self._bytes += len(text or "") + len(error or "")
            row = self._new.get(run_id)
            if row is not None:  # not written yet: written once, as it ended
                started = row[_COLUMN["started"]]
                for column, value in (("status", status), ("ended", now), ("output", text), ("error", error),
                                      ("duration_ms", (now - started) * 1000 if duration_ms is None else duration_ms)):
                    row[_COLUMN[column]] = value
                row[_COLUMN["bytes"]] += len(text or "") + len(error or "")
                return
        self._queue(
            "UPDATE runs SET status = ?, ended = ?, duration_ms = COALESCE(?, (? - started) * 1000), output = ?,"
            " error = ?, bytes = bytes + ? WHERE id = ?",
            (status, now, duration_ms, now, text, error, len(text or "") + len(error or ""), run_id),
        )

    def prune(self) -> None:
        """Drop runs older than the retention, then, past `max_bytes`, the oldest until the rest fit
        in `PRUNE_TO` of it."""
        cutoff = time.time() - self.retention_days * 86400
        self._queue("DELETE FROM runs WHERE started < ?", (cutoff,))  # by the `started` index: cheap
        with self._lock:
            if self._bytes <= self.max_bytes:
                return
            keep = int(self.max_bytes * PRUNE_TO)
            self._bytes = keep  # at most, once the delete has run
        self._queue(
            "DELETE FROM runs WHERE id IN (SELECT id FROM"
            " (SELECT id, SUM(bytes) OVER (ORDER BY started DESC, id) AS kept FROM runs) WHERE kept > ?)",
            (keep,),
        )

    def _read(self, sql: str, params: tuple[Any, ...] | list[Any]) -> list[sqlite3.Row]:
        self.flush()
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    # ---- reading -----------------------------------------------------------------------
    def list_runs(self, *, identity: str | None = None, kind: str | None = None, query: str | None = None,
                  before: float | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, of `identity` only when given; `query` matches the name, identity, session or
        status; `before` pages on `started`."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if identity is not None:
            where.append("identity = ?")
            params.append(identity)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if query:
            where.append("(name LIKE ? ESCAPE '\\' OR identity LIKE ? ESCAPE '\\' OR session LIKE ? ESCAPE '\\'"
                         " OR status = ?)")
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like, like, query]
        if before is not None:
            where.append("started < ?")
            params.append(before)
        params.append(max(1, min(limit, 500)))
        rows = self._read(
            "SELECT id, kind, name, identity, session, status, started, ended, duration_ms, trace_id, error,"
            f" events, traced FROM runs WHERE {' AND '.join(where)} ORDER BY started DESC LIMIT ?", params,
        )
        return [{**r, "traced": bool(r["traced"])} for r in map(dict, rows)]

    def get_run(self, run_id: str, *, identity: str | None = None) -> dict[str, Any] | None:
        """The run with its input, output and every event in order, or None (also when it is not `identity`'s)."""
        found = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not found or (identity is not None and found[0]["identity"] != identity):
            return None
        events = self._read("SELECT seq, at, type, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
        run = dict(found[0])
        run.pop("bytes")
        run["traced"] = bool(run["traced"])
        run["input"] = json.loads(run["input"])
        run["output"] = None if run["output"] is None else json.loads(run["output"])
        run["events"] = [{"seq": e["seq"], "at": e["at"], "type": e["type"], "data": json.loads(e["data"])}
                         for e in events]
        return run

    def runs_of_trace(self, trace_id: str, *, identity: str | None = None) -> list[dict[str, Any]]:
        rows = self._read("SELECT id, kind, name, status, identity FROM runs WHERE trace_id = ? AND traced = 1"
                          " ORDER BY started", (trace_id,))
        return [dict(r) for r in rows if identity is None or r["identity"] == identity]

    def trace_ids(self, *, identity: str | None = None, limit: int = 200) -> list[str]:
        """The trace ids of the newest runs (of `identity` only, when given), newest first, each once."""
        rows = self._read(
            "SELECT trace_id, MAX(started) AS latest FROM runs WHERE trace_id IS NOT NULL AND traced = 1"
            + (" AND identity = ?" if identity is not None else "")
            + " GROUP BY trace_id ORDER BY latest DESC LIMIT ?",
            (identity, limit) if identity is not None else (limit,),
        )
        return [r["trace_id"] for r in rows]


def _add_traced_column(db: sqlite3.Connection) -> None:
    """A file of before sampling: its runs were all traced."""
    try:
        db.execute("ALTER TABLE runs ADD COLUMN traced INTEGER NOT NULL DEFAULT 1")
    except sqlite3.OperationalError as e:  # another process sharing the file added it first
        if "duplicate column" not in str(e):
            raise


def _flush_at_exit(ref: weakref.ReferenceType[RunStore]) -> None:
    """What the writer thread had not committed yet when the process exits."""
    store = ref()
    if store is not None:
        try:
            store.flush()
        except sqlite3.Error:
            pass
