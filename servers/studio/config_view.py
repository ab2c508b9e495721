"""The Health & config page's config: what was loaded, secrets masked, and what is wrong in
the file now (file, line, key), so an edit that would break the next start shows at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from workbench.core import ConfigError

MASK = "••••••"
_SECRET_WORDS = ("token", "secret", "password", "passwd", "passphrase", "pwd", "key", "authorization", "auth",
                 "credential", "credentials", "cookie", "pat", "sig", "signature", "bearer", "jwt")
"""A key names a secret when its last word is one of these (or ends so: `apikey`, `accesstoken`).
The last word is what the key *is*: `api_key` and `X-Api-Key` are keys, while `token_dir`,
`auth_token_env`, `private_key_file`, `token_cache_seconds` and `max_tokens` are a folder, a
variable's name, a path, a duration and a count — shown, so a person sees what to set."""
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_ALL_VALUES_SECRET = frozenset({"env", "headers"})
"""A server's environment and HTTP headers: their names are shown, every value is masked."""
_NAMED_VALUE = re.compile(r"^(?P<name>-{0,2}[A-Za-z][\w.-]*)(?P<sep>\s*[=:]\s*)(?P<value>\S.*)$", re.S)
"""`--token=x`, `API_KEY=x` (a container's `-e`), `Authorization: Bearer x` (an `mcp-remote --header`)."""
_CREDENTIAL = re.compile(
    r"(?i:\b(?:bearer|basic)\s+)(?=[\w.~+/=-]*\d)[\w.~+/=-]{8,}"  # an Authorization value written anywhere
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_\w{20,}|\bglpat-[\w-]{20,}|\bxox[abprs]-[\w-]{10,}"
    r"|\bsk-[\w-]{16,}|\bAKIA[0-9A-Z]{16}\b|\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
"""Well-known credential shapes (GitHub, GitLab, Slack, OpenAI-style, AWS keys, JWTs), wherever
they stand: in an argument list a secret has no key to give it away."""
_URL = re.compile(r"\b[A-Za-z][\w+.-]*://[^\s\"'<>]+")
"""A URL wherever it stands: alone, or inside `--url=…` or a sentence."""
_LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?:(?P<key>[\w.\-\[\]]+): )?(?P<message>.*)$", re.S)
_FILE_ONLY = re.compile(r"^(?P<file>[^\s:][^:]*\.(?:toml|json)): (?:(?P<key>[\w.\-\[\]]+): )?(?P<message>.*)$", re.S)


def secret_name(key: str) -> bool:
    words = _WORD.findall(key)
    last = words[-1].lower() if words else ""
    return last in _SECRET_WORDS or last.endswith(("token", "secret", "password", "apikey"))


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of a config's JSON form with secret values replaced by `MASK`: values of secret-named
    keys, every value of `env` and `headers`, secrets inside argument lists (the value after a
    secret-named flag, `name=value` pairs), URL passwords and secret query parameters, and
    well-known credential shapes anywhere."""
    if isinstance(value, dict):
        if key in _ALL_VALUES_SECRET:
            return {k: MASK if v not in (None, "") else v for k, v in value.items()}
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        if key == "args":
            return _mask_args(value)
        return [mask_secrets(v, key) for v in value]
    if value not in (None, "") and secret_name(key):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_text(text: str) -> str:
    """`text` with a `name=value` secret, URL credentials and credential-shaped words masked."""
    named = _NAMED_VALUE.match(text)
    if named and secret_name(named["name"]):
        return f"{named['name']}{named['sep']}{MASK}"
    return _CREDENTIAL.sub(MASK, _URL.sub(lambda url: _mask_url(url.group()), text))


def _mask_args(args: list[Any]) -> list[Any]:
    masked: list[Any] = []
    after_secret_flag = False
    for arg in args:
        if not isinstance(arg, str):
            masked.append(mask_secrets(arg))
            continue
        masked.append(MASK if after_secret_flag and arg else mask_text(arg))
        # `--api-key VALUE`: the flag names the next argument.
        after_secret_flag = arg.startswith("-") and "=" not in arg and secret_name(arg)
    return masked


def _mask_url(text: str) -> str:
    """`https://user:pw@host/?api_key=k&x=1` → `https://user:••••••@host/?api_key=••••••&x=1`; a lone
    user part (`https://TOKEN@host`) is masked too. Anything not a URL is returned unchanged."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    if not parts.netloc:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        user = f"{parts.username}:{MASK}" if parts.password is not None else MASK
        netloc = f"{user}@{parts.hostname or ''}" + (f":{port}" if port else "")
    query = "&".join(_mask_parameter(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _mask_parameter(pair: str) -> str:
    name, equals, value = pair.partition("=")
    return f"{name}={MASK}" if equals and value and secret_name(unquote_plus(name)) else pair


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
    if error is not None:  # a message may quote what the file says near the mistake
        error["message"] = mask_text(error["message"])
    return {"path": str(path) if path else None, "config": mask_secrets(loaded), "error": error}
