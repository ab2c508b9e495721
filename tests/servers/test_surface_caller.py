"""What the served workbench learns of its caller on the requests besides tool calls — reading a
resource, getting a prompt, completing an argument, subscribing, setting a log level — over real
HTTP with a named static token, in both protocol eras: the same identity, scopes and verified
claims a tool call carries, so a workbench that decides by them decides the same way here."""

from __future__ import annotations

import warnings
from typing import Any

import anyio
import mcp.types as mt
import pytest
from pydantic import SecretStr
from serving import http_client, serving

from servers import ServeSettings
from servers.settings import StaticToken
from workbench import CallContext
from workbench.core import CompletionRef, ToolResult, ToolSpec, Workbench

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
TOKEN = "alice-" + "a" * 26
URI = "notes://readme"


class Recording(Workbench):
    """Resources, a prompt and completion that remember the context each request came with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, CallContext | None] = {}

    async def list_tools(self) -> list[ToolSpec]:
        return []

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        ctx: CallContext | None = None) -> ToolResult:
        return ToolResult.error("no tools here")

    async def list_resources(self) -> list[mt.Resource]:
        return [mt.Resource(uri=URI, name="readme")]

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        self.seen["read"] = ctx
        return mt.ReadResourceResult(contents=[mt.TextResourceContents(uri=uri, text="hello")])

    async def list_prompts(self) -> list[mt.Prompt]:
        return [mt.Prompt(name="greet")]

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None,
                         ctx: CallContext | None = None) -> mt.GetPromptResult:
        self.seen["prompt"] = ctx
        text = mt.TextContent(type="text", text="hi")
        return mt.GetPromptResult(messages=[mt.PromptMessage(role="user", content=text)])

    async def complete(self, ref: CompletionRef, argument: mt.CompletionArgument,
                       context: mt.CompletionContext | None = None, ctx: CallContext | None = None) -> mt.Completion:
        self.seen["complete"] = ctx
        return mt.Completion(values=["world"])

    async def subscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        self.seen["subscribe"] = ctx

    async def set_log_level(self, level: mt.LoggingLevel, ctx: CallContext | None = None) -> None:
        self.seen["level"] = ctx


def settings() -> ServeSettings:
    return ServeSettings(transport="http", tokens={"alice": StaticToken(token=SecretStr(TOKEN), scopes=["notes:read"])})


async def test_every_request_carries_the_callers_scopes_and_claims(mode: str) -> None:
    bench = Recording()
    async with serving(bench, settings()) as served, \
            http_client(served.url, mode=mode, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert (await client.read_resource(URI)).contents
        assert (await client.get_prompt("greet")).messages
        completed = await client.complete(mt.PromptReference(type="ref/prompt", name="greet"),
                                          {"name": "who", "value": "w"})
        assert completed.completion.values == ["world"]
        if mode == "legacy":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.subscribe_resource(URI)
                await client.set_logging_level("debug")
        else:  # 2026-07-28 subscribes on the listen stream; it has no log level request
            async with client.listen(resource_subscriptions=[URI]):
                with anyio.fail_after(10):
                    while "subscribe" not in bench.seen:
                        await anyio.sleep(0.01)

    expected = {"read", "prompt", "complete", "subscribe"} | ({"level"} if mode == "legacy" else set())
    assert set(bench.seen) == expected
    for request, ctx in bench.seen.items():
        assert ctx is not None, request
        assert (request, ctx.identity, ctx.scopes, dict(ctx.claims)) == \
            (request, "alice", frozenset({"notes:read"}), {"token_name": "alice"})
