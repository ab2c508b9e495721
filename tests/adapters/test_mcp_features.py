"""McpWorkbench against the SDK toolbox server over stdio, in both protocol eras: what a
call carries in (progress, logs, cancellation, timeouts, callbacks) and what comes back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp.types as mt
import pytest
from mcp_peers import PYTHON, SERVERS, TOOLBOX

from adapters.mcp import McpWorkbench
from workbench.cli.config import parse_config
from workbench.core import CallContext, PromptNotFoundError, ResourceNotFoundError, ToolNotFoundError

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]


async def _answer_sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
    prompt = params.messages[0].content
    assert isinstance(prompt, mt.TextContent)
    text = mt.TextContent(type="text", text=f"wb saw {prompt.text}")
    return mt.CreateMessageResult(role="assistant", content=text, model="m")


async def _answer_elicitation(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
    return mt.ElicitResult(action="accept", content={"name": "workbench-level"})


async def _answer_roots(context: Any) -> mt.ListRootsResult:
    return mt.ListRootsResult(roots=[mt.Root(uri="file:///work/project", name="project")])


SERVER_LOGS: list[object] = []


async def _workbench_log(params: mt.LoggingMessageNotificationParams) -> None:
    SERVER_LOGS.append(params.data)


@pytest.fixture(scope="module", params=MODES)
async def wb(request: pytest.FixtureRequest) -> AsyncIterator[McpWorkbench]:
    bench = McpWorkbench.stdio(
        PYTHON,
        [TOOLBOX],
        env={"TOOLBOX_SECRET": "s3cr3t-value"},
        cwd=str(SERVERS),
        name="toolbox",
        mode=request.param,
        timeout=20,
        sampling_callback=_answer_sampling,
        elicitation_callback=_answer_elicitation,
        list_roots_callback=_answer_roots,
        logging_callback=_workbench_log,
    )
    async with bench:
        yield bench


async def test_connects_in_the_requested_era(wb: McpWorkbench) -> None:
    assert wb.protocol_version == ("2025-11-25" if wb.mode == "legacy" else "2026-07-28")
    assert wb.health().state == "up"


async def test_lists_every_tool_with_whole_schemas(wb: McpWorkbench) -> None:
    tools = {t.name: t for t in await wb.list_tools()}
    assert {"echo", "add", "count_points", "mixed", "slow", "greet", "think"} <= set(tools)
    schema = tools["count_points"].input_schema
    assert schema["properties"]["shape"] == {"$ref": "#/$defs/Shape"}
    assert schema["$defs"]["Shape"]["properties"]["points"]["items"] == {"$ref": "#/$defs/Point"}
    assert tools["add"].output_schema is not None and "total" in tools["add"].output_schema["properties"]
    # A $defs-shaped argument really goes through.
    result = await wb.call_tool("count_points", {"shape": {"points": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}})
    assert result.structured == {"result": 2}


async def test_structured_and_mixed_content_come_back_whole(wb: McpWorkbench) -> None:
    added = await wb.call_tool("add", {"a": 40, "b": 2})
    assert not added.is_error and added.structured == {"total": 42}
    mixed = await wb.call_tool("mixed", {})
    kinds = [type(c) for c in mixed.content]
    assert kinds == [mt.TextContent, mt.ImageContent, mt.AudioContent, mt.ResourceLink]
    assert mixed.content[3].uri == "toolbox://readme"  # type: ignore[union-attr]


async def test_tool_errors_and_bad_arguments_are_error_results(wb: McpWorkbench) -> None:
    failed = await wb.call_tool("fail", {"reason": "testing"})
    assert failed.is_error and "failed because testing" in failed.text
    bad = await wb.call_tool("add", {"a": 1, "b": "not a number"})
    assert bad.is_error and "b" in bad.text and "integer" in bad.text


async def test_unknown_tool_raises_with_close_matches(wb: McpWorkbench) -> None:
    with pytest.raises(ToolNotFoundError, match="did you mean echo"):
        await wb.call_tool("ecko", {})


async def test_env_and_cwd_reach_the_child(wb: McpWorkbench) -> None:
    assert (await wb.call_tool("getenv", {"key": "TOOLBOX_SECRET"})).text == "s3cr3t-value"
    assert (await wb.call_tool("getenv", {"key": "PATH"})).text != "<unset>"  # the SDK's safe defaults stay
    assert Path((await wb.call_tool("getcwd", {})).text) == SERVERS


async def test_repr_hides_secrets(wb: McpWorkbench) -> None:
    text = repr(wb) + str(wb.health())
    assert "s3cr3t-value" not in text and "TOOLBOX_SECRET" in text


async def test_progress_and_logs_reach_the_call(wb: McpWorkbench) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[mt.LoggingMessageNotificationParams] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total, message))

    async def on_log(params: mt.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    result = await wb.call_tool("slow", {"seconds": 0.3, "tag": "progress"},
                                CallContext(progress=on_progress, log=on_log))
    assert result.text == "slept 0.3"
    assert [p[0] for p in progress] == [0, 1, 2] and progress[0][1] == 3 and progress[0][2] == "step 0"
    assert [log.data for log in logs] == ["slow progress started"]


async def test_logs_without_a_call_listener_reach_the_workbench_callback(wb: McpWorkbench) -> None:
    tag = f"unrouted-{wb.mode}"
    await wb.call_tool("slow", {"seconds": 0.1, "tag": tag})
    assert f"slow {tag} started" in SERVER_LOGS


async def test_trace_context_reaches_the_server(wb: McpWorkbench) -> None:
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    received = (await wb.call_tool("traceparent", {}, CallContext(trace_context=carrier))).text
    # The caller's trace; its parent is the caller's span, or the SDK client's own when a tracer is
    # installed in this process (test_mcp_trace_continuity.py checks that case in a fresh one).
    assert received.split("-")[1] == "0af7651916cd43dd8448eb211c80319c", received


async def test_timeout_is_an_error_result_and_cancels_on_the_server(wb: McpWorkbench) -> None:
    tag = f"timeout-{wb.mode}"
    started = time.monotonic()
    result = await wb.call_tool("slow", {"seconds": 30, "tag": tag}, CallContext().with_timeout(0.5))
    assert time.monotonic() - started < 5
    assert result.is_error and "timed out after 0.5 s" in result.text
    await _until(lambda: _cancelled_tags(wb), tag)


async def test_cancelling_the_caller_cancels_on_the_server(wb: McpWorkbench) -> None:
    tag = f"cancel-{wb.mode}"
    async with anyio.create_task_group() as tg:
        tg.start_soon(wb.call_tool, "slow", {"seconds": 30, "tag": tag})
        await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    await _until(lambda: _cancelled_tags(wb), tag)
    assert (await wb.call_tool("echo", {"message": "still here"})).text == "still here"


async def test_server_default_timeout_applies(wb: McpWorkbench) -> None:
    wb.timeout, saved = 0.3, wb.timeout
    try:
        result = await wb.call_tool("hang", {})
    finally:
        wb.timeout = saved
    assert result.is_error and "timed out" in result.text


async def test_sampling_elicitation_and_roots_reach_the_callbacks(wb: McpWorkbench) -> None:
    assert (await wb.call_tool("think", {"prompt": "2+2?"})).text == "model said: wb saw 2+2?"
    assert (await wb.call_tool("greet", {"message": "who?"})).text == "hello workbench-level"
    assert (await wb.call_tool("list_client_roots", {})).structured == {"result": ["file:///work/project"]}


async def test_the_calls_own_callbacks_win(wb: McpWorkbench) -> None:
    async def relayed_elicitation(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
        return mt.ElicitResult(action="accept", content={"name": "relayed"})

    async def relayed_sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
        return mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text="relayed"), model="r")

    ctx = CallContext(elicitation=relayed_elicitation, sampling=relayed_sampling)
    assert (await wb.call_tool("greet", {"message": "who?"}, ctx)).text == "hello relayed"
    assert (await wb.call_tool("think", {"prompt": "x"}, ctx)).text == "model said: relayed"


async def test_resources_and_prompts(wb: McpWorkbench) -> None:
    assert [str(r.uri) for r in await wb.list_resources()] == ["toolbox://readme"]
    assert [t.uri_template for t in await wb.list_resource_templates()] == ["toolbox://items/{item}"]
    readme = await wb.read_resource("toolbox://readme")
    assert readme.contents[0].text == "toolbox: a test server"  # type: ignore[union-attr]
    item = await wb.read_resource("toolbox://items/42")
    assert item.contents[0].text == "item 42"  # type: ignore[union-attr]
    with pytest.raises(ResourceNotFoundError):
        await wb.read_resource("toolbox://nowhere")
    assert [p.name for p in await wb.list_prompts()] == ["summarize"]
    prompt = await wb.get_prompt("summarize", {"text": "a long story"})
    assert "Summarize: a long story" in prompt.messages[0].content.text  # type: ignore[union-attr]
    with pytest.raises(PromptNotFoundError):
        await wb.get_prompt("nope")


async def test_list_changed_refreshes_the_catalog(wb: McpWorkbench) -> None:
    changed = anyio.Event()

    async def on_change() -> None:
        changed.set()

    unsubscribe = wb.on_tools_changed(on_change)
    name = f"fresh_{wb.mode.replace('-', '_')}"
    try:
        assert (await wb.call_tool("grow", {"name": name})).text == name
        with anyio.fail_after(10):
            await changed.wait()
    finally:
        unsubscribe()
    assert name in {t.name for t in await wb.list_tools()}
    assert (await wb.call_tool(name, {})).text == name


async def test_list_tools_is_served_from_the_cache(wb: McpWorkbench) -> None:
    pid = (await wb.call_tool("pid", {})).structured["result"]
    os.kill(pid, signal.SIGSTOP)  # a frozen server cannot answer anything
    try:
        with anyio.fail_after(1):
            tools = await wb.list_tools()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "echo" in {t.name for t in tools}


async def test_from_config_resolves_cwd_and_passes_env(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    config = parse_config(
        f"""
[servers.tb]
command = "{PYTHON}"
args = ["{TOOLBOX}"]
cwd = "work"
env = {{ TOOLBOX_SECRET = "from-config" }}
mode = "legacy"
timeout = 7
""",
        base_dir=tmp_path,
    )
    async with McpWorkbench.from_config("tb", config.servers["tb"], base_dir=tmp_path) as wb:
        assert wb.name == "tb" and wb.timeout == 7
        assert Path((await wb.call_tool("getcwd", {})).text) == tmp_path / "work"
        assert (await wb.call_tool("getenv", {"key": "TOOLBOX_SECRET"})).text == "from-config"
        assert "from-config" not in repr(wb)


async def _cancelled_tags(wb: McpWorkbench) -> list[str]:
    return (await wb.call_tool("cancelled", {})).structured["result"]


async def _until(fetch: Any, tag: str) -> None:
    with anyio.fail_after(5):
        while tag not in await fetch():
            await anyio.sleep(0.05)
