"""The Health & config page's config: what was loaded, secrets masked, and what is wrong in
the file now (file, line, key), so an edit that would break the next start shows at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from workbench.core import ConfigError

MASK = "••••••"
_SECRET_KEY = re.compile(
    r"token(?!s|izer)|secret|passw|api[_-]?key|authorization|credential|private[_-]?key|cookie", re.I)
"""Keys whose values are secrets (`max_tokens` is a count, not a token)."""
_NAMES_A_SECRET = re.compile(r"(_env|_file|_path)$", re.I)
"""`auth_token_env = "WORKBENCH_TOKEN"` says where a secret is, not what it is: shown."""
_ALL_VALUES_SECRET = frozenset({"env", "headers"})
"""A server's environment and HTTP headers: their names are shown, every value is masked."""
_LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?:(?P<key>[\w.\-\[\]]+): )?(?P<message>.*)$", re.S)
_FILE_ONLY = re.compile(r"^(?P<file>[^\s:][^:]*\.(?:toml|json)): (?:(?P<key>[\w.\-\[\]]+): )?(?P<message>.*)$", re.S)


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of a config's JSON form with secret values replaced by `MASK`."""
    if isinstance(value, dict):
        if key in _ALL_VALUES_SECRET:
            return {k: MASK if v not in (None, "") else v for k, v in value.items()}
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str):
        if value and _SECRET_KEY.search(key) and not _NAMES_A_SECRET.search(key):
            return MASK
        return _mask_url_password(value)
    if value is not None and _SECRET_KEY.search(key) and not _NAMES_A_SECRET.search(key):
        return MASK
    return value


def _mask_url_password(text: str) -> str:
    """`https://user:pw@host/` → `https://user:••••••@host/`; anything else unchanged."""
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.password is None:
        return text
    netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def locate_error(message: str) -> dict[str, Any]:
    """A config error's message split into file, line and key where it names them."""
    match = _LOCATED.match(message) or _FILE_ONLY.match(message)
    if match is None:
        return {"file": None, "line": None, "key": None, "message": message}
    found = match.groupdict()
    line = found.get("line")
    return {"file": found["file"], "line": int(line) if line else None, "key": found.get("key"),
            "message": found["message"]}


def config_report(path: Path | None, loaded: dict[str, Any], reload: Callable[[], object] | None) -> dict[str, Any]:
    """{path, config (as loaded at start, masked), error (the file as it is now, or None)}."""
    error = None
    if reload is not None:
        try:
            reload()
        except ConfigError as e:
            error = locate_error(str(e))
    return {"path": str(path) if path else None, "config": mask_secrets(loaded), "error": error}
