"""Fixtures for the MCP client adapter tests: SDK test servers on stdio, streamable HTTP and
SSE (on free 127.0.0.1 ports), and the npm "everything" server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_peers import everything_or_skip, free_port, start_toolbox, stop


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # Session scope lets module-scoped async fixtures share the tests' event loop.
    return "asyncio"


@pytest.fixture(scope="module")
def http_toolbox() -> Iterator[str]:
    """A toolbox server on streamable HTTP; yields its endpoint URL."""
    port = free_port()
    proc = start_toolbox("http", port)
    yield f"http://127.0.0.1:{port}/mcp"
    stop(proc)


@pytest.fixture(scope="session")
def everything_js() -> Path:
    return everything_or_skip()
