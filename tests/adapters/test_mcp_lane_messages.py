"""What the upstream lane puts on the wire and how it reads the answer (`adapters.mcp_lane_messages`),
held to the SDK's own spelling: the lane builds its request without the SDK's models and validates the answer
once, so each shortcut is checked here against the model path it replaces; and its client span
propagates a trace only when there is one to continue (a real upstream reports what it received)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import mcp.types as mt
import pytest
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from adapters.mcp import McpWorkbench
from adapters.mcp_lane_messages import _ANSWER, _validated, request_params
from workbench.core import CallContext

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_PARENT = "b7ad6b7169203331"


class _Point(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    x_value: int
    label: str | None = None


ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"a": 2, "b": 40, "text": "hé ✓", "flag": True, "none": None, "nested": {"deep": [1, None, {"k": None}]}},
    {"when": datetime.datetime(2026, 7, 28, 12, 0, tzinfo=datetime.UTC), "day": datetime.date(2026, 1, 2),
     "id": uuid.UUID(int=7), "pair": (1, 2), "set": {3}, "raw": b"bytes"},
    {"nan": float("nan"), "inf": float("inf"), "big": 10**30, "small": -0.5},
    {"model": _Point(x_value=1), "models": [_Point(x_value=2, label="two")]},
]
METAS: list[dict[str, Any] | None] = [
    None, {}, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_PARENT}-01", "tracestate": "k=v"},
    {"io.modelcontextprotocol/logLevel": "debug", "dropped": None},
]


@pytest.mark.parametrize("arguments", ARGUMENTS)
@pytest.mark.parametrize("meta", METAS)
def test_request_params_are_what_the_sdk_models_dump(arguments: dict[str, Any], meta: dict[str, Any] | None) -> None:
    expected = mt.CallToolRequestParams(name="tool", arguments=arguments, _meta=meta).model_dump(  # type: ignore[arg-type]
        by_alias=True, mode="json", exclude_none=True)
    if not expected.get("_meta", True):
        del expected["_meta"]  # an empty `_meta` never reaches the wire: the SDK's dispatcher drops it too
    assert request_params("tool", arguments, meta, None, None) == expected  # type: ignore[arg-type]


def test_a_further_rounds_params_carry_its_responses_and_state_as_the_model_dumps_them() -> None:
    responses: mt.InputResponses = {
        "ask": mt.ElicitResult(action="accept", content={"name": "Ada"}),
        "roots": mt.ListRootsResult(roots=[mt.Root(uri="file:///tmp/x")]),  # type: ignore[arg-type]
    }
    for given, state in ((responses, "opaque"), (None, "only-state"), (responses, None)):
        expected = mt.CallToolRequestParams(name="tool", arguments={"a": 1}, input_responses=given,
                                            request_state=state).model_dump(by_alias=True, mode="json",
                                                                            exclude_none=True)
        assert request_params("tool", {"a": 1}, None, given, state) == expected


ANSWERS: list[dict[str, Any]] = [
    {"content": [{"type": "text", "text": "3"}], "structuredContent": {"result": 3}, "isError": False,
     "resultType": "complete"},
    {"content": [{"type": "text", "text": "no tag"}]},
    {"content": [], "_meta": {"k": "v"}, "isError": True},
    {"content": [{"type": "text", "text": "x"}], "resultType": "task"},  # an extension's tag: the union decides
    {"resultType": "input_required", "requestState": "s"},
    {"inputRequests": {"q": {"method": "roots/list"}}},  # untagged, yet only the input-required arm fits
    {"requestState": "s", "content": [{"type": "text", "text": "both"}]},
    {"content": "not a list"},
    {"resultType": "complete", "requestState": "s"},  # tagged complete: no content, so neither arm fits
    {},
]


@pytest.mark.parametrize("raw", ANSWERS)
def test_an_answer_is_validated_as_the_sdk_union_validates_it(raw: dict[str, Any]) -> None:
    try:
        expected: Any = _ANSWER.validate_python(raw, by_name=False)
    except ValidationError:
        with pytest.raises(ValidationError):
            _validated(raw)
        return
    got = _validated(raw)
    assert type(got) is type(expected) and got == expected


# -- the client span's trace context ---------------------------------------------------------


@pytest.fixture
def unsampled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracer provider that records nothing (a sampler that keeps no trace, as a sampling Studio does
    for most calls): the lane's client spans are non-recording."""
    import mcp.shared._otel as sdk_otel
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    monkeypatch.setattr(sdk_otel, "_tracer", TracerProvider(sampler=ALWAYS_OFF).get_tracer("test"))


@pytest.mark.parametrize("mode", MODES)
async def test_an_unrecorded_span_of_no_callers_trace_is_not_propagated(
    http_toolbox: str, mode: str, unsampled: None
) -> None:
    async with McpWorkbench.http(http_toolbox, name="web", mode=mode) as wb:
        assert (await wb.call_tool("traceparent", {})).text == "<none>"
        assert wb._lane is not None and wb._lane.calls == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_callers_trace_is_continued_through_an_unrecorded_span(
    http_toolbox: str, mode: str, unsampled: None
) -> None:
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_PARENT}-00"}
    async with McpWorkbench.http(http_toolbox, name="web", mode=mode) as wb:
        seen = (await wb.call_tool("traceparent", {}, CallContext(trace_context=caller))).text
        assert wb._lane is not None and wb._lane.calls == 1
    version, trace_id, parent, flags = seen.split("-")
    # The caller's trace, its "not sampled" decision kept, through the client span (as the SDK injects it).
    assert (trace_id, flags) == (CALLER_TRACE, "00") and parent != CALLER_PARENT
