import anyio
import pytest

from workbench import CallContext, CompositeWorkbench, Health, Mount, StaticWorkbench, ToolNotFoundError, Workbench

pytestmark = pytest.mark.anyio


def echo(message: str) -> str:
    return message


def add(a: int, b: int) -> int:
    return a + b


def _wb(name: str) -> StaticWorkbench:
    def where() -> str:
        return name

    return StaticWorkbench([echo, add, where], name=name)


class Flaky(Workbench):
    """A source that is down until `up` is set, then serves one tool."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False
        self.listed = 0

    async def start(self) -> None:
        if not self.up:
            raise ConnectionError("refused")

    def health(self) -> Health:
        return Health("up") if self.up else Health("down", "refused")

    async def list_tools(self):
        self.listed += 1
        if not self.up:
            raise ConnectionError("refused")
        return await StaticWorkbench([echo]).list_tools()

    async def call_tool(self, name, arguments=None, ctx=None):
        return await StaticWorkbench([echo]).call_tool(name, arguments, ctx)


async def test_namespacing_collisions_filters_and_renames() -> None:
    async with CompositeWorkbench(
        {
            "a": _wb("a"),
            "b": Mount(_wb("b"), prefix="a", exclude=["add"]),  # deliberately collides with a's prefix
            "c": Mount(_wb("c"), prefix="", include=["where"], rename={"where": "c_where"},
                       descriptions={"where": "Where is c"}),
        }
    ) as wb:
        specs = {s.name: s for s in await wb.list_tools()}
        assert {"a__echo", "a__add", "a__where", "c_where"} <= set(specs)
        assert "a__add" in specs and sum(1 for n in specs if n.startswith("a__add")) == 1  # b's add excluded
        b_echo = [n for n in specs if n.startswith("a__echo_")]
        assert len(b_echo) == 1  # collision resolved with a stable suffix, not an error
        assert specs["c_where"].description == "Where is c"
        assert (await wb.call_tool("a__where", {})).text == "a"
        assert (await wb.call_tool("c_where", {})).text == "c"
        assert (await wb.call_tool(b_echo[0], {"message": "hi"})).text == "hi"
        with pytest.raises(ToolNotFoundError):
            await wb.call_tool("echo", {})


async def test_a_down_source_does_not_take_others_down_and_comes_back() -> None:
    flaky = Flaky()
    wb = CompositeWorkbench({"ok": _wb("ok"), "flaky": flaky})
    async with wb:
        names = {s.name for s in await wb.list_tools()}
        assert "ok__echo" in names and not any(n.startswith("flaky") for n in names)
        assert wb.health_by_source()["flaky"].state == "down"
        assert wb.health_by_source()["ok"].state == "up"
        # never listed, yet a call to one of its names says the source is down, not "unknown tool"
        down = await wb.call_tool("flaky__echo", {"message": "x"})
        assert down.is_error and "source 'flaky' is down (ConnectionError: refused)" in down.text
        with pytest.raises(ToolNotFoundError):
            await wb.call_tool("ok__nope", {})
        outer = CompositeWorkbench({"all": Mount(wb, prefix="")})  # how build_workbench nests the sources
        assert "source 'flaky' is down" in (await outer.call_tool("flaky__echo", {})).text
        assert outer.health_by_source()["flaky"].state == "down"  # not hidden behind "all" being up
        flaky.up = True
        # the down source was not cached as empty: the next listing asks it again
        names = {s.name for s in await wb.list_tools()}
        assert "flaky__echo" in names
        assert (await wb.call_tool("flaky__echo", {"message": "back"})).text == "back"


async def test_catalog_is_cached_and_refreshed_on_change() -> None:
    flaky = Flaky()
    flaky.up = True
    wb = CompositeWorkbench({"f": flaky})
    events = []

    async def changed() -> None:
        events.append(1)

    wb.on_tools_changed(changed)
    async with wb:
        await wb.list_tools()
        await wb.list_tools()
        await wb.call_tool("f__echo", {"message": "x"})
        assert flaky.listed == 1
        await flaky.notify_tools_changed()
        assert events == [1]
        await wb.list_tools()
        assert flaky.listed == 2


async def test_cancellation_reaches_the_tool() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def slow(ctx: CallContext) -> str:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "late"

    wb = CompositeWorkbench({"s": StaticWorkbench([slow])})
    async with wb, anyio.create_task_group() as tg:
        tg.start_soon(wb.call_tool, "s__slow", {})
        await started.wait()
        tg.cancel_scope.cancel()
    assert cancelled.is_set()


async def test_prompts_and_resources_route_to_their_source() -> None:
    import mcp.types as mt

    class WithPrompt(StaticWorkbench):
        async def list_prompts(self):
            return [mt.Prompt(name="hello")]

        async def get_prompt(self, name, arguments=None, ctx=None):
            return mt.GetPromptResult(messages=[mt.PromptMessage(role="user", content=mt.TextContent(type="text", text=self.name))])

    wb = CompositeWorkbench({"x": WithPrompt(name="x"), "y": WithPrompt(name="y")})
    async with wb:
        names = [p.name for p in await wb.list_prompts()]
        assert names == ["x__hello", "y__hello"]
        result = await wb.get_prompt("y__hello")
        assert result.messages[0].content.text == "y"


async def test_a_source_that_comes_back_is_announced_without_being_asked() -> None:
    flaky = Flaky()
    wb = CompositeWorkbench({"ok": _wb("ok"), "flaky": flaky})
    changed = anyio.Event()

    async def on_change() -> None:
        changed.set()

    wb.on_tools_changed(on_change)
    async with wb:
        assert not any(s.name.startswith("flaky") for s in await wb.list_tools())
        flaky.up = True
        with anyio.fail_after(5):  # the background probe finds it (first probe after ~1 s)
            await changed.wait()
        assert "flaky__echo" in {s.name for s in await wb.list_tools()}


class Recorder(StaticWorkbench):
    """Records stop and close_session calls into a shared log; `broken` ones raise after recording."""

    def __init__(self, name: str, log: list[str], broken: bool = False) -> None:
        super().__init__([echo], name=name)
        self.log, self.broken = log, broken

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.broken:
            raise RuntimeError("stop failed")

    async def close_session(self, session_id: str) -> None:
        self.log.append(f"close {self.name} {session_id}")
        if self.broken:
            raise RuntimeError("close failed")


async def test_stop_and_close_session_reach_every_source_even_past_a_failing_one() -> None:
    log: list[str] = []
    wb = CompositeWorkbench({k: Recorder(k, log, broken=k == "b") for k in "abc"})
    async with wb:
        await wb.close_session("s1")
        assert log == ["close a s1", "close b s1", "close c s1"]
        log.clear()
    assert log == ["stop c", "stop b", "stop a"]  # reverse mount order; b's failure does not leak a
