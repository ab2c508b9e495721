from typing import TypedDict

import mcp.types as mt
import pytest
from pydantic import BaseModel

from workbench import CallContext, FunctionTool, StaticWorkbench, ToolNotFoundError, ToolResult, tool

pytestmark = pytest.mark.anyio


class Point(BaseModel):
    x: int
    y: int


class Stats(TypedDict):
    mean: float
    count: int


def shift(p: Point, dx: int = 1) -> Point:
    """Move a point right."""
    return Point(x=p.x + dx, y=p.y)


async def stats(values: list[float]) -> Stats:
    return {"mean": sum(values) / len(values), "count": len(values)}


def whoami(ctx: CallContext) -> str:
    return ctx.session_id


def boom() -> str:
    raise RuntimeError("disk on fire")


def picture() -> ToolResult:
    return ToolResult(content=[mt.ImageContent(type="image", data="aGk=", mime_type="image/png")])


@pytest.fixture
def bench() -> StaticWorkbench:
    return StaticWorkbench([shift, stats, whoami, boom, picture, FunctionTool(len, name="length", description="len")])


async def test_schemas_come_from_type_hints(bench: StaticWorkbench) -> None:
    specs = {s.name: s for s in await bench.list_tools()}
    assert specs["shift"].description == "Move a point right."
    # nested models keep their $defs so $ref resolves
    schema = specs["shift"].input_schema
    assert schema["properties"]["p"]["$ref"].startswith("#/$defs/")
    assert "Point" in schema["$defs"]
    assert schema["required"] == ["p"]
    assert specs["stats"].output_schema["properties"].keys() == {"mean", "count"}
    assert "ctx" not in specs["whoami"].input_schema.get("properties", {})
    assert specs["picture"].output_schema is None  # returns a ToolResult: no schema to break


async def test_calls_return_structured_and_text(bench: StaticWorkbench) -> None:
    r = await bench.call_tool("shift", {"p": {"x": 1, "y": 2}, "dx": 5})
    assert not r.is_error and r.structured == {"x": 6, "y": 2}
    r = await bench.call_tool("stats", {"values": [1, 2, 3, 6]})
    assert r.structured == {"mean": 3.0, "count": 4}
    r = await bench.call_tool("whoami", {}, CallContext(session_id="alice"))
    assert r.text == "alice"
    r = await bench.call_tool("picture", {})
    assert isinstance(r.content[0], mt.ImageContent)


async def test_json_string_arguments_are_accepted(bench: StaticWorkbench) -> None:
    # Some clients send nested objects as JSON strings; the SDK's pre-parse accepts them.
    r = await bench.call_tool("shift", {"p": '{"x": 0, "y": 0}'})
    assert r.structured == {"x": 1, "y": 0}


async def test_bad_arguments_and_failures_are_error_results(bench: StaticWorkbench) -> None:
    r = await bench.call_tool("shift", {"p": {"x": "left"}})
    assert r.is_error and "p.x" in r.text and "p.y" in r.text
    r = await bench.call_tool("boom", {})
    assert r.is_error and "disk on fire" in r.text


async def test_unknown_tool_suggests(bench: StaticWorkbench) -> None:
    with pytest.raises(ToolNotFoundError, match="did you mean shift"):
        await bench.call_tool("shfit", {})


async def test_decorator_and_duplicates() -> None:
    @tool(name="greet", description="Say hello")
    def hello(name: str) -> str:
        return f"hello {name}"

    wb = StaticWorkbench([hello])
    assert (await wb.call_tool("greet", {"name": "bo"})).text == "hello bo"
    with pytest.raises(ValueError, match="duplicate"):
        wb.add(hello)


async def test_result_round_trips_through_mcp() -> None:
    r = ToolResult.from_text("x", structured={"a": 1}, is_error=True)
    back = ToolResult.from_mcp(r.to_mcp())
    assert back == r
    wire = r.to_mcp().model_dump(by_alias=True, exclude_none=True)
    assert wire["structuredContent"] == {"a": 1} and wire["isError"] is True
