"""`workbench serve`'s logging: the upstream HTTP client's per-request INFO line is left out (one per relayed
call, doubling the log), and comes back under --debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.logs import configure_json_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("httpx2", "httpcore2", "mcp")}
    yield
    root.handlers, root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_upstream_request_lines_are_off_at_info_and_on_under_debug() -> None:
    configure_json_logging(logging.INFO)
    assert not logging.getLogger("httpx2").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx2").isEnabledFor(logging.WARNING)
    assert logging.getLogger("workbench.audit").isEnabledFor(logging.INFO)
    configure_json_logging(logging.DEBUG)
    assert logging.getLogger("httpx2").isEnabledFor(logging.INFO)


def test_a_json_line_keeps_its_fields_time_and_odd_values() -> None:
    """The fast encoder writes what json.dumps did: fields in order, the time in UTC to the
    millisecond, unknown objects as text; bytes it refuses fall back rather than lose the line."""
    import json
    from datetime import UTC, datetime

    from servers.logs import JsonLines

    record = logging.getLogger("workbench.audit").makeRecord(
        "workbench.audit", logging.INFO, __file__, 1, "tool call", (), None,
        extra={"identity": "alice", "path": Path("/x"), "skipped": None, "raw": b"\xff"})
    record.created = 1_790_000_000.0427
    entry = json.loads(JsonLines().format(record))
    assert entry == {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                     "level": "info", "logger": "workbench.audit", "msg": "tool call", "identity": "alice",
                     "path": "/x", "raw": "b'\\xff'"}
    assert list(entry)[:4] == ["ts", "level", "logger", "msg"]
