"""Streamable HTTP (both eras) and legacy SSE against the SDK toolbox server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mcp.types as mt
import pytest
from mcp_peers import free_port, start_toolbox, stop

from adapters.mcp import McpWorkbench
from workbench.core import CallContext

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def sse_toolbox() -> Iterator[str]:
    port = free_port()
    proc = start_toolbox("sse", port)
    yield f"http://127.0.0.1:{port}/sse"
    stop(proc)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28", "auto"])
async def test_streamable_http(http_toolbox: str, mode: str) -> None:
    async with McpWorkbench.http(http_toolbox, mode=mode, bearer_token="tok-123", headers={"X-Trace": "1"}) as wb:
        assert wb.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        assert "echo" in {t.name for t in await wb.list_tools()}
        assert (await wb.call_tool("add", {"a": 2, "b": 3})).structured == {"total": 5}
        assert (await wb.call_tool("auth_header", {})).text == "Bearer tok-123"
        assert "tok-123" not in repr(wb)
        progress: list[float] = []
        logs: list[Any] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)

        async def on_log(params: mt.LoggingMessageNotificationParams) -> None:
            logs.append(params.data)

        result = await wb.call_tool("slow", {"seconds": 0.2, "tag": "h"}, CallContext(progress=on_progress, log=on_log))
        assert result.text == "slept 0.2" and progress == [0, 1] and logs == ["slow h started"]
        assert (await wb.read_resource("toolbox://readme")).contents[0].text == "toolbox: a test server"  # type: ignore[union-attr]


async def test_sampling_routed_per_call_over_http(http_toolbox: str) -> None:
    """Two concurrent calls with different relayed callbacks: each server request reaches its own call's."""

    def answer(text: str) -> Any:
        async def sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
            return mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text=text), model="m")

        return sampling

    import anyio

    for mode in ("legacy", "2026-07-28"):
        async with McpWorkbench.http(http_toolbox, mode=mode, relay_client_requests=True) as wb:
            results: dict[str, str] = {}

            async def call(who: str, wb: McpWorkbench = wb, results: dict[str, str] = results) -> None:
                ctx = CallContext(sampling=answer(f"for {who}"))
                results[who] = (await wb.call_tool("think", {"prompt": who}, ctx)).text

            async with anyio.create_task_group() as tg:
                for who in ("alice", "bob"):
                    tg.start_soon(call, who)
            assert results == {"alice": "model said: for alice", "bob": "model said: for bob"}, mode
            declined = await wb.call_tool("think", {"prompt": "nobody"})
            assert declined.is_error and "sampling_callback" in declined.text


async def test_legacy_sse(sse_toolbox: str) -> None:
    async with McpWorkbench.sse(sse_toolbox, name="old", bearer_token="sse-token") as wb:
        assert (await wb.call_tool("echo", {"message": "over sse"})).text == "over sse"
        assert (await wb.call_tool("add", {"a": 1, "b": 1})).structured == {"total": 2}
        assert [p.name for p in await wb.list_prompts()] == ["summarize"]
        assert "sse-token" not in repr(wb)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_list_changed_over_http(http_toolbox: str, mode: str) -> None:
    import anyio

    async with McpWorkbench.http(http_toolbox, mode=mode) as wb:
        changed = anyio.Event()

        async def on_change() -> None:
            changed.set()

        wb.on_tools_changed(on_change)
        name = f"http_fresh_{mode.replace('-', '_')}"
        assert (await wb.call_tool("grow", {"name": name})).text == name
        with anyio.fail_after(10):
            await changed.wait()
        assert name in {t.name for t in await wb.list_tools()}


async def test_from_config_http_and_sse(http_toolbox: str, sse_toolbox: str) -> None:
    from workbench.cli.config import parse_config

    config = parse_config(
        f"""
[servers.web]
url = "{http_toolbox}"
bearer_token = "cfg-token"
mode = "legacy"

[servers.old]
url = "{sse_toolbox}"
"""
    )
    async with McpWorkbench.from_config("web", config.servers["web"]) as web:
        assert web.protocol_version == "2025-11-25"
        assert (await web.call_tool("auth_header", {})).text == "Bearer cfg-token"
        assert "cfg-token" not in repr(web)
    async with McpWorkbench.from_config("old", config.servers["old"]) as old:
        assert (await old.call_tool("whoami", {})).text == "toolbox"


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        McpWorkbench.http("http://127.0.0.1:1/mcp", mode="2025-11-25")  # type: ignore[arg-type]
