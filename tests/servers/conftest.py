"""Fixtures of the servers tests; their helpers live in `serving.py`."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol generations: the handshake (legacy) and stateless 2026-07-28 (auto lands there)."""
    return request.param
