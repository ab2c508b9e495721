"""The fixture's tools that ask the client something — sampling, elicitation, roots — written once
and served in either era, so the fixture can stand for a 2025-only or a 2026-only upstream.

Each one is a `Step`: given the answers so far and the request state, it returns its result or
an `InputRequiredResult` naming what it still needs. On the 2026-07-28 wire that result goes to
the client, which retries with the answers (SEP-2322, multi-round-trip requests). On the 2025
wire the same questions are pushed to the client mid-call, as server→client requests on the
call's own stream, and the step runs again with the answers — the two forms of one question
that a gateway must bridge between when its client and its upstream speak different eras.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import mcp.types as mt
from mcp.server.elicitation import render_elicitation_schema
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field, ValidationError

Answers = Mapping[str, mt.InputResponse]
Step = Callable[[Answers, "str | None"], Any]
"""(answers so far, request state) → the result, or an InputRequiredResult asking for more."""
MAX_ROUNDS = 8
"""Rounds a 2025-era call may take before the fixture gives up (a client that never answers
what is asked must not keep a call open forever)."""
ANSWER_TYPES: dict[type[Any], type[Any]] = {
    mt.ElicitRequest: mt.ElicitResult,
    mt.CreateMessageRequest: mt.CreateMessageResult,
    mt.ListRootsRequest: mt.ListRootsResult,
}
NAME_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
CONFIRM_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


async def in_rounds(ctx: Context, step: Step) -> Any:
    """Run `step` in the era of this request (see the module docstring)."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return step(ctx.input_responses or {}, ctx.request_state)
    answers: dict[str, mt.InputResponse] = {}
    state: str | None = None
    for _ in range(MAX_ROUNDS):
        result = step(answers, state)
        if not isinstance(result, mt.InputRequiredResult):
            return result
        # related_request_id: on the call's own stream, not the standalone GET stream, which
        # the client may not have opened.
        metadata = ServerMessageMetadata(related_request_id=ctx.request_id)
        answers = {key: await ctx.session.send_request(request, ANSWER_TYPES[type(request)], metadata=metadata)
                   for key, request in (result.input_requests or {}).items()}
        state = result.request_state
    raise MCPError(code=mt.INTERNAL_ERROR, message=f"still asking after {MAX_ROUNDS} rounds")


def elicit(message: str, schema: dict[str, Any]) -> mt.ElicitRequest:
    return mt.ElicitRequest(params=mt.ElicitRequestFormParams(message=message, requested_schema=schema))


def sample(text: str, max_tokens: int) -> mt.CreateMessageRequest:
    return mt.CreateMessageRequest(params=mt.CreateMessageRequestParams(
        messages=[mt.SamplingMessage(role="user", content=mt.TextContent(type="text", text=text))],
        max_tokens=max_tokens))


def elicited(answer: object, field: str) -> Any:
    return answer.content.get(field) if isinstance(answer, mt.ElicitResult) and answer.content else None


def sampled(answer: object) -> str | None:
    if isinstance(answer, mt.CreateMessageResult) and isinstance(answer.content, mt.TextContent):
        return answer.content.text
    return None


class UserResponse(BaseModel):
    response: str = Field(description="User's response")


class Defaults(BaseModel):
    """SEP-1034: a default for every primitive type."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(default="active", description="User status",
                        json_schema_extra={"enum": ["active", "inactive", "pending"]})
    verified: bool = Field(default=True, description="Verification status")


class Enums(BaseModel):
    """SEP-1330: every enum shape — plain, titled, multi-select plain and titled, legacy enumNames."""

    untitledSingle: str = Field(description="Simple enum without titles",
                                json_schema_extra={"enum": ["active", "inactive", "pending"]})
    titledSingle: str = Field(description="Enum with titled options (oneOf)", json_schema_extra={"oneOf": [
        {"const": "low", "title": "Low Priority"}, {"const": "medium", "title": "Medium Priority"},
        {"const": "high", "title": "High Priority"}]})
    untitledMulti: list[str] = Field(description="Multi-select without titles", json_schema_extra={
        "items": {"type": "string", "enum": ["read", "write", "execute"]}})
    titledMulti: list[str] = Field(description="Multi-select with titled options", json_schema_extra={
        "items": {"anyOf": [{"const": "feature", "title": "New Feature"}, {"const": "bug", "title": "Bug Fix"},
                            {"const": "docs", "title": "Documentation"}]}})
    legacyEnum: str = Field(description="Legacy enum with enumNames", json_schema_extra={
        "enum": ["small", "medium", "large"], "enumNames": ["Small Size", "Medium Size", "Large Size"]})


def form(message: str, model: type[BaseModel], prefix: str) -> Step:
    """One elicitation of `model`; the answer, validated, comes back as text."""

    def step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
        answer = answers.get("form")
        if not isinstance(answer, mt.ElicitResult):
            return mt.InputRequiredResult(input_requests={"form": elicit(message, render_elicitation_schema(model))})
        content = "{}"
        if answer.action == "accept":
            try:
                content = model.model_validate(answer.content or {}).model_dump_json()
            except ValidationError:
                return f"{prefix}: the answer does not fit the form"
        return f"{prefix}: action={answer.action}, content={content}"

    return step


def add_push_era_tools(server: MCPServer) -> None:
    """The tools of the 2025 suite's sampling and elicitation scenarios."""

    @server.tool()
    async def test_sampling(prompt: str, ctx: Context) -> str | mt.InputRequiredResult:
        """Asks the client's model (sampling/createMessage) and returns its answer."""

        def step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
            if "sampling" not in answers:
                return mt.InputRequiredResult(input_requests={"sampling": sample(prompt, 100)})
            return f"LLM response: {sampled(answers['sampling']) or 'No response'}"

        return await in_rounds(ctx, step)  # type: ignore[no-any-return]

    @server.tool()
    async def test_elicitation(message: str, ctx: Context) -> str | mt.InputRequiredResult:
        """Asks the user (elicitation/create) for one string."""
        return await in_rounds(ctx, form(message, UserResponse, "User response"))  # type: ignore[no-any-return]

    @server.tool()
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str | mt.InputRequiredResult:
        """Elicits a form whose fields all carry defaults (SEP-1034)."""
        step = form("Please provide user information", Defaults, "Elicitation result")
        return await in_rounds(ctx, step)  # type: ignore[no-any-return]

    @server.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str | mt.InputRequiredResult:
        """Elicits a form with every enum shape (SEP-1330)."""
        step = form("Please select values using different enum schema types", Enums, "Elicitation completed")
        return await in_rounds(ctx, step)  # type: ignore[no-any-return]

    @server.tool()
    async def test_missing_capability(ctx: Context) -> str:
        """Needs the client's sampling capability; without it the call is a JSON-RPC error -32021."""
        caps = ctx.client_capabilities
        if caps is None or caps.sampling is None:
            raise MCPError(code=mt.MISSING_REQUIRED_CLIENT_CAPABILITY,
                           message="This tool requires the client 'sampling' capability",
                           data={"requiredCapabilities": {"sampling": {}}})
        return "Client declared sampling capability; proceeding."


def elicitation_step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
    if "user_name" in answers:
        return f"Hello, {elicited(answers['user_name'], 'name') or '?'}!"
    return mt.InputRequiredResult(input_requests={"user_name": elicit("What is your name?", NAME_SCHEMA)})


def sampling_step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
    if "capital_question" in answers:
        return f"Model said: {sampled(answers['capital_question']) or '?'}"
    return mt.InputRequiredResult(input_requests={"capital_question": sample("What is the capital of France?", 100)})


def roots_step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
    answer = answers.get("client_roots")
    if answer is not None:
        return f"Client exposed {len(answer.roots) if isinstance(answer, mt.ListRootsResult) else 0} root(s)."
    return mt.InputRequiredResult(input_requests={"client_roots": mt.ListRootsRequest()})


def request_state_step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
    if "confirm" in answers and state == "request-state-nonce":
        return "state-ok: confirmation received"
    return mt.InputRequiredResult(input_requests={"confirm": elicit("Please confirm", CONFIRM_SCHEMA)},
                                  request_state="request-state-nonce")


def multiple_inputs_step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
    if {"user_name", "greeting", "client_roots"} <= answers.keys():
        return "All inputs received."
    return mt.InputRequiredResult(input_requests={
        "user_name": elicit("What is your name?", NAME_SCHEMA),
        "greeting": sample("Generate a greeting", 50),
        "client_roots": mt.ListRootsRequest(),
    }, request_state="multiple-inputs")


def multi_round_step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
    progress = json.loads(state) if state else {"round": 0}
    if progress.get("round") == 1 and "step1" in answers:
        color = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
        return mt.InputRequiredResult(
            input_requests={"step2": elicit("Step 2: What is your favorite color?", color)},
            request_state=json.dumps({"round": 2, "name": elicited(answers["step1"], "name")}))
    if progress.get("round") == 2 and "step2" in answers:
        return f"{progress.get('name')} likes {elicited(answers['step2'], 'color')}."
    # The first round, or an answer missing or out of order: start over.
    return mt.InputRequiredResult(input_requests={"step1": elicit("Step 1: What is your name?", NAME_SCHEMA)},
                                  request_state=json.dumps({"round": 1}))


def tampered_state_step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
    # The SDK's request-state seal refuses a tampered echo before this step runs (2026).
    if state is None:
        return mt.InputRequiredResult(input_requests={"confirm": elicit("Please confirm", CONFIRM_SCHEMA)},
                                      request_state="round-1")
    return f"state-ok: {state}"


def capabilities_step(caps: mt.ClientCapabilities | None) -> Step:
    """Asks only for what the client declared it can answer."""

    def step(answers: Answers, state: str | None) -> str | mt.InputRequiredResult:
        if answers:
            return f"answered: {', '.join(sorted(answers))}"
        requests: dict[str, mt.InputRequest] = {}
        if caps is None or caps.sampling is not None:
            requests["sample"] = sample("Say hello", 50)
        if caps is None or caps.elicitation is not None:
            requests["ask"] = elicit("What is your name?", NAME_SCHEMA)
        if not requests:  # a round with nothing to answer would only come back the same
            return "nothing to ask: the client declared neither sampling nor elicitation"
        return mt.InputRequiredResult(input_requests=requests, request_state="capability-gated")

    return step


def context_prompt_step(answers: Answers, state: str | None) -> list[UserMessage] | mt.InputRequiredResult:
    if "user_context" in answers:
        text = elicited(answers["user_context"], "context") or "?"
        return [UserMessage(role="user", content=mt.TextContent(type="text", text=f"Use the following context: {text}"))]
    schema = {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]}
    return mt.InputRequiredResult(input_requests={"user_context": elicit("What context should the prompt use?", schema)})


INPUT_REQUIRED_TOOLS: dict[str, tuple[str, Step]] = {
    "test_input_required_result_elicitation": ("One elicitation round.", elicitation_step),
    "test_input_required_result_sampling": ("One sampling round.", sampling_step),
    "test_input_required_result_list_roots": ("One roots/list round.", roots_step),
    "test_input_required_result_request_state": ("The requestState it hands out comes back with the answer.",
                                                 request_state_step),
    "test_input_required_result_multiple_inputs": ("Elicitation, sampling and roots in one round.",
                                                   multiple_inputs_step),
    "test_input_required_result_multi_round": ("Three rounds; the requestState carries what earlier rounds answered.",
                                               multi_round_step),
    "test_input_required_result_tampered_state": ("A tampered requestState echo is refused.", tampered_state_step),
}
"""The tools of the 2026 suite's input-required-result scenarios: name → (description, step)."""


def step_tool(step: Step) -> Callable[[Context], Any]:
    async def tool(ctx: Context) -> str | mt.InputRequiredResult:
        return await in_rounds(ctx, step)  # type: ignore[no-any-return]

    return tool


def add_input_required_tools(server: MCPServer) -> None:
    for name, (description, step) in INPUT_REQUIRED_TOOLS.items():
        server.add_tool(step_tool(step), name=name, description=description)

    @server.tool()
    async def test_input_required_result_capabilities(ctx: Context) -> str | mt.InputRequiredResult:
        """Asks only for what the client declared it can answer."""
        return await in_rounds(ctx, capabilities_step(ctx.client_capabilities))  # type: ignore[no-any-return]

    @server.prompt()
    async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | mt.InputRequiredResult:
        """A prompt that needs an elicitation round first (SEP-2322 outside tools/call)."""
        return await in_rounds(ctx, context_prompt_step)  # type: ignore[no-any-return]
