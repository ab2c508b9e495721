"""Lifecycle and faults: closing in any order from any task, servers that die, restart,
never answer, or are down at start — each gives a clear error, never a hang or a traceback."""

from __future__ import annotations

import os
import time

import anyio
import pytest
from mcp_peers import BLACKHOLE, PYTHON, TOOLBOX, free_port, start_toolbox, stop

from adapters.mcp import McpWorkbench
from workbench.composite import CompositeWorkbench
from workbench.core import CallContext, WorkbenchError

pytestmark = pytest.mark.anyio


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once it is reaped or defunct.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_close_in_fifo_order_from_another_task() -> None:
    benches = [McpWorkbench.stdio(PYTHON, [TOOLBOX, "--name", f"s{i}"], name=f"s{i}") for i in range(3)]
    pids: list[int] = []

    async def open_all() -> None:  # opened in a child task that ends before the closes
        for wb in benches:
            await wb.start()
            pids.append((await wb.call_tool("pid", {})).structured["result"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_all)
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    started = time.monotonic()
    for wb in benches:  # oldest first: the order the SDK's exit stacks cannot take
        await wb.stop()
    assert time.monotonic() - started < 15
    assert [wb.health().state for wb in benches] == ["stopped"] * 3
    assert not any(_alive(p) for p in pids)
    # The event loop is not poisoned: new work still runs.
    async with McpWorkbench.stdio(PYTHON, [TOOLBOX]) as again:
        assert (await again.call_tool("echo", {"message": "ok"})).text == "ok"


async def test_concurrent_stops_from_many_tasks() -> None:
    benches = [McpWorkbench.stdio(PYTHON, [TOOLBOX], name=f"c{i}") for i in range(3)]
    async with anyio.create_task_group() as tg:
        for wb in benches:
            tg.start_soon(wb.start)
    async with anyio.create_task_group() as tg:
        for wb in benches:
            tg.start_soon(wb.stop)
    assert all(wb.health().state == "stopped" for wb in benches)
    result = await benches[0].call_tool("echo", {"message": "x"})
    assert result.is_error and "stopped" in result.text


async def test_three_servers_with_colliding_names_in_a_composite() -> None:
    composite = CompositeWorkbench(
        {k: McpWorkbench.stdio(PYTHON, [TOOLBOX, "--name", k], name=k, mode="legacy" if k == "b" else "auto")
         for k in "abc"}
    )
    async with composite:
        names = {t.name for t in await composite.list_tools()}
        assert {"a__whoami", "b__whoami", "c__whoami", "a__echo", "b__echo", "c__echo"} <= names
        for key in "abc":
            assert (await composite.call_tool(f"{key}__whoami", {})).text == key
        assert (await composite.call_tool("b__add", {"a": 1, "b": 2})).structured == {"total": 3}


async def test_stdio_server_crash_then_reconnect() -> None:
    async with McpWorkbench.stdio(PYTHON, [TOOLBOX], name="fragile") as wb:
        first = (await wb.call_tool("pid", {})).structured["result"]
        crashed = await wb.call_tool("crash", {})
        assert crashed.is_error
        assert "MCP server 'fragile' disconnected" in crashed.text and "will reconnect on the next call" in crashed.text
        health = wb.health()
        assert health.state == "down" and "simulated crash" in health.detail  # the server's last stderr lines
        second = (await wb.call_tool("pid", {})).structured["result"]
        assert second != first and wb.health().state == "up"


async def test_stdio_server_killed_between_calls_is_noticed() -> None:
    async with McpWorkbench.stdio(PYTHON, [TOOLBOX], name="victim") as wb:
        pid = (await wb.call_tool("pid", {})).structured["result"]
        os.kill(pid, 9)
        with anyio.fail_after(5):  # noticed from the transport's EOF, without a call failing first
            while wb.health().state == "up":
                await anyio.sleep(0.02)
        assert wb.health().state == "down"
        assert (await wb.call_tool("echo", {"message": "back"})).text == "back"


async def test_never_answering_server_times_out_at_start() -> None:
    wb = McpWorkbench.stdio(PYTHON, [BLACKHOLE], name="silent", connect_timeout=1, mode="legacy")
    started = time.monotonic()
    with pytest.raises(WorkbenchError, match="no answer to the MCP handshake within 1 s"):
        await wb.start()
    assert time.monotonic() - started < 6
    assert wb.health().state == "down"
    # Calls fail fast while backing off instead of hammering the server.
    started = time.monotonic()
    result = await wb.call_tool("anything", {})
    assert result.is_error and "next reconnect attempt" in result.text and time.monotonic() - started < 0.5
    await wb.stop()


async def test_missing_command_is_a_clear_start_error() -> None:
    wb = McpWorkbench.stdio("/nonexistent/mcp-server", name="ghost")
    with pytest.raises(WorkbenchError, match="cannot connect to MCP server 'ghost'.*No such file"):
        await wb.start()
    await wb.stop()


async def test_a_server_that_dies_at_startup_shows_its_stderr() -> None:
    crash = "import sys; sys.stderr.write('fatal: GITHUB_TOKEN is not set\\n'); sys.exit(2)"
    wb = McpWorkbench.stdio(PYTHON, ["-c", crash], name="broken")
    with pytest.raises(WorkbenchError, match="GITHUB_TOKEN is not set") as raised:
        await wb.start()
    assert "Traceback" not in str(raised.value)
    assert wb.health().state == "down" and "GITHUB_TOKEN is not set" in wb.health().detail
    await wb.stop()


async def test_composite_starts_with_one_server_down() -> None:
    port = free_port()
    composite = CompositeWorkbench(
        {
            "up": McpWorkbench.stdio(PYTHON, [TOOLBOX], name="up"),
            "down": McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", name="down", connect_timeout=2),
        }
    )
    async with composite:
        by_source = composite.health_by_source()
        assert by_source["up"].state == "up" and by_source["down"].state == "down"
        assert "ConnectError" in by_source["down"].detail
        names = {t.name for t in await composite.list_tools()}
        assert "up__echo" in names and not any(n.startswith("down__") for n in names)
        # The server comes up later: the next listing (after the backoff) finds its tools.
        proc = start_toolbox("http", port)
        try:
            with anyio.fail_after(10):
                while "down__echo" not in {t.name for t in await composite.list_tools()}:
                    await anyio.sleep(0.2)
            assert (await composite.call_tool("down__echo", {"message": "late"})).text == "late"
        finally:
            stop(proc)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_http_server_killed_mid_call_and_restarted(mode: str) -> None:
    port = free_port()
    proc = start_toolbox("http", port)
    try:
        async with McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", name="web", mode=mode) as wb:
            results = []

            async def call() -> None:
                results.append(await wb.call_tool("slow", {"seconds": 20, "tag": "k"}))

            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.sleep(0.5)
                stop(proc)
            assert time.monotonic() - started < 10
            assert results[0].is_error and "MCP server 'web' disconnected" in results[0].text
            down = await wb.call_tool("echo", {"message": "x"})
            assert down.is_error and ("cannot connect" in down.text or "is down" in down.text)
            proc = start_toolbox("http", port)
            with anyio.fail_after(15):  # the backoff allows a new attempt within a few seconds
                while (result := await wb.call_tool("echo", {"message": "back"})).is_error:
                    assert "next reconnect attempt" in result.text or "cannot connect" in result.text
                    await anyio.sleep(0.2)
            assert result.text == "back" and wb.health().state == "up"
            # A restart between calls (the legacy session is gone: 404) is recovered within the call.
            stop(proc)
            proc = start_toolbox("http", port)
            after = await wb.call_tool("echo", {"message": "again"})
            if mode == "legacy":
                assert after.text == "again"
            else:
                assert after.text == "again" or "will reconnect on the next call" in after.text
                assert (await wb.call_tool("echo", {"message": "again"})).text == "again"
    finally:
        stop(proc)


async def test_deadline_bounds_a_hanging_http_call(http_toolbox: str) -> None:
    async with McpWorkbench.http(http_toolbox, name="web", timeout=60) as wb:
        started = time.monotonic()
        result = await wb.call_tool("hang", {}, CallContext().with_timeout(0.5))
        assert result.is_error and "timed out" in result.text and time.monotonic() - started < 5


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_every_page_of_tools_is_listed(mode: str) -> None:
    from mcp_peers import SERVERS

    async with McpWorkbench.stdio(PYTHON, [str(SERVERS / "paged.py")], name="paged", mode=mode) as wb:
        names = [t.name for t in await wb.list_tools()]
        assert len(names) == 250 and names[0] == "tool_000" and names[-1] == "tool_249"
        assert (await wb.call_tool("tool_249", {})).text == "called tool_249"


async def test_a_crash_looping_server_is_not_hammered() -> None:
    async with McpWorkbench.stdio(PYTHON, [TOOLBOX], name="looping") as wb:
        assert (await wb.call_tool("crash", {})).is_error
        assert (await wb.call_tool("crash", {})).is_error  # reconnected at once, died again at once
        gated = await wb.call_tool("echo", {"message": "x"})
        assert gated.is_error and "next reconnect attempt" in gated.text and "simulated crash" in gated.text
        with anyio.fail_after(5):
            while (result := await wb.call_tool("echo", {"message": "later"})).is_error:
                await anyio.sleep(0.1)
        assert result.text == "later"
