"""`workbench serve`'s logging: the upstream HTTP client's per-request INFO line is left out (one per relayed
call, doubling the log), and comes back under --debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

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
