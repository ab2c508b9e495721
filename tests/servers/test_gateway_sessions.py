"""`session = "per_client"`: each gateway client gets its own upstream session, so what a
2025-era upstream keeps per session — stored values, its log level, its subscriptions — never
crosses from one client to another; bounded, and closed when the client's session ends."""

from __future__ import annotations

import warnings

import anyio
import pytest
from serving import free_port, http_client, serving
from test_gateway_surface import Inbox, text, upstream_process

from adapters.config import ServerConfig
from adapters.mcp import McpWorkbench
from workbench import CompositeWorkbench

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


async def test_two_clients_never_see_each_others_upstream_session() -> None:
    port = free_port()
    with upstream_process(port):
        upstream = McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode="legacy", session="per_client",
                                     max_client_sessions=2)
        async with serving(CompositeWorkbench({"up": upstream})) as gw:
            a, b = Inbox(), Inbox()
            async with http_client(gw.url, mode="legacy", message_handler=a.on_message) as ca, \
                    http_client(gw.url, mode="legacy", message_handler=b.on_message) as cb:
                await ca.call_tool("up__store", {"value": "mine"})
                assert text(await cb.call_tool("up__stored", {})) == "<none>"  # B's upstream session is its own
                assert text(await ca.call_tool("up__stored", {})) == "mine"

                await ca.set_logging_level("error")
                await cb.set_logging_level("debug")
                assert text(await ca.call_tool("up__my_level", {})) == "error"
                assert text(await cb.call_tool("up__my_level", {})) == "debug"

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    await ca.subscribe_resource("up+notes://readme")
                await cb.call_tool("up__touch", {"uri": "notes://readme"})
                await a.wait_for(lambda: a.updated)
                assert a.updated == ["up+notes://readme"] and b.updated == []

                # At the cap a third client is told so, and the others keep working.
                async with http_client(gw.url, mode="legacy") as third:
                    refused = await third.call_tool("up__stored", {})
                    assert refused.is_error and "max_client_sessions" in text(refused)
                assert text(await ca.call_tool("up__stored", {})) == "mine"
                assert len(upstream._clients or ()) == 2
            # Both clients left: their upstream sessions are closed with theirs.
            with anyio.fail_after(10):
                while len(upstream._clients or ()) > 0:
                    await anyio.sleep(0.05)


def test_the_session_mode_comes_from_the_config() -> None:
    cfg = ServerConfig(url="http://127.0.0.1:9/mcp", session="per_client", max_client_sessions=3)
    workbench = McpWorkbench.from_config("up", cfg)
    assert workbench._clients is not None and workbench._clients.limit == 3
    with pytest.raises(ValueError, match="session"):
        ServerConfig(url="http://127.0.0.1:9/mcp", session="per_user")  # type: ignore[arg-type]
