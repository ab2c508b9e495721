"""InputRounds on its own: the per-identity cap on parked calls is counted per call (a round's new token
does not count twice, a finished call frees its slot), and a client that can be asked nothing never parks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import mcp.types as mt
import pytest
from mcp.shared.exceptions import MCPError

from servers.input_rounds import InputRounds
from workbench.core import CallContext

pytestmark = pytest.mark.anyio

ASKS = mt.ClientCapabilities(elicitation=mt.ElicitationCapability())
QUESTION = mt.ElicitRequestFormParams(message="name?", requested_schema={"type": "object", "properties": {}})


def _asking(call: CallContext) -> Any:
    async def run() -> mt.CallToolResult:
        assert call.elicitation is not None
        answer = await call.elicitation(SimpleNamespace(request_id=1), QUESTION)  # type: ignore[arg-type]
        return mt.CallToolResult(content=[mt.TextContent(type="text", text=str(answer))])

    return run


async def test_cap_counts_each_parked_call_once_per_identity() -> None:
    rounds = InputRounds(max_parked_per_identity=2)
    async with anyio.create_task_group() as tg:
        rounds.task_group = tg
        states: list[str] = []
        for _ in range(2):
            call = CallContext(identity="alice")
            first = await rounds.start(rounds.park(call, ASKS), _asking(call))
            assert isinstance(first, mt.InputRequiredResult) and first.request_state
            states.append(first.request_state)
        with pytest.raises(MCPError, match="2 of your calls are waiting"):
            rounds.park(CallContext(identity="alice"), ASKS)
        rounds.park(CallContext(identity="bob"), ASKS)  # another identity has slots of its own
        [(key, _)] = (first.input_requests or {}).items()
        done = await rounds.resume("alice", states[1], {key: mt.ElicitResult(action="decline")}, None)
        assert isinstance(done, mt.CallToolResult)
        rounds.park(CallContext(identity="alice"), ASKS)  # the finished call's slot is free again
        tg.cancel_scope.cancel()


async def test_a_call_that_cannot_ask_runs_in_the_requests_own_task() -> None:
    rounds = InputRounds()  # no task group: a parked call could not run
    call = CallContext(identity="alice")
    parked = rounds.park(call, mt.ClientCapabilities())
    assert call.elicitation is None and call.sampling is None and call.list_roots is None

    async def run() -> mt.CallToolResult:
        return mt.CallToolResult(content=[mt.TextContent(type="text", text="ok")])

    assert isinstance(await rounds.start(parked, run), mt.CallToolResult)
