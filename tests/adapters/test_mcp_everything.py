"""The reference "everything" server from npm, over stdio and streamable HTTP."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp.types as mt
import pytest
from mcp_peers import free_port, stop, wait_for_port

from adapters.mcp import McpWorkbench
from workbench.composite import CompositeWorkbench
from workbench.core import CallContext, ToolNotFoundError

pytestmark = [pytest.mark.anyio, pytest.mark.npm]

SAMPLED: list[str] = []


async def _sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
    SAMPLED.append(str(params.messages[0].content))
    text = mt.TextContent(type="text", text="sampled by the workbench")
    return mt.CreateMessageResult(role="assistant", content=text, model="wb")


async def _elicitation(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
    return mt.ElicitResult(action="decline")


@pytest.fixture(scope="module")
async def stdio_everything(everything_js: Path) -> AsyncIterator[McpWorkbench]:
    wb = McpWorkbench.stdio(
        "node", [str(everything_js)], name="everything", sampling_callback=_sampling, elicitation_callback=_elicitation
    )
    async with wb:
        yield wb


@pytest.fixture(scope="module")
def http_everything(everything_js: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["node", str(everything_js), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc)
    yield f"http://127.0.0.1:{port}/mcp"  # it binds every interface: talk to loopback only
    stop(proc)


EXPECTED_TOOLS = {
    "echo",
    "get-sum",
    "get-structured-content",
    "get-tiny-image",
    "get-resource-links",
    "get-resource-reference",
    "get-annotated-message",
    "trigger-long-running-operation",
    "trigger-sampling-request",
    "trigger-elicitation-request",
}


async def test_every_tool_listed(stdio_everything: McpWorkbench) -> None:
    tools = {t.name: t for t in await stdio_everything.list_tools()}
    assert EXPECTED_TOOLS <= set(tools), sorted(tools)
    assert tools["get-structured-content"].output_schema is not None


async def test_echo_sum_structured_image_links(stdio_everything: McpWorkbench) -> None:
    wb = stdio_everything
    assert "hi" in (await wb.call_tool("echo", {"message": "hi"})).text
    assert "5" in (await wb.call_tool("get-sum", {"a": 2, "b": 3})).text
    weather = await wb.call_tool("get-structured-content", {"location": "Chicago"})
    assert not weather.is_error and isinstance(weather.structured, dict) and "temperature" in weather.structured
    image = await wb.call_tool("get-tiny-image", {})
    assert any(isinstance(c, mt.ImageContent) and c.mime_type == "image/png" for c in image.content)
    links = await wb.call_tool("get-resource-links", {"count": 2})
    assert sum(isinstance(c, mt.ResourceLink) for c in links.content) == 2
    embedded = await wb.call_tool("get-resource-reference", {"resourceType": "Text", "resourceId": 1})
    assert any(isinstance(c, mt.EmbeddedResource) for c in embedded.content)


async def test_progress_from_the_long_running_tool(stdio_everything: McpWorkbench) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        seen.append((p, total))

    result = await stdio_everything.call_tool(
        "trigger-long-running-operation", {"duration": 0.6, "steps": 3}, CallContext(progress=on_progress)
    )
    assert not result.is_error
    assert [p for p, _ in seen] == [1, 2, 3] and all(total == 3 for _, total in seen)


async def test_sampling_and_elicitation_reach_the_callbacks(stdio_everything: McpWorkbench) -> None:
    sampled = await stdio_everything.call_tool("trigger-sampling-request", {"prompt": "the sky", "maxTokens": 10})
    assert not sampled.is_error and "sampled by the workbench" in sampled.text and SAMPLED
    elicited = await stdio_everything.call_tool("trigger-elicitation-request", {})
    assert not elicited.is_error and "decline" in elicited.text.lower()


async def test_resource_and_prompt(stdio_everything: McpWorkbench) -> None:
    resources = await stdio_everything.list_resources()
    assert resources
    read = await stdio_everything.read_resource(str(resources[0].uri))
    assert read.contents and str(read.contents[0].uri) == str(resources[0].uri)
    prompt = await stdio_everything.get_prompt("args-prompt", {"city": "Paris"})
    assert "Paris" in str(prompt.messages[0].content)


async def test_unknown_tool_and_bad_arguments(stdio_everything: McpWorkbench) -> None:
    with pytest.raises(ToolNotFoundError, match="get-sum"):
        await stdio_everything.call_tool("get_sum", {})
    bad = await stdio_everything.call_tool("get-sum", {"a": "two"})
    assert bad.is_error and bad.text


async def test_over_streamable_http(http_everything: str) -> None:
    async with McpWorkbench.http(http_everything, name="everything") as wb:
        assert wb.protocol_version == "2025-11-25"
        assert {"echo", "get-sum", "trigger-long-running-operation"} <= {t.name for t in await wb.list_tools()}
        assert "over http" in (await wb.call_tool("echo", {"message": "over http"})).text
        weather = await wb.call_tool("get-structured-content", {"location": "New York"})
        assert isinstance(weather.structured, dict)
        seen: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            seen.append(p)

        await wb.call_tool("trigger-long-running-operation", {"duration": 0.4, "steps": 2},
                           CallContext(progress=on_progress))
        assert seen == [1, 2]
        assert (await wb.get_prompt("simple-prompt")).messages


async def test_everything_next_to_sdk_servers_in_a_composite(everything_js: Path, http_everything: str) -> None:
    from mcp_peers import PYTHON, TOOLBOX

    composite = CompositeWorkbench(
        {
            "npm": McpWorkbench.stdio("node", [str(everything_js)]),
            "web": McpWorkbench.http(http_everything),
            "sdk": McpWorkbench.stdio(PYTHON, [TOOLBOX]),
        }
    )
    async with composite:
        names = {t.name for t in await composite.list_tools()}
        assert {"npm__echo", "web__echo", "sdk__echo"} <= names
        with anyio.fail_after(10):
            for key in ("npm", "web", "sdk"):
                assert "twice" in (await composite.call_tool(f"{key}__echo", {"message": "twice"})).text
