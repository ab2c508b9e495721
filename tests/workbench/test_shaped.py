"""The catalog-shaping wrapper every consumer uses: composite mounts, agents' tools, `expose`."""

from __future__ import annotations

from typing import Any

import mcp.types as mt
import pytest

from workbench import CompositeWorkbench, Health, Mount, StaticWorkbench, ToolNotFoundError, Workbench
from workbench.core import CallContext, ToolResult
from workbench.shaped import Globs, Shaped

pytestmark = pytest.mark.anyio


def echo(message: str) -> str:
    return message


def add(a: int, b: int) -> int:
    return a + b


class Counting(StaticWorkbench):
    """Counts the calls that reach it, and has a prompt."""

    def __init__(self) -> None:
        super().__init__([echo, add], name="counting")
        self.calls: list[str] = []
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        self.calls.append(name)
        return await super().call_tool(name, arguments, ctx)

    async def list_prompts(self) -> list[mt.Prompt]:
        return [mt.Prompt(name="hello"), mt.Prompt(name="secret")]


async def test_prefix_filter_rename_and_descriptions() -> None:
    shaped = Shaped(Counting(), prefix="c", tools=Globs(exclude=("add",)), rename={"echo": "say"},
                    descriptions={"echo": "Says it back"})
    [spec] = await shaped.list_tools()
    assert (spec.name, spec.description) == ("say", "Says it back")
    assert (await shaped.call_tool("say", {"message": "hi"})).text == "hi"
    for hidden in ("c__add", "c__echo", "add"):  # excluded, renamed away, not ours
        with pytest.raises(ToolNotFoundError):
            await shaped.call_tool(hidden, {"a": 1, "b": 2})


async def test_a_name_it_would_not_serve_never_reaches_the_inner_workbench() -> None:
    inner = Counting()
    shaped = Shaped(inner, tools=Globs(("echo",)), prompts=Globs(("echo",)))
    with pytest.raises(ToolNotFoundError) as refused:
        await shaped.call_tool("add", {"a": 1, "b": 2})  # before any listing, too
    assert inner.calls == [] and "add" in str(refused.value)
    assert (await shaped.call_tool("echo", {"message": "x"})).text == "x"  # admitted, not yet listed: forwarded
    assert await shaped.list_prompts() == []


async def test_names_stay_unchanged_without_a_prefix_and_prompts_follow_the_prefix() -> None:
    shaped = Shaped(Counting(), prefix="p")
    assert [p.name for p in await shaped.list_prompts()] == ["p__hello", "p__secret"]
    assert [s.name for s in await Shaped(StaticWorkbench([echo])).list_tools()] == ["echo"]


async def test_health_by_source_defaults_to_the_workbench_itself() -> None:
    class Down(StaticWorkbench):
        def health(self) -> Health:
            return Health("down", "gone")

    down = Down([echo], name="d")
    assert down.health_by_source() == {"d": Health("down", "gone")}
    assert Shaped(down, prefix="x").health_by_source() == {"d": Health("down", "gone")}
    assert Workbench().down_source("anything") is None


async def test_one_source_mounted_in_two_composites_starts_once_and_both_route_to_it() -> None:
    source = Counting()
    view = CompositeWorkbench({"s": Mount(source, include=["echo"])})  # as the agents see the sources
    served = CompositeWorkbench({**view.mounts, "more": StaticWorkbench([add], name="more")})
    async with served:
        assert source.starts == 1
        assert [s.name for s in await served.list_tools()] == ["s__echo", "more__add"]
        assert (await view.call_tool("s__echo", {"message": "v"})).text == "v"
        assert (await served.call_tool("s__echo", {"message": "s"})).text == "s"
        await source.notify_tools_changed()  # the view, never started, hears of changes too
        assert view.catalog.stale


async def test_a_rename_never_lets_an_excluded_tool_through() -> None:
    inner = Counting()
    shaped = Shaped(inner, tools=Globs(exclude=("add",)), rename={"add": "plus", "echo": "say"})
    assert [t.name for t in await shaped.list_tools()] == ["say"]
    with pytest.raises(ToolNotFoundError):
        await shaped.call_tool("plus", {"a": 1, "b": 2})
    assert inner.calls == []


async def test_a_prefix_rewrites_resource_uris_everywhere_a_client_meets_them() -> None:
    from workbench.core import ResourceNotFoundError

    embedded = mt.EmbeddedResource(type="resource", resource=mt.TextResourceContents(uri="test://x", text="t"))

    class Source(StaticWorkbench):
        async def list_resources(self) -> list[mt.Resource]:
            return [mt.Resource(uri="test://x", name="x")]

        async def read_resource(self, uri: str, ctx: object = None) -> mt.ReadResourceResult:
            return mt.ReadResourceResult(contents=[mt.TextResourceContents(uri=uri, text=f"read {uri}")])

        async def list_prompts(self) -> list[mt.Prompt]:
            return [mt.Prompt(name="p")]

        async def get_prompt(self, name: str, arguments: object = None, ctx: object = None) -> mt.GetPromptResult:
            return mt.GetPromptResult(messages=[mt.PromptMessage(role="user", content=embedded)])

    shaped = Shaped(Source(name="s"), prefix="Up_1")
    assert [r.uri for r in await shaped.list_resources()] == ["up-1+test://x"]  # a valid scheme part
    read = await shaped.read_resource("up-1+test://x")
    assert read.contents[0].text == "read test://x" and read.contents[0].uri == "up-1+test://x"
    with pytest.raises(ResourceNotFoundError):
        await shaped.read_resource("test://x")  # not ours without the prefix
    await shaped.list_prompts()
    prompt = await shaped.get_prompt("Up_1__p")
    assert isinstance(prompt.messages[0].content, mt.EmbeddedResource)
    assert prompt.messages[0].content.resource.uri == "up-1+test://x"
