"""The token file: 0600 from birth, replaced atomically, refused when loosened or corrupt,
and never shown (repr, errors)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl

import adapters.token_store as token_store
from adapters.token_store import FileTokenStorage, TokenFileError, token_path

pytestmark = pytest.mark.anyio

ACCESS = "at-SECRET-0123456789"
REFRESH = "rt-SECRET-9876543210"


def tokens(expires_in: int | None = 3600, refresh: str | None = REFRESH) -> OAuthToken:
    return OAuthToken(access_token=ACCESS, expires_in=expires_in, refresh_token=refresh, scope="tools")


@pytest.fixture
def store(tmp_path: Path) -> FileTokenStorage:
    return FileTokenStorage(token_path("github", "https://example.test/mcp", tmp_path))


async def test_the_file_is_private_from_the_first_write(store: FileTokenStorage) -> None:
    await store.set_tokens(tokens())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    loaded = await store.get_tokens()
    assert loaded is not None and loaded.access_token == ACCESS and loaded.refresh_token == REFRESH
    expires_at = await store.expires_at()
    assert expires_at is not None and time.time() + 3000 < expires_at <= time.time() + 3600


async def test_client_info_and_tokens_live_side_by_side(store: FileTokenStorage) -> None:
    info = OAuthClientInformationFull(client_id="c1", client_secret="dcr-secret",
                                      redirect_uris=[AnyUrl("http://127.0.0.1:5000/callback")])
    await store.set_client_info(info)
    await store.set_tokens(tokens())
    assert (await store.get_client_info()) == info
    assert (await store.get_tokens()) is not None


async def test_a_failed_write_leaves_the_old_tokens_whole(store: FileTokenStorage,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    await store.set_tokens(tokens())
    before = store.path.read_bytes()

    def half_then_crash(data: object, f: object, **_: object) -> None:
        f.write('{"tokens": {"access_to')  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(token_store.json, "dump", half_then_crash)
    with pytest.raises(TokenFileError, match="disk full; the previous tokens are unchanged"):
        await store.set_tokens(OAuthToken(access_token="new"))
    assert store.path.read_bytes() == before
    assert [p.name for p in store.path.parent.iterdir()] == [store.path.name]  # no temporary file left


async def test_a_file_others_can_read_is_refused_and_its_content_not_shown(store: FileTokenStorage) -> None:
    await store.set_tokens(tokens())
    store.path.chmod(0o644)
    with pytest.raises(TokenFileError) as caught:
        await store.get_tokens()
    assert "chmod 600" in str(caught.value)
    assert ACCESS not in str(caught.value)


@pytest.mark.parametrize("content", ['{"tokens": ', '["not", "an", "object"]',
                                     json.dumps({"tokens": {"access_token": ACCESS, "expires_in": "soon"}})])
async def test_a_corrupt_file_is_an_error_that_quotes_nothing(store: FileTokenStorage, content: str) -> None:
    store.path.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(store.path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(TokenFileError) as caught:
        await store.get_tokens()
    assert "log in again" in str(caught.value)
    assert ACCESS not in str(caught.value) and "soon" not in str(caught.value)


async def test_repr_names_the_file_only(store: FileTokenStorage) -> None:
    await store.set_tokens(tokens())
    assert ACCESS not in repr(store) and REFRESH not in repr(store)
    assert str(store.path) in repr(store)


async def test_status_says_whether_a_login_is_needed(store: FileTokenStorage) -> None:
    assert await store.status() == "missing"
    await store.set_tokens(tokens())
    assert await store.status() == "valid"
    await store.set_tokens(tokens(expires_in=-1))
    assert await store.status() == "refreshable"
    await store.set_tokens(tokens(expires_in=-1, refresh=None))
    assert await store.status() == "expired"
    assert store.delete() and await store.status() == "missing"
    assert not store.delete()


def test_one_file_per_server_url_and_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = token_path("gh", "https://a.test/mcp", tmp_path)
    assert a != token_path("gh", "https://b.test/mcp", tmp_path)  # the name now points elsewhere
    assert a != token_path("other", "https://a.test/mcp", tmp_path)
    monkeypatch.setattr(token_store.getpass, "getuser", lambda: "alice")
    assert token_path("gh", "https://a.test/mcp", tmp_path).parent.name == "alice"
    assert token_path("../../etc", "https://a.test/mcp", tmp_path).parent.parent == tmp_path  # no escape


def test_the_default_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(token_store.TOKEN_DIR_ENV, str(tmp_path))
    assert token_path("gh", "https://a.test/mcp").is_relative_to(tmp_path)


async def test_a_full_or_read_only_disk_is_an_error_naming_the_file(store: FileTokenStorage,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(token_store.tempfile, "mkstemp", no_space)
    with pytest.raises(TokenFileError, match="cannot write the token file .*No space left on device"):
        await store.set_tokens(tokens())


async def test_a_token_folder_someone_else_can_reach_is_not_written_to(tmp_path: Path) -> None:
    # A shared token_dir: another user made our per-user folder first, loosened it, or put a
    # symlink by its name pointing at a folder they read.
    loose = FileTokenStorage(token_path("a", "https://example.test/mcp", tmp_path / "loose"))
    loose.path.parent.mkdir(parents=True, mode=0o700)
    loose.path.parent.chmod(0o777)
    with pytest.raises(TokenFileError, match="open to other users"):
        await loose.set_tokens(tokens())

    trap = tmp_path / "attacker"
    trap.mkdir(mode=0o700)
    linked = FileTokenStorage(token_path("a", "https://example.test/mcp", tmp_path / "linked"))
    linked.path.parent.parent.mkdir(parents=True)
    linked.path.parent.symlink_to(trap)
    with pytest.raises(TokenFileError, match="not a folder"):
        await linked.set_tokens(tokens())
    assert list(trap.iterdir()) == []

    if os.getuid() == 0:  # only root can hand a folder to another user
        owned = FileTokenStorage(token_path("a", "https://example.test/mcp", tmp_path / "owned"))
        owned.path.parent.mkdir(parents=True, mode=0o700)
        os.chown(owned.path.parent, 65534, 65534)
        with pytest.raises(TokenFileError, match="belongs to another user"):
            await owned.set_tokens(tokens())
