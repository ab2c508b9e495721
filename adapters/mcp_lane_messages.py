"""The messages of the upstream lane (`adapters.mcp_lane`): the `tools/call` request's params as the
SDK's models would dump them, the client span's W3C context in its `_meta`, and the answer read back —
the JSON-RPC envelope checked, the result validated once into the type the SDK's union would pick.
Each shortcut is held to the model path it replaces in tests/adapters/test_mcp_lane_messages.py."""

from __future__ import annotations

from typing import Any

import mcp.types as mt
from mcp.client.session import _later_revision_fields
from mcp.shared.exceptions import MCPError
from opentelemetry.propagate import inject
from opentelemetry.trace import Span, set_span_in_context
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from adapters.mcp_lane_read import UpstreamProtocolError, clip

_ANSWER = TypeAdapter[mt.CallToolResult | mt.InputRequiredResult](mt.CallToolResult | mt.InputRequiredResult)
_ROUND = {"input_responses", "request_state"}
_TRACEPARENT = "traceparent"


def result_of(message: Any, request_id: str) -> dict[str, Any]:
    """The result of the JSON-RPC response `message` to `request_id`; its error as `MCPError`."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise UpstreamProtocolError(f"answered with something that is not a JSON-RPC 2.0 message: {clip(message)}")
    if message.get("id") != request_id:
        error = message.get("error")
        if message.get("id") is None and isinstance(error, dict):
            raise mcp_error(error)  # rejected before its id was read: still this request's answer
        raise UpstreamProtocolError(
            f"answered request {request_id!r} with the response to {message.get('id')!r}")
    if isinstance(error := message.get("error"), dict):
        raise mcp_error(error)
    result = message.get("result")
    if not isinstance(result, dict):
        raise UpstreamProtocolError(f"answered tools/call without a result object: {clip(message)}")
    return result


def request_params(
    name: str, arguments: dict[str, Any], meta: mt.RequestParamsMeta | None,
    responses: mt.InputResponses | None, state: str | None,
) -> dict[str, Any]:
    """The `tools/call` params as `CallToolRequestParams(...).model_dump(by_alias=True, mode="json",
    exclude_none=True)` has them, without building the models for an ordinary call: the arguments
    through pydantic's own JSON-mode serializer (non-finite floats as null, as the model's dump);
    the rare further round's responses through the model."""
    params: dict[str, Any] = {
        "name": name,
        "arguments": to_jsonable_python(arguments, by_alias=True, exclude_none=True, inf_nan_mode="null"),
    }
    if responses is not None or state is not None:
        params.update(mt.CallToolRequestParams(name=name, input_responses=responses, request_state=state)
                      .model_dump(by_alias=True, mode="json", exclude_none=True, include=_ROUND))
    if meta and (kept := {key: value for key, value in meta.items() if value is not None}):
        params["_meta"] = kept
    return params


def inject_trace_context(params: dict[str, Any], span: Span) -> None:
    """The SDK dispatcher's SEP-414 injection of the client span's W3C context into `_meta`, when
    there is a trace to continue: the span is recorded, or the caller handed its own trace over
    (which `_meta` carries already: injecting continues it through our span, or, with no tracer,
    leaves it as it is). An unrecorded span of a trace nobody started is not propagated: the
    upstream then decides as it would with no tracer installed here, and the call pays nothing."""
    meta: dict[str, Any] | None = params.get("_meta")
    if not span.is_recording() and (meta is None or _TRACEPARENT not in meta):
        return
    meta = dict(meta or {})
    inject(meta, context=set_span_in_context(span))
    if meta:
        params["_meta"] = meta


def call_tool_answer(raw: dict[str, Any], version: str | None) -> mt.CallToolResult | mt.InputRequiredResult:
    """The result of a `tools/call` as `ClientSession.send_request` reads it at the negotiated
    `version` (a later revision's fields dropped first); `UpstreamProtocolError` for anything else."""
    if version is not None and not (foreign := _later_revision_fields("tools/call", version)).isdisjoint(raw):
        raw = {key: value for key, value in raw.items() if key not in foreign}  # as the SDK drops them
    try:
        return _validated(raw)
    except ValidationError as e:
        raise UpstreamProtocolError(
            f"answered tools/call with a result that is not a CallToolResult: {first_error(e)}") from None


def _validated(raw: dict[str, Any]) -> mt.CallToolResult | mt.InputRequiredResult:
    """The answer validated as the SDK validates it (`CallToolResult | InputRequiredResult`, smart
    mode), but once: where the `InputRequiredResult` arm provably fails (a `complete` tag, or no tag
    and neither of its fields), the union's answer is the `CallToolResult` arm's, so only that runs."""
    tag = raw.get("resultType")
    if tag == "complete" or (tag is None and "inputRequests" not in raw and "requestState" not in raw):
        return mt.CallToolResult.model_validate(raw, by_name=False)
    return _ANSWER.validate_python(raw, by_name=False)


def mcp_error(error: dict[str, Any]) -> MCPError:
    try:
        return MCPError.from_error_data(mt.ErrorData.model_validate(error))
    except ValidationError:
        return MCPError(mt.INTERNAL_ERROR, f"the server sent a malformed JSON-RPC error: {clip(error)}")


def first_error(error: Exception) -> str:
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'result'}: {first['msg']}"
    return str(error)
