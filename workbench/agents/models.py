"""Chat model clients for the OpenAI-compatible Chat Completions API.

`OpenAIChatClient` speaks to OpenAI, Azure, Ollama, vLLM and llama.cpp alike through the
official `openai` package: tools, parallel tool calls, streaming, usage, timeouts, and
retries with exponential backoff on 429/5xx. Failures become `ModelError` subclasses whose
messages say what to do (a bad key, an unknown model, an unreachable server).
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import openai

from workbench.agents import telemetry
from workbench.agents.messages import ModelResponse, ToolCall, Usage
from workbench.core import WorkbenchError


class ModelError(WorkbenchError):
    """A model call failed; the message says why and what to do."""


class ModelAuthError(ModelError):
    """The server rejected the API key (HTTP 401/403)."""


class ModelNotFoundError(ModelError):
    """The server does not know the model (HTTP 404)."""


class ModelRateLimitError(ModelError):
    """Still rate limited (HTTP 429) after every retry."""


class ModelUnavailableError(ModelError):
    """Server errors (5xx), timeouts or connection failures outlasted every retry."""


class ChatClient:
    """What agents need from a model. `messages` and `tools` are in Chat Completions form."""

    model: str = "model"

    async def create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                     tool_choice: str | None = None) -> ModelResponse:
        raise NotImplementedError

    async def create_stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                            tool_choice: str | None = None) -> AsyncGenerator[str | ModelResponse, None]:
        """Text deltas as they arrive, then the complete `ModelResponse`. By default: no deltas."""
        yield await self.create(messages, tools, tool_choice=tool_choice)


def _usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    return Usage(input_tokens=u.prompt_tokens or 0, output_tokens=u.completion_tokens or 0)


class OpenAIChatClient(ChatClient):
    """`OpenAIChatClient("gpt-4o-mini")`, or `base_url="http://localhost:11434/v1"` for Ollama.

    The key comes from `api_key`, else the `api_key_env` variable; a local server
    (`base_url` set) works without one.
    """

    RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", temperature: float | None = None, max_tokens: int | None = None,
                 timeout: float = 60.0, max_retries: int = 3, retry_backoff: float = 0.5,
                 parallel_tool_calls: bool | None = None, extra_body: dict[str, Any] | None = None,
                 default_headers: dict[str, str] | None = None) -> None:
        self.model = model
        self.base_url = base_url = base_url or None  # "" (an unset ${VAR:-}) means the default endpoint
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.parallel_tool_calls = parallel_tool_calls
        self.extra_body = extra_body
        key = api_key or os.environ.get(api_key_env)
        self._missing_key = key is None and base_url is None
        self._key_source = "api_key" if api_key else f"${api_key_env}"
        # Retries are ours (one backoff policy, visible in spans); the SDK's are off.
        self._client = openai.AsyncOpenAI(api_key=key or "not-needed", base_url=base_url, timeout=timeout,
                                          max_retries=0, default_headers=default_headers)

    def request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                tool_choice: str | None) -> dict[str, Any]:
        """The full request body; the cache keys on it."""
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
            if self.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = self.parallel_tool_calls
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.extra_body:
            body["extra_body"] = self.extra_body
        return body

    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    def _translate(self, e: Exception) -> ModelError:
        if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return ModelAuthError(f"{self._where()} rejected the API key from {self._key_source} "
                                  f"(HTTP {e.status_code}): set a valid key in {self._key_source}")
        if isinstance(e, openai.NotFoundError):
            return ModelNotFoundError(f"model {self.model!r} was not found at {self._where()} (HTTP 404): "
                                      f"check the model name and base_url")
        if isinstance(e, openai.RateLimitError):
            return ModelRateLimitError(f"{self._where()} is rate limiting (HTTP 429) after {self.max_retries} retries; "
                                       f"wait, or lower the request rate")
        if isinstance(e, openai.APITimeoutError):
            return ModelUnavailableError(f"{self._where()} did not answer within {self.timeout} s "
                                         f"(after {self.max_retries} retries); raise the model's timeout")
        if isinstance(e, openai.APIConnectionError):
            return ModelUnavailableError(f"cannot reach {self._where()}: {e} (after {self.max_retries} retries); "
                                         f"is the server running and base_url right?")
        if isinstance(e, openai.APIStatusError):
            detail = getattr(e, "message", str(e))
            return ModelError(f"{self._where()} answered HTTP {e.status_code} for model {self.model!r}: {detail}")
        return ModelError(f"model call failed: {type(e).__name__}: {e}")

    async def _backoff(self, attempt: int, e: Exception) -> None:
        delay = self.retry_backoff * (2**attempt) * (0.5 + random.random() / 2)
        response = getattr(e, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            try:
                delay = min(max(float(retry_after), 0.0), 60.0)
            except ValueError:
                pass
        await anyio.sleep(delay)

    def _check_key(self) -> None:
        if self._missing_key:
            raise ModelAuthError(f"no API key for model {self.model!r}: set {self._key_source} "
                                 "(or give base_url for a local server that needs none)")

    def _span_attributes(self, stream: bool) -> dict[str, Any]:
        return {telemetry.OPERATION: "chat", telemetry.REQUEST_MODEL: self.model, telemetry.PROVIDER: "openai",
                "gen_ai.request.stream": stream}

    @staticmethod
    def _record(s: Any, response: ModelResponse) -> None:
        s.set_attribute(telemetry.INPUT_TOKENS, response.usage.input_tokens)
        s.set_attribute(telemetry.OUTPUT_TOKENS, response.usage.output_tokens)
        if response.model:
            s.set_attribute(telemetry.RESPONSE_MODEL, response.model)
        if response.finish_reason:
            s.set_attribute(telemetry.FINISH_REASONS, [response.finish_reason])

    async def create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                     tool_choice: str | None = None) -> ModelResponse:
        self._check_key()
        body = self.request(messages, tools, tool_choice)
        with telemetry.span(f"chat {self.model}", self._span_attributes(False), kind=telemetry.SpanKind.CLIENT) as s:
            for attempt in range(self.max_retries + 1):
                try:
                    completion = await self._client.chat.completions.create(**body)
                    break
                except self.RETRYABLE as e:
                    if attempt == self.max_retries:
                        raise self._translate(e) from None
                    s.add_event("retry", {"attempt": attempt + 1, "error": type(e).__name__})
                    await self._backoff(attempt, e)
                except openai.OpenAIError as e:
                    raise self._translate(e) from None
            if not completion.choices:
                raise ModelError(f"{self._where()} returned no choices for model {self.model!r}")
            choice = completion.choices[0]
            calls = [ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
                     for c in (choice.message.tool_calls or []) if getattr(c, "function", None) is not None]
            response = ModelResponse(content=choice.message.content, tool_calls=calls, usage=_usage(completion.usage),
                                     finish_reason=choice.finish_reason, model=completion.model)
            self._record(s, response)
            return response

    async def create_stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                            tool_choice: str | None = None) -> AsyncGenerator[str | ModelResponse, None]:
        self._check_key()
        body = self.request(messages, tools, tool_choice) | {"stream": True, "stream_options": {"include_usage": True}}
        s = telemetry.start_span(f"chat {self.model}", self._span_attributes(True), kind=telemetry.SpanKind.CLIENT)
        try:
            for attempt in range(self.max_retries + 1):
                try:
                    stream = await self._client.chat.completions.create(**body)
                    break
                except self.RETRYABLE as e:
                    if attempt == self.max_retries:
                        raise self._translate(e) from None
                    await self._backoff(attempt, e)
                except openai.OpenAIError as e:
                    raise self._translate(e) from None
            text: list[str] = []
            calls: dict[int, dict[str, str]] = {}
            usage, finish, model = Usage(), None, None
            try:
                async for chunk in stream:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        delta = choice.delta
                        if delta.content:
                            text.append(delta.content)
                            yield delta.content
                        for tc in delta.tool_calls or []:
                            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                            slot["id"] = tc.id or slot["id"]
                            if tc.function is not None:
                                slot["name"] += tc.function.name or ""
                                slot["arguments"] += tc.function.arguments or ""
            except openai.OpenAIError as e:
                raise self._translate(e) from None
            finally:
                await stream.close()
            response = ModelResponse(
                content="".join(text) or None,
                tool_calls=[ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
                            for i, c in sorted(calls.items())],
                usage=usage, finish_reason=finish, model=model)
            self._record(s, response)
            yield response
        except Exception as e:
            telemetry.record_error(s, f"{type(e).__name__}: {e}")
            raise
        finally:
            s.end()

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> OpenAIChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
