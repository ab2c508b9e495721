"""What agents say to each other and to the caller: plain pydantic models, JSON all the way.

A run streams *events* (`TextMessage`, `ToolCallEvent`, `ToolResultEvent`, `TextChunk`)
and ends with a `TaskResult`. Everything round-trips through `model_dump(mode="json")`,
which is what makes `save_state()` plain JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


class Usage(BaseModel):
    """Tokens spent by model calls (OpenAI `prompt_tokens` / `completion_tokens`)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage | None) -> Usage:
        if other is None:
            return self
        return Usage(input_tokens=self.input_tokens + other.input_tokens,
                     output_tokens=self.output_tokens + other.output_tokens)


class ToolCall(BaseModel):
    """One function call requested by a model. `arguments` is the model's raw JSON text:
    it may be malformed, and the agent tells the model so instead of crashing."""

    id: str
    name: str
    arguments: str = "{}"


class ToolCallResult(BaseModel):
    call_id: str
    name: str
    content: str
    is_error: bool = False


class TextMessage(BaseModel):
    """A chat message: the task, an agent's answer. Teams count these (`MaxMessages`)."""

    type: Literal["text"] = "text"
    source: str
    content: str
    usage: Usage | None = None


class ToolCallEvent(BaseModel):
    """A model asked for one or more tool calls (run concurrently)."""

    type: Literal["tool_calls"] = "tool_calls"
    source: str
    calls: list[ToolCall]
    content: str | None = None
    """Text the model sent alongside its calls, if any."""
    usage: Usage | None = None


class ToolResultEvent(BaseModel):
    type: Literal["tool_results"] = "tool_results"
    source: str
    results: list[ToolCallResult]


class TextChunk(BaseModel):
    """A piece of a streamed model answer (only with `model_client_stream=True`); the full
    text follows as a `TextMessage`."""

    type: Literal["chunk"] = "chunk"
    source: str
    content: str


Event = Annotated[TextMessage | ToolCallEvent | ToolResultEvent | TextChunk, Field(discriminator="type")]
EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


class TaskResult(BaseModel):
    """The end of a run: every message and event in order, why it stopped, tokens spent."""

    type: Literal["result"] = "result"
    messages: list[Event] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)

    @property
    def text(self) -> str:
        """The final answer: the content of the last text message (empty when there is none)."""
        for message in reversed(self.messages):
            if isinstance(message, TextMessage):
                return message.content
        return ""


class ModelResponse(BaseModel):
    """One chat completion, reduced to what agents use."""

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    model: str | None = None

    def to_openai_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation, in Chat Completions form."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


def dump_events(events: list[Any]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in events]


def load_events(data: list[dict[str, Any]]) -> list[Any]:
    return EVENTS.validate_python(data)
