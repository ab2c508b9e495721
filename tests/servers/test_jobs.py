"""Background runs: a long-running tool started with `jobs__start`, followed with status and
result, cancelled for real, private to the session that started it, and gone with it."""

from __future__ import annotations

import anyio
import mcp.types as mt
import pytest
from serve_toolkit import ServeBench
from serving import http_client, serving

from servers import SESSION_HEADER, ServeSettings
from workbench import Tool, ToolResult
from workbench.core import CallContext

pytestmark = pytest.mark.anyio


def settings() -> ServeSettings:
    return ServeSettings(transport="http", background=["slow"])


async def test_start_status_result(mode: str) -> None:
    async with serving(ServeBench(), settings()) as served, http_client(served.url, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["jobs__start"].input_schema["properties"]["tool"]["enum"] == ["slow"]
        started = await client.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 0.6, "tag": "bg"}})
        job = started.structured_content
        assert not started.is_error and job["state"] == "running"

        await anyio.sleep(0.3)
        status = (await client.call_tool("jobs__status", {"job_id": job["job_id"]})).structured_content
        assert status["state"] == "running" and status["total"] > status["progress"] >= 1

        early = await client.call_tool("jobs__result", {"job_id": job["job_id"]})
        assert not early.is_error and "still running" in early.content[0].text

        done = await client.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 10})
        assert done.content[0].text == "slept 0.6" and done.structured_content == {"result": "slept 0.6"}
        assert done.meta["workbench/job"]["state"] == "completed"

        refused = await client.call_tool("jobs__start", {"tool": "echo", "arguments": {"text": "x"}})
        assert refused.is_error and "cannot run in the background" in refused.content[0].text


async def test_cancel_stops_the_work_and_jobs_are_private() -> None:
    bench = ServeBench()
    async with serving(bench, settings()) as served, \
            http_client(served.url, headers={SESSION_HEADER: "alice"}) as alice, \
            http_client(served.url, headers={SESSION_HEADER: "bob"}) as bob:
        job = (await alice.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 30, "tag": "j"}})).structured_content
        with anyio.fail_after(5):
            while "j" not in bench.running:
                await anyio.sleep(0.02)
        snooping = await bob.call_tool("jobs__cancel", {"job_id": job["job_id"]})
        assert snooping.is_error and "no job" in snooping.content[0].text
        assert "j" in bench.running

        cancelled = await alice.call_tool("jobs__cancel", {"job_id": job["job_id"]})
        assert cancelled.structured_content["state"] == "cancelled"
        assert "j" in bench.cancelled and "j" not in bench.running
        result = await alice.call_tool("jobs__result", {"job_id": job["job_id"]})
        assert result.is_error and "cancelled" in result.content[0].text


async def test_a_closed_session_takes_its_jobs_with_it() -> None:
    bench = ServeBench()
    async with serving(bench, settings()) as served:
        async with http_client(served.url, mode="legacy") as client:
            await client.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 30, "tag": "left"}})
            with anyio.fail_after(5):
                while "left" not in bench.running:
                    await anyio.sleep(0.02)
        # the legacy client deleted its session on exit: its job is cancelled, the workbench told
        with anyio.fail_after(5):
            while "left" in bench.running or not bench.closed_sessions:
                await anyio.sleep(0.02)
        assert "left" in bench.cancelled and bench.closed_sessions[0].startswith("http-")


class Build(Tool):
    """A tool that declares itself long-running the MCP way (execution.taskSupport)."""

    name = "build"
    description = "A long build."
    input_schema = {"type": "object", "properties": {}}

    @property
    def spec(self) -> mt.Tool:
        return super().spec.model_copy(update={"execution": mt.ToolExecution(task_support="optional")})

    async def run(self, arguments: dict, ctx: CallContext) -> ToolResult:
        return ToolResult.from_text("built")


async def test_tools_marked_task_capable_can_run_in_the_background() -> None:
    bench = ServeBench()
    bench.add(Build())
    async with serving(bench) as served, http_client(served.url) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["jobs__start"].input_schema["properties"]["tool"]["enum"] == ["build"]
        job = (await client.call_tool("jobs__start", {"tool": "build"})).structured_content
        done = await client.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 5})
        assert done.content[0].text == "built"


async def test_job_manager_bounds_each_session_and_marks_failures() -> None:
    from servers.jobs import RESULT, START, STATUS, JobManager

    async def run(name: str, arguments: dict[str, object], ctx: CallContext) -> ToolResult:
        if name == "bad":
            return ToolResult.error("nope")
        await anyio.sleep(30)
        return ToolResult.from_text("late")

    eligible = ["slow", "bad"]
    manager = JobManager(run, max_running_per_session=1)
    s1, s2 = CallContext(session_id="s1"), CallContext(session_id="s2")
    async with anyio.create_task_group() as tg:
        manager.task_group = tg
        assert not (await manager.call(START, {"tool": "slow"}, s1, eligible)).is_error
        refused = await manager.call(START, {"tool": "slow"}, s1, eligible)
        assert refused.is_error and "limit 1" in refused.text
        failing = await manager.call(START, {"tool": "bad"}, s2, eligible)  # another session has its own bound
        job_id = failing.structured["job_id"]
        assert (await manager.call(RESULT, {"job_id": job_id, "wait": 5}, s2, eligible)).is_error
        assert (await manager.call(STATUS, {"job_id": job_id}, s2, eligible)).structured["state"] == "failed"
        await manager.close_session("s1")
        tg.cancel_scope.cancel()


async def test_jobs_workbench_adds_its_tools_to_the_workbench_it_wraps() -> None:
    from servers.jobs import JOB_TOOLS, START, JobsWorkbench
    from workbench import StaticWorkbench

    def slow(tag: str) -> str:
        return tag

    def jobs__start() -> str:  # an inner tool of the same name is hidden, never called
        return "shadowed"

    plain = JobsWorkbench(StaticWorkbench([slow]))
    assert [s.name for s in await plain.list_tools()] == ["slow"]  # nothing long-running: no jobs__*
    wrapped = JobsWorkbench(StaticWorkbench([slow, jobs__start]), background=["slow"])
    specs = {s.name: s for s in await wrapped.list_tools()}
    assert set(specs) == {"slow"} | JOB_TOOLS
    assert specs[START].input_schema["properties"]["tool"]["enum"] == ["slow"]
    async with anyio.create_task_group() as tg:
        wrapped.manager.task_group = tg
        job = (await wrapped.call_tool(START, {"tool": "slow", "arguments": {"tag": "t"}})).structured
        done = await wrapped.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 5})
        assert done.text == "t"
        await wrapped.close_session("default")
        assert wrapped.manager.jobs == {}


async def test_an_identity_cannot_run_more_jobs_by_minting_sessions() -> None:
    """A stateless client picks its session id (Workbench-Session): the identity bounds it too."""
    from servers.jobs import START, JobManager

    async def run(name: str, arguments: dict[str, object], ctx: CallContext) -> ToolResult:
        await anyio.sleep(30)
        return ToolResult.from_text("late")

    manager = JobManager(run, max_running_per_session=1)
    async with anyio.create_task_group() as tg:
        manager.task_group = tg
        results = [await manager.call(START, {"tool": "slow"}, CallContext(session_id=f"minted-{i}", identity="mallory"),
                                      ["slow"]) for i in range(10)]
        started = [r for r in results if not r.is_error]
        assert len(started) == manager.max_running_per_identity == 4
        assert all("this identity already runs 4 jobs" in r.text for r in results[4:])
        other = await manager.call(START, {"tool": "slow"}, CallContext(session_id="x", identity="alice"), ["slow"])
        assert not other.is_error  # another identity is not affected
        tg.cancel_scope.cancel()


async def test_finished_jobs_kept_per_identity_are_bounded() -> None:
    from servers.jobs import MAX_KEPT_PER_IDENTITY, START, JobManager

    async def run(name: str, arguments: dict[str, object], ctx: CallContext) -> ToolResult:
        return ToolResult.from_text("done")

    manager = JobManager(run, max_running_per_session=MAX_KEPT_PER_IDENTITY * 2)
    async with anyio.create_task_group() as tg:
        manager.task_group = tg
        for i in range(MAX_KEPT_PER_IDENTITY + 50):
            await manager.call(START, {"tool": "quick"}, CallContext(session_id=f"s{i}", identity="mallory"), ["quick"])
            await anyio.sleep(0)  # let it finish
        assert len(manager.jobs) <= MAX_KEPT_PER_IDENTITY
        tg.cancel_scope.cancel()
