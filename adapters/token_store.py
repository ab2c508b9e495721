"""Where the OAuth tokens for an upstream MCP server live: one file per server and per user.

`FileTokenStorage` implements the SDK's `TokenStorage` protocol. The file holds the access
and refresh tokens, when the access token expires (an absolute time: the token endpoint's
`expires_in` is relative to when it answered, so it means nothing after a restart) and the
client registration (a dynamic registration's secret too). It is a credential, so:

- mode 0600 in a 0700 folder, created that way (never chmod-ed after the fact, which
  would leave a window), and refused when someone loosened it;
- replaced atomically (temporary file, fsync, rename), so a crash mid-write leaves the old
  tokens, never half a file;
- never shown: `repr` names the file only, and errors say what is wrong with the file, not
  what is in it.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

import anyio
import platformdirs
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import BaseModel, ValidationError

from workbench.core import WorkbenchError

TOKEN_DIR_ENV = "WORKBENCH_OAUTH_DIR"
"""Overrides the default folder (the user's state dir) for every server without `token_dir`."""

_M = TypeVar("_M", bound=BaseModel)
_MAX_FILE_BYTES = 256 * 1024  # a token file is a few KB; anything larger is not ours


class TokenFileError(WorkbenchError):
    """The token file cannot be used (unreadable, corrupt, or readable by others)."""


def default_token_dir() -> Path:
    """`$WORKBENCH_OAUTH_DIR`, else the user's state folder (e.g. ~/.local/state/mcp-workbench/oauth)."""
    if env := os.environ.get(TOKEN_DIR_ENV):
        return Path(env).expanduser()
    return platformdirs.user_state_path("mcp-workbench") / "oauth"


def token_path(server: str, url: str, token_dir: Path | None = None) -> Path:
    """The file for `server` at `url`: per OS user (a shared `token_dir` keeps users apart) and
    per URL (pointing a name at another server does not hand it the old server's tokens)."""
    root = token_dir if token_dir is not None else default_token_dir()
    user = _safe(getpass.getuser())
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return root / user / f"{_safe(server)}-{digest}.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "_"


class FileTokenStorage:
    """The SDK's `TokenStorage` as one JSON file (see the module docstring for the guarantees)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"FileTokenStorage({str(self.path)!r})"

    # -- the SDK's TokenStorage -------------------------------------------------------------

    async def get_tokens(self) -> OAuthToken | None:
        raw = (await self._read()).get("tokens")
        return self._parse(OAuthToken, raw, "tokens")

    async def set_tokens(self, tokens: OAuthToken) -> None:
        expires_at = time.time() + tokens.expires_in if tokens.expires_in is not None else None
        await self._update(tokens=tokens.model_dump(mode="json", exclude_none=True), expires_at=expires_at)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        raw = (await self._read()).get("client_info")
        return self._parse(OAuthClientInformationFull, raw, "client_info")

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._update(client_info=client_info.model_dump(mode="json", exclude_none=True))

    # -- ours -------------------------------------------------------------------------------

    async def expires_at(self) -> float | None:
        """When the stored access token expires (epoch seconds), if the server said."""
        value = (await self._read()).get("expires_at")
        return float(value) if isinstance(value, int | float) else None

    async def status(self) -> str:
        """"missing", "expired" (and no refresh token), "refreshable" or "valid"."""
        data = await self._read()
        tokens = data.get("tokens")
        if not isinstance(tokens, dict) or not tokens.get("access_token"):
            return "missing"
        expires_at = data.get("expires_at")
        if isinstance(expires_at, int | float) and expires_at <= time.time():
            return "refreshable" if tokens.get("refresh_token") else "expired"
        return "valid"

    def delete(self) -> bool:
        """Forget everything stored for this server; True if there was something."""
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False

    # -- file -------------------------------------------------------------------------------

    def _parse(self, model: type[_M], raw: Any, key: str) -> _M | None:
        if raw is None:
            return None
        try:
            return model.model_validate(raw)
        except ValidationError:
            # No pydantic message: it would quote the stored values.
            raise TokenFileError(f"{self.path}: the stored {key} are malformed; delete the file "
                                 "(`workbench logout`) and log in again") from None

    async def _read(self) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(self._read_sync)

    def _check_folder(self, folder: Path) -> None:
        """The per-user folder may sit in a shared `token_dir`, where another user can create it
        first (or a symlink by its name) to receive our tokens, or rename and swap files in it."""
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode):
            raise TokenFileError(f"{folder} is not a folder (a symlink?); tokens are not written there: "
                                 "remove it, or set oauth.token_dir to a folder of your own")
        if info.st_uid != os.getuid():
            raise TokenFileError(f"{folder} belongs to another user; tokens are not written there: remove it, "
                                 "or set oauth.token_dir to a folder of your own")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenFileError(f"{folder} is open to other users (mode {stat.filemode(info.st_mode)}); tokens "
                                 f"are not written there: run `chmod 700 {folder}`")

    def _read_sync(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise TokenFileError(f"cannot open the token file {self.path}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise TokenFileError(f"{self.path} is readable by other users (mode {stat.filemode(info.st_mode)}); "
                                     f"its tokens may have leaked: run `chmod 600 {self.path}`, or delete it and "
                                     "log in again")
            if info.st_uid != os.getuid():
                raise TokenFileError(f"{self.path} belongs to another user; delete it and log in again")
            data = f.read(_MAX_FILE_BYTES + 1)
        if len(data) > _MAX_FILE_BYTES:
            raise TokenFileError(f"{self.path} is larger than {_MAX_FILE_BYTES} bytes: not a token file")
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise TokenFileError(f"{self.path} is not valid JSON; delete it and log in again") from None
        if not isinstance(parsed, dict):
            raise TokenFileError(f"{self.path} does not hold a JSON object; delete it and log in again")
        return parsed

    async def _update(self, **fields: Any) -> None:
        await anyio.to_thread.run_sync(lambda: self._update_sync(fields))

    def _update_sync(self, fields: dict[str, Any]) -> None:
        data = self._read_sync()
        data.update(fields)
        self._write_sync(data)

    def _write_sync(self, data: dict[str, Any]) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._check_folder(folder)
            # mkstemp creates the file 0600 from the start; the rename makes it appear whole or not at all.
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as e:  # a read-only or full disk: say which file, not a traceback
            raise TokenFileError(f"cannot write the token file {self.path}: {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(e, OSError):
                raise TokenFileError(f"cannot write the token file {self.path}: {e.strerror or e}; the previous "
                                     "tokens are unchanged") from None
            raise
        with contextlib.suppress(OSError):  # the rename is durable only once the folder entry is
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

