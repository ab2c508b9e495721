"""SandboxWorkbench: tools per caller, isolation between callers, the warm pool, idle expiry."""

from __future__ import annotations

import base64
import time

import anyio
import pytest

from sandbox import SandboxSettings, SandboxWorkbench
from sandbox.container import OWNER, docker_client, project_containers
from workbench.cli.config import SandboxConfig
from workbench.core import CallContext, ToolNotFoundError

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


def as_caller(name: str) -> CallContext:
    return CallContext(session_id=name)


async def wait_for(predicate, seconds: float = 15) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.05)


async def test_tools_are_listed_with_schemas(workbench: SandboxWorkbench) -> None:
    tools = {t.name: t for t in await workbench.list_tools()}
    assert set(tools) == {"run_python", "run_bash", "write_file", "read_file", "list_files", "reset"}
    assert tools["run_python"].input_schema["required"] == ["code"]
    assert "ctx" not in tools["run_python"].input_schema["properties"]
    assert tools["read_file"].annotations is not None and tools["read_file"].annotations.read_only_hint
    with pytest.raises(ToolNotFoundError):
        await workbench.call_tool("run_ruby", {"code": "1"}, as_caller("a"))


async def test_run_tools_return_text_and_structured_results(workbench: SandboxWorkbench) -> None:
    r = await workbench.call_tool("run_python", {"code": "x = 41\nprint(x + 1)"}, as_caller("alice"))
    assert (r.text, r.is_error) == ("42", False)
    assert r.structured["exit_code"] == 0 and r.structured["stdout"] == "42\n"
    r = await workbench.call_tool("run_bash", {"code": "echo oops >&2; exit 2"}, as_caller("alice"))
    assert r.is_error and "[stderr]\noops" in r.text and "[exit code 2]" in r.text
    r = await workbench.call_tool("run_bash", {"code": "sleep 5", "timeout": 0.5}, as_caller("alice"))
    assert r.is_error and r.structured["timed_out"] and "timed out after 0.5 s" in r.text
    r = await workbench.call_tool("run_python", {}, as_caller("alice"))
    assert r.is_error and "code" in r.text


async def test_two_callers_never_see_each_others_files_or_variables(workbench: SandboxWorkbench) -> None:
    await workbench.call_tool("run_python", {"code": "secret = 'a-only'"}, as_caller("a"))
    await workbench.call_tool("write_file", {"path": "secret.txt", "content": "a-only"}, as_caller("a"))
    r = await workbench.call_tool("run_python", {"code": "print(secret)"}, as_caller("b"))
    assert r.is_error and "NameError" in r.text
    r = await workbench.call_tool("read_file", {"path": "secret.txt"}, as_caller("b"))
    assert r.is_error and "No such file" in r.text
    assert "secret.txt" not in (await workbench.call_tool("list_files", {}, as_caller("b"))).text
    assert (await workbench.call_tool("read_file", {"path": "secret.txt"}, as_caller("a"))).text == "a-only"
    assert (await workbench.session("a")).container_id != (await workbench.session("b")).container_id


async def test_file_tools_text_and_binary(workbench: SandboxWorkbench) -> None:
    blob = base64.b64encode(b"\x00\xff\x10binary").decode()
    r = await workbench.call_tool("write_file", {"path": "d/b.bin", "content": blob, "encoding": "base64"},
                                  as_caller("files"))
    assert not r.is_error and r.structured == {"path": "/workspace/d/b.bin", "size": 9}
    r = await workbench.call_tool("read_file", {"path": "d/b.bin"}, as_caller("files"))
    assert base64.b64decode(r.text) == b"\x00\xff\x10binary" and r.structured["encoding"] == "base64"
    r = await workbench.call_tool("list_files", {"recursive": True}, as_caller("files"))
    assert [e["path"] for e in r.structured["entries"]] == ["d", "d/b.bin"]
    r = await workbench.call_tool("write_file", {"path": "x", "content": "%%%", "encoding": "base64"},
                                  as_caller("files"))
    assert r.is_error and "write_file failed" in r.text


async def test_reset_tool(workbench: SandboxWorkbench) -> None:
    await workbench.call_tool("run_python", {"code": "v = 1"}, as_caller("r"))
    await workbench.call_tool("write_file", {"path": "f", "content": "1"}, as_caller("r"))
    assert not (await workbench.call_tool("reset", {}, as_caller("r"))).is_error
    assert (await workbench.call_tool("run_python", {"code": "v"}, as_caller("r"))).is_error
    assert (await workbench.call_tool("read_file", {"path": "f"}, as_caller("r"))).text == "1"
    await workbench.call_tool("reset", {"clear_files": True}, as_caller("r"))
    assert (await workbench.call_tool("list_files", {}, as_caller("r"))).text == "(empty)"


async def test_sessions_come_from_the_warm_pool_and_it_refills(workbench: SandboxWorkbench) -> None:
    pool = workbench._pool
    assert pool is not None
    await wait_for(lambda: pool.ready == 2)
    warm = {c.id for c in pool._ready}
    start = time.monotonic()
    r = await workbench.call_tool("run_python", {"code": "print('warm')"}, as_caller("pooled"))
    assert r.text == "warm" and time.monotonic() - start < 2
    assert (await workbench.session("pooled")).container_id in warm
    await wait_for(lambda: pool.ready == 2)  # refilled in the background, and no further


async def test_close_session_removes_its_container(workbench: SandboxWorkbench) -> None:
    await workbench.call_tool("run_bash", {"code": "true"}, as_caller("leaving"))
    cid = (await workbench.session("leaving")).container_id
    await workbench.close_session("leaving")
    assert cid not in {c["Id"] for c in project_containers(docker_client(), OWNER)}
    r = await workbench.call_tool("list_files", {}, as_caller("leaving"))  # comes back fresh
    assert r.text == "(empty)"


async def test_concurrent_sessions(workbench: SandboxWorkbench) -> None:
    results: dict[int, str] = {}

    async def one(i: int) -> None:
        r = await workbench.call_tool("run_python", {"code": f"n = {i}\nprint(n * 2)"}, as_caller(f"c{i}"))
        results[i] = r.text

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(one, i)
    assert results == {i: str(i * 2) for i in range(6)}
    for i in range(6):
        await workbench.close_session(f"c{i}")


async def test_idle_sessions_expire_and_stop_removes_everything() -> None:
    wb = SandboxWorkbench.from_config(SandboxConfig(idle_timeout=0.5, pool_size=1))
    assert wb.settings.idle_timeout == 0.5 and wb.settings.pool_size == 1
    async with wb:
        await wb.call_tool("run_python", {"code": "1"}, as_caller("idle"))
        cid = (await wb.session("idle")).container_id
        await wait_for(lambda: cid not in {c["Id"] for c in project_containers(docker_client(), OWNER)}, 10)
        assert "idle" not in wb._sessions and wb.health().state == "up"
        pool_ids = {c.id for c in wb._pool._ready} if wb._pool else set()
    assert wb.health().state == "stopped"
    assert not pool_ids & {c["Id"] for c in project_containers(docker_client(), OWNER)}


async def test_stopping_while_the_pool_fills_leaves_nothing_behind() -> None:
    before = {c["Id"] for c in project_containers(docker_client(), OWNER)}
    async with SandboxWorkbench(SandboxSettings(pool_size=3)):
        await anyio.sleep(0.05)  # containers are being created right now
    assert {c["Id"] for c in project_containers(docker_client(), OWNER)} <= before


async def test_cancelling_a_tool_call_kills_its_processes(workbench: SandboxWorkbench) -> None:
    box = await workbench.session("cancel")

    def running() -> str:
        return " ".join(" ".join(p) for p in docker_client().api.top(box.container_id)["Processes"] or [])

    async with anyio.create_task_group() as tg:
        tg.start_soon(workbench.call_tool, "run_bash", {"code": "sleep 88"}, as_caller("cancel"))
        with anyio.fail_after(5):  # cancel only once the run really is under way in the container
            while "sleep 88" not in await anyio.to_thread.run_sync(running):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    start = time.monotonic()
    r = await workbench.call_tool("run_bash", {"code": "ps -eo args"}, as_caller("cancel"))
    assert time.monotonic() - start < 5  # stopped at once, not at the 10 s limit
    assert "sleep 88" not in r.text and not r.is_error


async def test_started_and_stopped_from_different_tasks_as_a_composite_does() -> None:
    from workbench.composite import CompositeWorkbench

    composite = CompositeWorkbench({"sandbox": SandboxWorkbench(SandboxSettings(pool_size=1))})
    async with composite:
        r = await composite.call_tool("sandbox__run_python", {"code": "print('via composite')"}, as_caller("comp"))
        assert r.text == "via composite"
        assert composite.health_by_source()["sandbox"].state == "up"


async def test_the_callers_deadline_bounds_a_run(workbench: SandboxWorkbench) -> None:
    # An agent's tool_timeout or an MCP client's deadline arrives as CallContext.deadline.
    start = time.monotonic()
    r = await workbench.call_tool("run_bash", {"code": "sleep 8"}, as_caller("hurried").with_timeout(0.5))
    assert time.monotonic() - start < 5  # well short of both the 8 s sleep and the 10 s configured limit
    assert r.is_error and r.structured["timed_out"]
    # A deadline already passed is no deadline at all: the run gets 0 s, not the full limit.
    late = CallContext(session_id="hurried", deadline=time.monotonic() - 1)
    start = time.monotonic()
    r = await workbench.call_tool("run_bash", {"code": "sleep 8; echo done"}, late)
    assert time.monotonic() - start < 5 and r.structured["timed_out"] and "done" not in r.text
    await workbench.close_session("hurried")


async def test_a_timeout_argument_cannot_lengthen_the_configured_limit() -> None:
    async with SandboxWorkbench(SandboxSettings(pool_size=0, timeout=1)) as wb:
        start = time.monotonic()
        r = await wb.call_tool("run_bash", {"code": "sleep 6; echo done", "timeout": 60}, as_caller("greedy"))
        assert time.monotonic() - start < 5
        assert r.is_error and r.structured["timed_out"] and "done" not in r.text
