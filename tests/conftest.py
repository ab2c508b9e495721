"""Shared test settings: async tests run on anyio's pytest plugin with asyncio."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
