"""Through the gateway, an upstream answers a 2026-07-28 client as it would answer it straight:
it sees the client's own declared capabilities (whatever era the upstream speaks), and a tool
name it does not list gets its own answer, while our own tools keep MCP's protocol error.
Real SDK clients, a real gateway, the conformance fixture as a real upstream process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mcp.types as mt
import pytest
from mcp.shared.exceptions import MCPError
from serving import free_port, http_client, serving
from test_gateway_eras import sampling

from adapters.mcp import McpWorkbench
from workbench import CompositeWorkbench, Mount, StaticWorkbench, tool

FIXTURE = Path(__file__).parents[1] / "conformance" / "everything_server.py"
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@contextmanager
def fixture(era: str) -> Iterator[str]:
    """The conformance fixture speaking `era` ("both", "2025", "2026") over HTTP; its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(FIXTURE), "http", str(port), "--era", era],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fixture did not start on port {port}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def gateway_of(url: str) -> CompositeWorkbench:
    """What `workbench serve` builds for `[servers.up] url=… prefix=""`."""
    return CompositeWorkbench({"up": Mount(McpWorkbench.http(url, relay_client_requests=True), prefix="")})


@pytest.mark.parametrize("era", ["both", "2025", "2026"])
async def test_the_upstream_sees_the_callers_capabilities_not_the_gateways(era: str) -> None:
    with fixture(era) as url:
        async with serving(gateway_of(url)) as gw:
            # The gateway itself can answer sampling (it relays); the caller declared nothing.
            async with http_client(gw.url, mode="2026-07-28") as bare:
                with pytest.raises(MCPError) as refused:
                    await bare.call_tool("test_missing_capability", {})
                assert refused.value.code == mt.MISSING_REQUIRED_CLIENT_CAPABILITY
            async with http_client(gw.url, mode="2026-07-28", sampling_callback=sampling) as declaring:
                result = await declaring.call_tool("test_missing_capability", {})
                assert not result.is_error


async def test_a_name_nobody_lists_gets_the_one_possible_owners_own_answer() -> None:
    with fixture("both") as url:
        async with serving(gateway_of(url)) as gw, http_client(gw.url, mode="2026-07-28") as client:
            # MCPServer answers a tool it does not have with an isError result; relayed as is.
            result = await client.call_tool("test_streaming_elicitation", {})
            assert result.is_error


@tool
def echo(text: str) -> str:
    """Say it back."""
    return text


async def test_our_own_unknown_tool_stays_a_protocol_error_and_two_owners_ask_nobody() -> None:
    with fixture("both") as url:
        for served in (StaticWorkbench([echo]),
                       CompositeWorkbench({"up": Mount(McpWorkbench.http(url, relay_client_requests=True), prefix=""),
                                           "mine": Mount(StaticWorkbench([echo]), prefix="")})):
            async with serving(served) as gw, http_client(gw.url, mode="2026-07-28") as client:
                with pytest.raises(MCPError) as unknown:
                    await client.call_tool("test_streaming_elicitation", {})
                assert unknown.value.code == mt.INVALID_PARAMS and "unknown tool" in unknown.value.message
