"""Structured logs: one JSON object per line on stderr, ready for a log shipper.

stdout is never touched — over stdio it carries the MCP protocol itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import pydantic_core

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


class JsonLines(logging.Formatter):
    """One JSON object per record. Every served call writes an audit line through here, so it is
    kept cheap: pydantic-core's encoder (several times json.dumps'), the timestamp's date and
    time formatted once a second."""

    _second: int = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if v is not None and k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        try:
            return pydantic_core.to_json(entry, fallback=str).decode()
        except (pydantic_core.PydanticSerializationError, ValueError):  # e.g. bytes that are not UTF-8
            return json.dumps(entry, default=str, ensure_ascii=False)

    def _timestamp(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond, e.g. `2026-11-26T05:47:48.123+00:00`."""
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"


def configure_json_logging(level: int = logging.INFO) -> None:
    """Route the workbench's, the SDK's and uvicorn's logs to stderr as JSON lines (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h.formatter, JsonLines)] + [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("mcp").setLevel(logging.WARNING)  # per-request chatter from the SDK
    # httpx2 logs every upstream request at INFO: one more line per relayed call, as long as the audit line
    # itself. Still shown under --debug, where it helps.
    for name in ("httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
