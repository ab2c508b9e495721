"""A model client that plays recorded responses in order: deterministic runs and demos
without a model server. Record with `CachedChatClient` or write the JSON by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.agents.messages import ModelResponse, ToolCall
from workbench.agents.models import ChatClient, ModelError


def _as_response(item: ModelResponse | str | dict[str, Any], index: int) -> ModelResponse:
    if isinstance(item, ModelResponse):
        return item
    if isinstance(item, str):
        return ModelResponse(content=item, finish_reason="stop")
    item = dict(item)
    calls = []
    for n, call in enumerate(item.pop("tool_calls", None) or []):
        args = call.get("arguments", {})
        calls.append(ToolCall(id=call.get("id", f"replay_{index}_{n}"), name=call["name"],
                              arguments=args if isinstance(args, str) else json.dumps(args)))
    finish_reason = "tool_calls" if calls else "stop"
    return ModelResponse.model_validate({"finish_reason": finish_reason, **item, "tool_calls": calls})


class ReplayChatClient(ChatClient):
    """`ReplayChatClient(["hello", {"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}])`.

    Items are `ModelResponse`s, plain strings (a text answer) or dicts shaped like a
    `ModelResponse` whose `tool_calls` may give `arguments` as an object. `requests`
    keeps what each call was asked, for assertions.
    """

    def __init__(self, responses: list[ModelResponse | str | dict[str, Any]], *, model: str = "replay") -> None:
        self.model = model
        self._responses = [_as_response(r, i) for i, r in enumerate(responses)]
        self._next = 0
        self.requests: list[dict[str, Any]] = []

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayChatClient:
        """A JSON list of responses (see the class docstring)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"cannot read replay file {path}: {e}") from None
        if not isinstance(data, list):
            raise ModelError(f"replay file {path}: expected a JSON list of responses")
        return cls(data)

    @property
    def remaining(self) -> int:
        return len(self._responses) - self._next

    async def create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                     tool_choice: str | None = None) -> ModelResponse:
        self.requests.append({"messages": messages, "tools": tools, "tool_choice": tool_choice})
        if self._next >= len(self._responses):
            raise ModelError(f"replay client {self.model!r} has no response left (played {len(self._responses)}); "
                             "record more responses")
        response = self._responses[self._next]
        self._next += 1
        return response
