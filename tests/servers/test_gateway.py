"""The gateway: upstream MCP servers (through `McpWorkbench`) served back out — tools,
resources, prompts, progress, sampling relayed to the connected client, upstream tool-list
changes passed on — and an agent served by one workbench server used as a tool by an agent
in another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import anyio.to_thread
import mcp.types as mt
import pytest
from serve_toolkit import ServeBench
from serving import http_client, serving

from adapters.mcp import McpWorkbench
from servers import ServeSettings
from workbench import CompositeWorkbench, FunctionTool, StaticWorkbench

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO = ROOT / "examples" / "servers" / "demo_server.py"
sys.path.insert(0, str(ROOT / "tests" / "agents"))

pytestmark = pytest.mark.anyio


async def test_upstream_server_is_served_through_faithfully(mode: str) -> None:
    gateway = CompositeWorkbench({"demo": McpWorkbench.stdio(sys.executable, [str(DEMO)], name="demo")})
    progress: list[str | None] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async with serving(gateway) as served, http_client(served.url, mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"demo__add", "demo__echo", "demo__countdown"} <= names
        added = await client.call_tool("demo__add", {"a": 2, "b": 3})
        assert not added.is_error and added.structured_content["total"] == 5  # structured output survives
        counted = await client.call_tool("demo__countdown", {"seconds": 2}, progress_callback=on_progress)
        assert not counted.is_error and len(progress) >= 2
        # A prefixed source's URIs carry the prefix in their scheme (workbench.shaped).
        assert "demo+demo://readme" in {str(r.uri) for r in (await client.list_resources()).resources}
        assert (await client.read_resource("demo+demo://readme")).contents[0].text
        assert "demo__summarize" in {p.name for p in (await client.list_prompts()).prompts}


async def test_upstream_tool_list_change_reaches_gateway_clients() -> None:
    upstream = ServeBench()
    async with serving(upstream) as up:
        gateway = CompositeWorkbench({"up": McpWorkbench.http(up.url, name="up", mode="legacy")})
        async with serving(gateway) as gw:
            seen = anyio.Event()

            async def on_message(message: object) -> None:
                if isinstance(message, mt.ToolListChangedNotification):
                    seen.set()

            async with http_client(gw.url, mode="legacy", message_handler=on_message) as legacy, \
                    http_client(gw.url) as modern:
                await legacy.list_tools()
                async with modern.listen(tools_list_changed=True) as subscription:
                    upstream.add(FunctionTool(lambda: "new", name="fresh", description="Appeared later."))
                    await upstream.notify_tools_changed()
                    with anyio.fail_after(10):
                        await subscription.__anext__()
                        await seen.wait()
                assert "up__fresh" in {t.name for t in (await modern.list_tools()).tools}
                assert (await modern.call_tool("up__fresh", {})).content[0].text == "new"


async def test_an_upstream_that_goes_down_fails_only_its_own_calls_until_it_is_back() -> None:
    import httpx2
    from serving import free_port

    port = free_port()
    gateway = CompositeWorkbench({
        "up": McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", name="up", max_backoff=0.3, connect_timeout=5),
        "local": StaticWorkbench([FunctionTool(lambda: "here", name="ping", description="Always here.")]),
    })

    async def names(client) -> set[str]:  # type: ignore[no-untyped-def]
        return {t.name for t in (await client.list_tools()).tools}

    async def upstream_until(stop: anyio.Event, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:  # type: ignore[no-untyped-def]
        async with serving(ServeBench(), port=port):  # its own task: it stops before what started later
            task_status.started()
            await stop.wait()

    async with anyio.create_task_group() as tg:
        stop = anyio.Event()
        await tg.start(upstream_until, stop)
        async with serving(gateway) as gw, http_client(gw.url) as client, httpx2.AsyncClient() as http:
            assert {"up__add", "local__ping"} <= await names(client)
            stop.set()  # the upstream server goes away
            await anyio.sleep(0.5)
            # The call that finds it gone fails with the reason; from then on its tools are not
            # offered, a call by an old name still says why, and the other source is untouched.
            down = await client.call_tool("up__add", {"a": 1, "b": 2})
            assert down.is_error and "up" in down.content[0].text
            assert await names(client) == {"local__ping"}
            again = await client.call_tool("up__add", {"a": 1, "b": 2})
            assert again.is_error and "'up' is down" in again.content[0].text
            assert (await client.call_tool("local__ping", {})).content[0].text == "here"
            ready = (await http.get(f"{gw.base}/readyz")).json()
            assert ready["sources"]["up"]["state"] != "up" and ready["sources"]["local"]["state"] == "up"

            await tg.start(upstream_until, anyio.Event())  # it comes back
            with anyio.fail_after(15):
                while "up__add" not in await names(client):
                    await anyio.sleep(0.2)
            assert (await client.call_tool("up__add", {"a": 1, "b": 2})).structured_content == {"total": 3}
        tg.cancel_scope.cancel()


async def test_sampling_from_an_upstream_is_relayed_to_the_gateway_client() -> None:
    async def sampling(context: object, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
        return mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text="relayed"), model="m")

    async with serving(ServeBench()) as up:
        # Server→client requests exist on 2025-era connections only, so both hops use the handshake.
        upstream = McpWorkbench.http(up.url, name="up", mode="legacy", relay_client_requests=True)
        async with serving(CompositeWorkbench({"up": upstream})) as gw, \
                http_client(gw.url, mode="legacy", sampling_callback=sampling) as client:
            result = await client.call_tool("up__ask", {"question": "who answers?"})
    assert result.content[0].text == "relayed"


def run_python(code: str) -> str:
    """Run Python code in a fresh interpreter and return what it printed."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


async def test_an_agent_served_by_one_server_is_a_tool_for_an_agent_in_another() -> None:
    from model_server import ModelServer

    from workbench.agents.assistant import AssistantAgent
    from workbench.agents.code_executor import CodeExecutorAgent
    from workbench.agents.models import OpenAIChatClient
    from workbench.agents.tool import AgentTool

    inner = StaticWorkbench([AgentTool(CodeExecutorAgent("runner", StaticWorkbench([run_python])))], name="inner")
    with ModelServer() as model_server:
        model_server.script("planner", [
            {"tool_calls": [{"name": "a__runner", "arguments": {"task": "```python\nprint(6 * 7)\n```"}}]},
            {"content": "The runner says 42."},
        ])
        model = OpenAIChatClient("planner", base_url=model_server.base_url)
        async with serving(inner) as a:
            remote = CompositeWorkbench({"a": McpWorkbench.http(a.url, name="a")})
            outer = CompositeWorkbench({
                "remote": remote,
                "agents": StaticWorkbench([AgentTool(AssistantAgent("planner", model, remote))]),
            })
            progress: list[str] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(message or "")

            async with serving(outer, ServeSettings(transport="http", expose=["agents__*"])) as b, \
                    http_client(b.url) as client:
                assert [t.name for t in (await client.list_tools()).tools] == ["agents__planner"]
                result = await client.call_tool("agents__planner", {"task": "what is 6*7?"},
                                                progress_callback=on_progress)
        await model.close()
        requests = model_server.requests("planner")
    assert not result.is_error and result.structured_content["answer"] == "The runner says 42."
    assert any("planner calls a__runner" in line for line in progress)
    tool_reply = [m for m in requests[-1]["messages"] if m["role"] == "tool"][0]["content"]
    assert "42" in tool_reply  # the inner agent really ran the code on the other server
