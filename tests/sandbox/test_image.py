"""The offline image build reads its mirror from the machine's apt sources, whatever their format."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.image import ImageBuildError, apt_source


def test_deb822_sources_skip_security_and_comments(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment: with a colon\nURIs: http://security.example/debian-security\n"
        "Suites: trixie-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\nComponents: main\n"
    )
    assert apt_source(tmp_path) == ("http://mirror.example/debian", "trixie")


def test_classic_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian buster main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert apt_source(tmp_path) == ("http://mirror.example/debian", "bookworm")


def test_no_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="no Debian apt source"):
        apt_source(tmp_path)


def test_this_machine_has_a_source() -> None:
    uri, suite = apt_source()
    assert uri.startswith(("http://", "https://", "file:/")) and suite
