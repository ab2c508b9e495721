"""Tool names that every client accepts: letters, digits, `_` and `-`, at most 64 characters.

Long or clashing names are shortened or suffixed with a short stable hash of the
original, so the same catalog always yields the same names (agents' saved state and
users' configs keep working across restarts).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container

MAX_TOOL_NAME = 64
SEPARATOR = "__"
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def stable_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def safe_tool_name(name: str, *, limit: int = MAX_TOOL_NAME) -> str:
    """`name` with invalid characters replaced by `_`, shortened with a hash when too long."""
    cleaned = _INVALID.sub("_", name) or "_"
    if len(cleaned) <= limit:
        return cleaned
    suffix = "_" + stable_hash(name)
    return cleaned[: limit - len(suffix)] + suffix


def qualified_name(prefix: str | None, name: str) -> str:
    return safe_tool_name(f"{prefix}{SEPARATOR}{name}" if prefix else name)


def disambiguate(name: str, taken: Container[str], key: str) -> str:
    """A name not in `taken`, derived from `name` and a stable hash of `key` (the tool's origin)."""
    if name not in taken:
        return name
    for length in (6, 10, 16, 32):
        suffix = "_" + stable_hash(key, length)
        candidate = name[: MAX_TOOL_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"cannot find a free name for {name!r}")  # practically unreachable
