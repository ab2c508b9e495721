"""Approval before a tool runs: ask the calling client through elicitation, run only on "yes".

`[serve.policy]` rules name tools that need approval (`require_approval`). Before such a tool
runs, the person behind the calling client is asked — a form elicitation relayed to that
client only (`CallContext.elicitation`) — and the tool runs only on an explicit accept with
`approve = true`. Anything else refuses the call: a decline or cancel, no answer within the
bounded wait, an error from the client, and a client that cannot be asked at all (no
elicitation capability, a 2026-07-28 connection without a server→client channel, a
background job): a tool that needs a person's yes never runs without one.
"""

from __future__ import annotations

import json
from typing import Any, cast

import anyio
import mcp.types as mt
from mcp.client.session import ClientRequestContext

from workbench.core import CallContext

APPROVE = "approve"
"""The form field the person sets to run the tool."""
MAX_SHOWN_ARGUMENTS = 2000
"""Characters of the arguments shown in the question: enough to judge, not a whole file."""

_NO_UPSTREAM = cast(ClientRequestContext, None)
"""The SDK's callback shape carries the upstream request's context; an approval has no upstream
(the server's relay to its client does not read it)."""

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {APPROVE: {"type": "boolean", "title": "Run this tool", "default": False}},
    "required": [APPROVE],
}


def _question(tool: str, arguments: dict[str, Any]) -> str:
    shown = json.dumps(arguments, ensure_ascii=False, default=str)
    if len(shown) > MAX_SHOWN_ARGUMENTS:
        shown = shown[:MAX_SHOWN_ARGUMENTS] + f"… ({len(shown)} characters in all)"
    return f"The tool {tool!r} needs your approval before it runs, with these arguments: {shown}. Run it?"


async def ask_approval(ctx: CallContext | None, tool: str, arguments: dict[str, Any], timeout: float) -> str | None:
    """None when the caller approved running `tool`; otherwise why it must not run (for an `is_error`)."""
    if ctx is None or ctx.elicitation is None:
        return (f"tool {tool!r} needs the caller's approval, and this client cannot be asked: it offers no "
                "elicitation (or this is a background job or a 2026-07-28 connection, which cannot ask). Call it "
                "from a client that supports form elicitation over a 2025-11-25 session.")
    params = mt.ElicitRequestFormParams(message=_question(tool, arguments), requested_schema=_SCHEMA)
    wait = ctx.timeout(timeout)
    answer: mt.ElicitResult | mt.ErrorData | None = None
    with anyio.move_on_after(wait if wait is not None else timeout):
        answer = await ctx.elicitation(_NO_UPSTREAM, params)
    if answer is None:
        return f"tool {tool!r} was not approved: no answer to the approval request within {timeout:g} s"
    if isinstance(answer, mt.ErrorData):
        return f"tool {tool!r} was not approved: the approval request failed ({answer.message[:200]})"
    if answer.action != "accept":
        how = "declined" if answer.action == "decline" else "cancelled"
        return f"tool {tool!r} was not approved: the approval request was {how}"
    if (answer.content or {}).get(APPROVE) is not True:
        return f"tool {tool!r} was not approved: the answer did not set {APPROVE!r} to true"
    return None
