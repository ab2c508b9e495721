"""The fixture keeps the promises the gateway matrix relies on: forced to one era it speaks only
that era (a client that negotiates lands there, one that insists on the other is refused), and
in either era its tools that ask the client get their answers — pushed mid-call in 2025,
in input-required rounds in 2026 — so a gateway can be held to bridging between the two."""

from __future__ import annotations

import anyio
import mcp.types as mt
import pytest
from mcp import Client, StdioServerParameters
from targets import fixture_command
from test_prefixed_gateway import on_elicitation, on_roots, on_sampling

pytestmark = pytest.mark.anyio

ASKING = {
    "test_sampling": ({"prompt": "hi"}, "LLM response: answer to hi"),
    "test_elicitation": ({"message": "name?"}, 'User response: action=accept, content={"response":"response-answer"}'),
    "test_input_required_result_multi_round": ({}, "name-answer likes color-answer."),
    "test_input_required_result_multiple_inputs": ({}, "All inputs received."),
}


def stdio(era: str) -> StdioServerParameters:
    command, *args = fixture_command("stdio", era)  # type: ignore[arg-type]
    return StdioServerParameters(command=command, args=args)


@pytest.mark.parametrize(("era", "lands"), [("2025", "2025-11-25"), ("2026", "2026-07-28")])
async def test_a_one_era_fixture_speaks_only_its_era_and_asks_in_it(era: str, lands: str) -> None:
    with anyio.fail_after(60):
        async with Client(stdio(era), sampling_callback=on_sampling, elicitation_callback=on_elicitation,
                          list_roots_callback=on_roots) as client:
            assert client.protocol_version == lands  # mode="auto" negotiated down or up to it
            for tool, (arguments, expected) in ASKING.items():
                result = await client.call_tool(tool, arguments)
                assert not result.is_error and result.content == [mt.TextContent(type="text", text=expected)], tool
            prompt = await client.get_prompt("test_input_required_result_prompt")
            assert prompt.messages[0].content == mt.TextContent(type="text", text="Use the following context: context-answer")
        with pytest.raises(Exception):  # noqa: B017 — any refusal: the other era is not spoken
            async with Client(stdio(era), mode="legacy" if era == "2026" else "2026-07-28") as other:
                await other.list_tools()


async def test_the_both_era_fixture_serves_each_client_in_its_own_era() -> None:
    for mode, lands in (("legacy", "2025-11-25"), ("auto", "2026-07-28")):
        with anyio.fail_after(60):
            async with Client(stdio("both"), mode=mode) as client:
                assert client.protocol_version == lands
                assert "test_simple_text" in {t.name for t in (await client.list_tools()).tools}
