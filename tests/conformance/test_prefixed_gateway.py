"""The gateway with the prefix on, held to the fixture's own answers through real clients.

The conformance suite calls tools, prompts and resources by their unprefixed names, so through
a prefixing gateway most of its scenarios cannot pass by design. Here every tool, prompt,
resource, template, completion and subscription of the fixture is used twice with the SDK
`Client` — straight at the fixture and through `workbench serve` with the prefix on — in both
client eras, and the answers must be the same once the names are mapped: tools and prompts are
served as `up__name`, resource URIs as `up+scheme://…` (the prefix joins the URI's scheme, so
templates stay expandable), in listings, in results (embedded resources, resource links) and in
what a client sends back (reads, completion references, subscriptions). The fixture refuses to
subscribe to a URI it does not serve and names the reference in its completions, so a name that
reached it unmapped shows. The MCP Inspector CLI is the second, independent client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as mt
import pytest
from everything_server import build_server
from harness import NODE_BIN
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import SERVER_INFO_META_KEY
from targets import PREFIX, ROOT, Gateway, serve_fixture, serve_gateway

# The first test also starts the fixture and the gateway (up to targets.START_TIMEOUT each).
pytestmark = [pytest.mark.anyio, pytest.mark.npm, pytest.mark.timeout(600)]

MODES = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}
URI_HEAD = f"{PREFIX}+"
ARGUMENTS: dict[str, dict[str, Any]] = {
    "test_sampling": {"prompt": "What is the capital of France?"},
    "test_elicitation": {"message": "What is your name?"},
    "test_x_mcp_header": {"region": "eu-west"},
    "json_schema_2020_12_tool": {"name": "Ada", "contactMethod": "email", "email": "ada@example.org"},
}
PROMPT_ARGUMENTS: dict[str, dict[str, str]] = {
    "test_prompt_with_arguments": {"arg1": "one", "arg2": "two"},
    "test_prompt_with_embedded_resource": {"resourceUri": "test://static-text"},
}
# Per-request details that legitimately differ between two calls.
UNCOMPARABLE = {"test_tool_with_progress"}  # returns the caller's progress token


def fixture_catalog() -> tuple[list[str], list[str]]:
    server = build_server()

    async def names() -> tuple[list[str], list[str]]:
        return [t.name for t in await server.list_tools()], [p.name for p in await server.list_prompts()]

    return anyio.run(names)


TOOLS, PROMPTS = fixture_catalog()


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(fixture URL, prefixed gateway URL), each in its own process."""
    workdir: Path = tmp_path_factory.mktemp("prefixed")
    with ExitStack() as stack:
        direct, _ = stack.enter_context(serve_fixture(workdir))
        gateway, _ = stack.enter_context(serve_gateway(workdir, Gateway("http", "both", prefix=True), direct))
        yield direct, gateway


@pytest.fixture(params=list(MODES), ids=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return MODES[request.param]


def answer(schema: dict[str, Any]) -> dict[str, Any]:
    """A form filled in from its schema: the first allowed value, else a value of its type."""
    filled: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        choices = prop.get("enum") or [c["const"] for c in prop.get("oneOf", []) if "const" in c]
        if prop.get("type") == "array":
            items = prop.get("items", {})
            filled[name] = (items.get("enum") or [c["const"] for c in items.get("anyOf", [])])[:1]
        elif choices:
            filled[name] = choices[0]
        else:
            filled[name] = {"integer": 7, "number": 1.5, "boolean": True}.get(prop.get("type", ""), f"{name}-answer")
    return filled


async def on_sampling(context: object, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
    asked = params.messages[-1].content
    text = asked.text if isinstance(asked, mt.TextContent) else "?"
    return mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text=f"answer to {text}"),
                                  model="test-model")


async def on_elicitation(context: object, params: mt.ElicitRequestParams) -> mt.ElicitResult:
    schema = params.requested_schema if isinstance(params, mt.ElicitRequestFormParams) else {}
    return mt.ElicitResult(action="accept", content=answer(schema))


async def on_roots(context: object) -> mt.ListRootsResult:
    return mt.ListRootsResult(roots=[mt.Root.model_validate({"uri": "file:///srv/project", "name": "project"})])


@asynccontextmanager
async def client(url: str, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    with anyio.fail_after(60):
        # log_level: a 2026 client receives log messages only when it asks for a level.
        async with Client(url, mode=mode, sampling_callback=on_sampling, elicitation_callback=on_elicitation,
                          list_roots_callback=on_roots, log_level="debug", **kwargs) as c:
            yield c


def exposed(value: Any) -> Any:
    """What the gateway should answer for the fixture's `value`: every resource URI in it under the
    prefix (as JSON, the `uri` fields of contents, embedded resources and resource links)."""
    if isinstance(value, dict):
        return {k: (URI_HEAD + v if k == "uri" and isinstance(v, str) else exposed(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [exposed(v) for v in value]
    return value


def dump(model: Any) -> Any:
    """The answer as JSON, `_meta` too but for its `serverInfo` stamp (`stamp`): names the server that answered."""
    dumped = json.loads(model.model_dump_json(by_alias=True, exclude_none=True))
    meta = {k: v for k, v in dumped.pop("_meta", {}).items() if k != SERVER_INFO_META_KEY}
    return {**dumped, "_meta": meta} if meta else dumped


def stamp(model: Any) -> str | None:
    """The name in a 2026-07-28 answer's `serverInfo` stamp (a handshake-era answer has none)."""
    return ((getattr(model, "meta", None) or {}).get(SERVER_INFO_META_KEY) or {}).get("name")


def stamps(mode: str) -> tuple[str | None, str | None]:
    """(the fixture's stamp, the gateway's) in `mode`: the gateway answers under its own name, never an upstream's."""
    return ("mcp-conformance-test-server", "mcp-workbench") if mode == MODES["2026-07-28"] else (None, None)


async def test_the_catalog_is_the_fixtures_under_the_prefix(urls: tuple[str, str], mode: str) -> None:
    direct_url, gateway_url = urls
    async with client(direct_url, mode) as direct, client(gateway_url, mode) as gateway:
        tools = {t.name: t for t in (await direct.list_tools()).tools}
        served = {t.name: t for t in (await gateway.list_tools()).tools}
        assert set(served) == {f"{PREFIX}__{name}" for name in tools}
        for name, tool in tools.items():  # schemas (2020-12 keywords included) and descriptions unchanged
            theirs = served[f"{PREFIX}__{name}"]
            assert (theirs.input_schema, theirs.output_schema, theirs.description) == \
                   (tool.input_schema, tool.output_schema, tool.description), name
        prompts = {p.name: dump(p) for p in (await direct.list_prompts()).prompts}
        assert {p.name: dump(p) | {"name": p.name.removeprefix(f"{PREFIX}__")}
                for p in (await gateway.list_prompts()).prompts} == \
               {f"{PREFIX}__{name}": p for name, p in prompts.items()}
        assert [dump(r) for r in (await gateway.list_resources()).resources] == \
               exposed([dump(r) for r in (await direct.list_resources()).resources])
        templates = [t.uri_template for t in (await gateway.list_resource_templates()).resource_templates]
        assert templates == [URI_HEAD + t.uri_template
                             for t in (await direct.list_resource_templates()).resource_templates]


@pytest.mark.parametrize("tool", TOOLS)
async def test_each_tool_answers_as_the_fixture_does(urls: tuple[str, str], mode: str, tool: str) -> None:
    """Content, structured content and isError alike — sampling, elicitation and roots answered by
    the calling client through the gateway (pushed requests in 2025, input-required rounds in 2026)."""
    direct_url, gateway_url = urls
    want, want_logs, want_progress = await call(direct_url, mode, tool)
    got, got_logs, got_progress = await call(gateway_url, mode, f"{PREFIX}__{tool}")
    assert (got_logs, got_progress) == (want_logs, want_progress)  # log and progress notifications relayed
    if tool not in UNCOMPARABLE:
        assert dump(got) == exposed(dump(want))
    if isinstance(want, mt.CallToolResult):
        assert (stamp(want), stamp(got)) == stamps(mode)


async def call(url: str, mode: str, name: str) -> tuple[mt.CallToolResult | mt.ErrorData, list[Any], list[float]]:
    """`name` called at `url` (its result, or its JSON-RPC error), with the log messages and progress
    it sent on the way."""
    logs: list[Any] = []
    steps: list[float] = []

    async def on_log(params: mt.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with client(url, mode, logging_callback=on_log) as c:
        with anyio.fail_after(60):
            try:
                result: mt.CallToolResult | mt.ErrorData = await c.call_tool(
                    name, ARGUMENTS.get(name.removeprefix(f"{PREFIX}__"), {}), progress_callback=on_progress)
            except MCPError as e:  # protocol_error_job's: the gateway must pass the same error on
                result = e.error
    return result, logs, steps


@pytest.mark.parametrize("prompt", PROMPTS)
async def test_each_prompt_answers_as_the_fixture_does(urls: tuple[str, str], mode: str, prompt: str) -> None:
    direct_url, gateway_url = urls
    async with client(direct_url, mode) as direct, client(gateway_url, mode) as gateway:
        with anyio.fail_after(60):
            want = await direct.get_prompt(prompt, PROMPT_ARGUMENTS.get(prompt))
            got = await gateway.get_prompt(f"{PREFIX}__{prompt}", PROMPT_ARGUMENTS.get(prompt))
    assert dump(got) == exposed(dump(want))
    assert (stamp(want), stamp(got)) == stamps(mode)


async def test_resources_and_templates_read_back_under_the_prefix(urls: tuple[str, str], mode: str) -> None:
    direct_url, gateway_url = urls
    async with client(direct_url, mode) as direct, client(gateway_url, mode) as gateway:
        uris = [str(r.uri) for r in (await direct.list_resources()).resources] + ["test://template/123/data"]
        for uri in uris:
            want, got = await direct.read_resource(uri), await gateway.read_resource(URI_HEAD + uri)
            assert dump(got) == exposed(dump(want)), uri
            assert (stamp(want), stamp(got)) == stamps(mode), uri
        with pytest.raises(Exception, match="test://static-text|resource|not found|unknown"):
            await gateway.read_resource("test://static-text")  # the unprefixed URI is not the gateway's


async def test_completion_references_are_mapped_to_the_upstreams(urls: tuple[str, str], mode: str) -> None:
    direct_url, gateway_url = urls
    argument = {"name": "arg1", "value": "pa"}
    async with client(direct_url, mode) as direct, client(gateway_url, mode) as gateway:
        for ref, served_ref in (
            (mt.PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
             mt.PromptReference(type="ref/prompt", name=f"{PREFIX}__test_prompt_with_arguments")),
            (mt.ResourceTemplateReference(type="ref/resource", uri="test://template/{id}/data"),
             mt.ResourceTemplateReference(type="ref/resource", uri=f"{URI_HEAD}test://template/{{id}}/data")),
        ):
            want = await direct.complete(ref, argument)
            assert want.completion.values  # the fixture names what it completed
            assert (await gateway.complete(served_ref, argument)).completion.values == want.completion.values


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # 2025-era methods, on purpose
async def test_subscriptions_and_log_levels_reach_the_upstream_under_its_own_names(urls: tuple[str, str]) -> None:
    """2025-era methods: subscribe/unsubscribe take the prefixed URI and the fixture, which refuses
    URIs it does not serve, accepts them; setLevel is answered."""
    _, gateway_url = urls
    async with client(gateway_url, "legacy") as gateway:
        with anyio.fail_after(60):
            await gateway.session.subscribe_resource(f"{URI_HEAD}test://watched-resource")
            await gateway.session.unsubscribe_resource(f"{URI_HEAD}test://watched-resource")
            await gateway.session.set_logging_level("debug")
            with pytest.raises(Exception):  # noqa: B017 — any refusal: the URI is nobody's
                await gateway.session.subscribe_resource(f"{URI_HEAD}test://no-such-resource")


def inspector(url: str, *args: str) -> Any:
    """The MCP Inspector CLI (npm), a client that shares no code with ours."""
    import subprocess

    cli = ROOT / "node_modules" / ".bin" / "mcp-inspector"
    if not cli.exists():  # under CI=true, tests/conftest.py fails the run before this
        pytest.skip(f"the MCP Inspector is not installed at {cli}: run scripts/setup.sh")
    done = subprocess.run([str(NODE_BIN / "node"), str(cli), "--cli", url, "--transport", "http", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_inspector_sees_the_same_through_the_prefixed_gateway(urls: tuple[str, str]) -> None:
    direct_url, gateway_url = urls
    listed = {t["name"] for t in inspector(gateway_url, "--method", "tools/list")["tools"]}
    assert listed == {f"{PREFIX}__{name}" for name in TOOLS}
    for tool in ("test_simple_text", "test_embedded_resource"):
        want = inspector(direct_url, "--method", "tools/call", "--tool-name", tool)
        got = inspector(gateway_url, "--method", "tools/call", "--tool-name", f"{PREFIX}__{tool}")
        assert got["content"] == exposed(want["content"]) and got.get("isError") == want.get("isError")
    want = inspector(direct_url, "--method", "resources/read", "--uri", "test://static-binary")
    assert inspector(gateway_url, "--method", "resources/read", "--uri", f"{URI_HEAD}test://static-binary") == \
           exposed(want)
    want = inspector(direct_url, "--method", "prompts/get", "--prompt-name", "test_prompt_with_arguments",
                     "--prompt-args", "arg1=a", "arg2=b")
    assert inspector(gateway_url, "--method", "prompts/get", "--prompt-name",
                     f"{PREFIX}__test_prompt_with_arguments", "--prompt-args", "arg1=a", "arg2=b") == want
