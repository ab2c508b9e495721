"""AgentTool, CodeExecutorAgent (real Docker sandbox), build_agents from config, the console view,
and the OpenAI tool-schema adapter."""

from __future__ import annotations

import asyncio
import io
import json

import anyio
import mcp.types as mt
import pytest
from model_server import ModelServer
from rich.console import Console

from workbench import CallContext, CompositeWorkbench, StaticWorkbench
from workbench.agents import (
    AgentTool,
    AssistantAgent,
    CodeExecutorAgent,
    RoundRobinGroupChat,
    TextMention,
    build_agents,
    run_in_console,
)
from workbench.agents.code_executor import code_blocks
from workbench.agents.openai_tools import from_openai_tool, to_openai_tool
from workbench.cli.config import ConfigError, parse_config

pytestmark = pytest.mark.anyio


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_agent_tool_streams_progress_and_returns_structured(model_server: ModelServer, model_name: str,
                                                                  make_client, spans) -> None:
    model_server.script(model_name, [{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}, {"content": "5"}],
                        repeat=True)
    coder = AssistantAgent("coder", make_client(model_name), workbench=StaticWorkbench([add]), description="adds")
    tool = AgentTool(coder)
    assert tool.spec.name == "coder" and tool.spec.input_schema["required"] == ["task"]
    progress: list[tuple[float, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, message))

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    ctx = CallContext(progress=on_progress, trace_context={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    result = await StaticWorkbench([tool]).call_tool("coder", {"task": "2+3?", "context": "integers only"}, ctx)
    assert not result.is_error and result.text == "5"
    assert result.structured["answer"] == "5" and result.structured["usage"]["input_tokens"] > 0
    assert [m["type"] for m in result.structured["messages"]] == ["text", "tool_calls", "tool_results", "text"]
    assert result.structured["messages"][0]["content"] == "2+3?\n\nContext:\nintegers only"
    assert [m for _, m in progress] == ["user: 2+3? Context: integers only", 'coder calls add({"a": 2, "b": 3})',
                                        "coder got add: 5", "coder: 5"]
    assert [p for p, _ in progress] == [1, 2, 3, 4]
    assert await coder.save_state() == {"type": "AssistantAgent", "version": 1, "name": "coder", "context": []}  # ran on a clone
    finished = spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in finished} == {trace_id}  # continued the caller's trace
    names = {s.name for s in finished}
    assert {"invoke_agent coder", f"chat {model_name}", "execute_tool add"} <= names
    tool_span = next(s for s in finished if s.name == "execute_tool add")
    assert tool_span.attributes["gen_ai.tool.name"] == "add"
    chat = next(s for s in finished if s.name == f"chat {model_name}")
    assert chat.attributes["gen_ai.request.model"] == model_name and chat.attributes["gen_ai.usage.input_tokens"] > 0

    await tool.run({"task": "again"}, CallContext())
    assert len(coder.toolset.workbenches[0]._event_listeners) == 1  # clones add no listeners

    bad = await tool.run({"task": ""}, CallContext())
    assert bad.is_error and "non-empty string 'task'" in bad.text


async def test_agent_tool_concurrent_calls_and_cancellation(model_server: ModelServer, model_name: str, make_client) -> None:
    echo = AgentTool(AssistantAgent("echoer", make_client("echo")))
    results: dict[str, str] = {}

    async def call(task: str) -> None:
        results[task] = (await echo.run({"task": task}, CallContext())).text

    async with anyio.create_task_group() as tg:
        for task in ("one", "two", "three"):
            tg.start_soon(call, task)
    assert results == {"one": "one", "two": "two", "three": "three"}

    model_server.script(model_name, [{"content": "late", "delay": 60}])
    slow = AgentTool(AssistantAgent("slow", make_client(model_name)))
    before = asyncio.all_tasks()
    with anyio.move_on_after(0.5) as scope:
        await slow.run({"task": "x"}, CallContext())
    assert scope.cancelled_caught and asyncio.all_tasks() - before == set()


async def test_agent_tool_reports_failures_and_deadlines_as_errors(model_server: ModelServer, model_name: str,
                                                                   make_client) -> None:
    tool = AgentTool(AssistantAgent("lost", make_client("no-such-model")))
    result = await tool.run({"task": "x"}, CallContext())
    assert result.is_error and "'no-such-model' was not found" in result.text
    model_server.script(model_name, [{"content": "late", "delay": 30}])
    slow = AgentTool(AssistantAgent("slow", make_client(model_name), model_client_stream=True))
    result = await slow.run({"task": "x"}, CallContext().with_timeout(0.3))
    assert result.is_error and "ran out of time" in result.text


def test_code_blocks_are_found_by_language() -> None:
    text = "Try:\n```python\nprint(1)\n```\nthen\n```bash title\necho hi\n```\n```json\n{}\n```\n```\nplain\n```"
    assert code_blocks(text) == [("python", "print(1)\n"), ("bash", "echo hi\n")]


async def test_code_executor_without_tools_says_what_is_missing() -> None:
    runner = CodeExecutorAgent("runner", StaticWorkbench([add]))
    result = await runner.run("```python\nprint(1)\n```")
    assert "no 'run_python' tool on the workbench" in result.text
    assert "No ```python" in (await runner.run("no code here")).text


@pytest.fixture(scope="module")
def sandbox_available() -> None:
    sandbox = pytest.importorskip("sandbox")
    from sandbox.container import docker_client
    from sandbox.image import image_exists

    try:
        client = docker_client()
    except sandbox.EngineUnavailableError as e:
        pytest.skip(f"no Docker engine: {e}")
    if not image_exists(client):
        pytest.skip("sandbox image missing: run `workbench sandbox build`")


@pytest.mark.docker
async def test_coder_and_code_executor_in_the_real_sandbox(sandbox_available: None, model_server: ModelServer,
                                                         model_name: str, make_client) -> None:
    from sandbox import SandboxSettings, SandboxWorkbench

    fib = "```python\na, b = 0, 1\nfor _ in range(30):\n    a, b = b, a + b\nprint(a)\n```\n```bash\necho from-bash\n```"
    model_server.script(model_name, [
        {"tool_calls": [{"name": "sandbox__run_python", "arguments": {"code": "x = 6 * 7\nprint(x)"}}]},
        {"content": "x is 42. Now run this:\n" + fib},
        {"content": "832040 is right. APPROVE"}])
    # Started on its own: SandboxWorkbench.start must run in the task that stops it, and
    # CompositeWorkbench.start starts sources in child tasks. The composite only routes here.
    async with SandboxWorkbench(SandboxSettings(pool_size=1, timeout=20)) as box:
        wb = CompositeWorkbench({"sandbox": box})
        coder = AssistantAgent("coder", make_client(model_name), workbench=wb, tools=["sandbox__run_*"])
        executor = CodeExecutorAgent("executor", wb)
        team = RoundRobinGroupChat([coder, executor], termination=TextMention("APPROVE"), max_turns=6)
        result = await team.run("Compute the 30th Fibonacci number", ctx=CallContext(session_id="agents-test"))
        texts = [(m.source, m.content) for m in result.messages if m.type == "text"]
        assert texts[2] == ("executor", "[block 1: python]\n832040\n\n[block 2: bash]\nfrom-bash")
        assert result.stop_reason == "coder mentioned 'APPROVE'"
        # The executor ran in the same sandbox session as the coder's tool call: x is still defined.
        again = await executor.run("```python\nprint(x + 1)\n```", ctx=CallContext(session_id="agents-test"))
        assert again.text == "43"
        await wb.close_session("agents-test")


TOML = """
[models.fast]
model = "{model}"
base_url = "{base_url}"
max_retries = 0

[agents.coder]
system_message = "You code."
tools = ["demo__add"]

[agents.runner]
kind = "code_executor"

[teams.pair]
members = ["coder", "runner"]
max_messages = 3
"""


async def test_build_agents_from_config_and_run_in_console(model_server: ModelServer, model_name: str) -> None:
    model_server.script(model_name, [{"tool_calls": [{"name": "demo__add", "arguments": {"a": 1, "b": 2}}]},
                                     {"content": "Sum is 3:\n```python\nprint(3)\n```"}])
    config = parse_config(TOML.format(model=model_name, base_url=model_server.base_url))
    workbench = CompositeWorkbench({"demo": StaticWorkbench([add]), "other": StaticWorkbench([add])})
    agents = build_agents(config, workbench)
    assert set(agents) == {"coder", "runner", "pair"}
    out = io.StringIO()
    result = await run_in_console(agents["pair"], "add 1 and 2", Console(file=out, width=100, color_system=None))
    text = out.getvalue()
    assert [t["function"]["name"] for t in model_server.requests(model_name)[0]["tools"]] == ["demo__add"]
    assert "coder" in text and '→ demo__add({"a": 1, "b": 2})' in text and "← demo__add: 3" in text
    assert "no 'run_python' tool" in result.text  # the runner found no sandbox on this workbench
    assert "stopped: 3 messages reached the maximum of 3" in text
    await agents["coder"].model.close()

    with pytest.raises(ConfigError, match="teams.loop: teams contain each other"):
        build_agents(parse_config(TOML.format(model=model_name, base_url=model_server.base_url) +
                                  '[teams.loop]\nmembers = ["coder", "loop2"]\n[teams.loop2]\nmembers = ["loop"]\n'), workbench)


def test_openai_tool_schema_keeps_refs_and_fixes_names() -> None:
    schema = {"type": "object", "$defs": {"P": {"type": "object", "properties": {"x": {"type": "number"}}}},
              "properties": {"p": {"$ref": "#/$defs/P"}}, "required": ["p"]}
    tool = to_openai_tool(mt.Tool(name="github/search.code", description="d" * 2000, input_schema=schema))
    fn = tool["function"]
    assert tool["type"] == "function" and fn["name"] == "github_search_code"
    assert fn["parameters"] == schema and len(fn["description"]) == 1024
    bare = to_openai_tool(mt.Tool(name="now", input_schema={"type": "object"}))
    assert bare["function"]["parameters"] == {"type": "object", "properties": {}} and "description" not in bare["function"]
    back = from_openai_tool(json.loads(json.dumps(tool)))
    assert back.name == "github_search_code" and back.input_schema == schema
    with pytest.raises(ValueError, match="expected an OpenAI tool"):
        from_openai_tool({"type": "function"})


def test_agent_options_from_config_reach_the_agent() -> None:
    config = parse_config(
        '[models.m]\nmodel = "x"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[agents.a]\ntool_timeout = 7.5\nmax_context_messages = 5\nstream = true\n'
    )
    agent = build_agents(config, StaticWorkbench([add]))["a"]
    assert isinstance(agent, AssistantAgent)
    assert agent.max_context_messages == 5 and agent.model_client_stream is True
    assert agent.toolset.tool_timeout == 7.5
