"""Questions from upstream servers reach the client whatever the eras on either side: a 2025
client gets server→client requests, a 2026-07-28 client `InputRequiredResult` rounds, whether
the upstream pushed a request (2025) or returned a round itself (2026). Real SDK clients
through a real gateway in front of a real upstream process."""

from __future__ import annotations

import mcp.types as mt
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from serving import free_port, http_client, serving
from test_gateway_surface import text, upstream_process

from adapters.mcp import McpWorkbench
from workbench import CompositeWorkbench

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
ERAS = ["legacy", "2026-07-28"]


async def sampling(context: ClientRequestContext, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
    return mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text="4"), model="m")


async def elicitation(context: ClientRequestContext, params: mt.ElicitRequestParams) -> mt.ElicitResult:
    return mt.ElicitResult(action="accept", content={"name": "Ann"})


async def list_roots(context: ClientRequestContext) -> mt.ListRootsResult:
    return mt.ListRootsResult(roots=[mt.Root(uri="file:///work")])


CALLBACKS = {"sampling_callback": sampling, "elicitation_callback": elicitation, "list_roots_callback": list_roots}


@pytest.mark.parametrize("upstream_mode", ERAS)
@pytest.mark.parametrize("client_mode", ERAS)
async def test_questions_cross_the_gateway_in_every_pair_of_eras(upstream_mode: str, client_mode: str) -> None:
    port = free_port()
    with upstream_process(port):
        upstream = McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode=upstream_mode, relay_client_requests=True)
        async with serving(CompositeWorkbench({"up": upstream})) as gw, \
                http_client(gw.url, mode=client_mode, **CALLBACKS) as client:
            # Two questions in one upstream round reach the client together and both answers go back.
            assert text(await client.call_tool("up__interview", {})) == "Ann / 4"
            assert text(await client.call_tool("up__client_roots", {})) == "file:///work"
            if upstream_mode == "legacy":  # pushed one after the other: two rounds for a 2026 client
                assert text(await client.call_tool("up__push_twice", {})) == "Ann / 4"


async def test_a_modern_client_sees_the_rounds_and_cannot_resume_with_a_made_up_state() -> None:
    port = free_port()
    with upstream_process(port):
        upstream = McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode="legacy", relay_client_requests=True)
        async with serving(CompositeWorkbench({"up": upstream})) as gw, \
                http_client(gw.url, mode="2026-07-28", **CALLBACKS) as client:
            session = client.session
            first = await session.call_tool("up__push_twice", {}, allow_input_required=True)
            assert isinstance(first, mt.InputRequiredResult) and first.input_requests and first.request_state
            [(key, request)] = first.input_requests.items()
            assert isinstance(request, mt.ElicitRequest)
            second = await session.call_tool("up__push_twice", {}, allow_input_required=True, input_responses={
                key: mt.ElicitResult(action="accept", content={"name": "Bo"})}, request_state=first.request_state)
            assert isinstance(second, mt.InputRequiredResult) and second.input_requests
            [(key, request)] = second.input_requests.items()
            assert isinstance(request, mt.CreateMessageRequest)
            done = await session.call_tool("up__push_twice", {}, allow_input_required=True, input_responses={
                key: mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text="5"),
                                            model="m")}, request_state=second.request_state)
            assert isinstance(done, mt.CallToolResult) and text(done) == "Bo / 5"
            with pytest.raises(MCPError, match="requestState"):
                await session.call_tool("up__push_twice", {}, allow_input_required=True, input_responses={}, request_state="made-up")
