"""The agent's toolset when a workbench itself breaks: the model hears of it, the turn goes on."""

from __future__ import annotations

import pytest

from workbench import StaticWorkbench
from workbench.agents.assistant import AssistantAgent
from workbench.agents.messages import ToolResultEvent
from workbench.agents.replay import ReplayChatClient

pytestmark = pytest.mark.anyio


def fetch(url: str) -> str:
    """Fetch a page."""
    return url


class Unplugged(StaticWorkbench):
    """Lists its tools, then raises on every call, as a workbench with a bug would."""

    async def call_tool(self, name, arguments=None, ctx=None):  # type: ignore[no-untyped-def]
        raise ConnectionResetError("upstream reset the connection")


async def test_a_workbench_that_raises_becomes_an_error_result_for_the_model() -> None:
    model = ReplayChatClient([{"tool_calls": [{"name": "fetch", "arguments": {"url": "x"}}]}, "tried; it failed"])
    agent = AssistantAgent("a", model, workbench=Unplugged([fetch]))  # type: ignore[arg-type]
    result = await agent.run("get x")
    assert result.text == "tried; it failed"
    [event] = [e for e in result.messages if isinstance(e, ToolResultEvent)]
    assert event.results[0].is_error
    assert "ConnectionResetError" in event.results[0].content and "upstream reset" in event.results[0].content


class SlowToStart(StaticWorkbench):
    """Cannot list its tools until `up` is set (a server still starting)."""

    up = False

    async def list_tools(self):  # type: ignore[no-untyped-def]
        if not self.up:
            raise ConnectionRefusedError("not yet")
        return await super().list_tools()


async def test_a_workbench_that_failed_to_list_is_asked_again_next_turn() -> None:
    late = SlowToStart([fetch], name="late")
    agent = AssistantAgent("a", ReplayChatClient([]), workbench=[late, StaticWorkbench([len], name="other")])  # type: ignore[arg-type]
    assert [t["function"]["name"] for t in await agent.toolset.openai_tools()] == ["len"]
    late.up = True  # no tools-changed notice: the failed listing alone must not be cached
    assert [t["function"]["name"] for t in await agent.toolset.openai_tools()] == ["fetch", "len"]
