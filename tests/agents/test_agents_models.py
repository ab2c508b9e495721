"""The OpenAI-compatible client against the scripted server over real HTTP."""

from __future__ import annotations

import json

import pytest
from model_server import ModelServer

from workbench.agents.cache import CachedChatClient
from workbench.agents.messages import ModelResponse
from workbench.agents.models import (
    ModelAuthError,
    ModelError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelUnavailableError,
    OpenAIChatClient,
)
from workbench.agents.replay import ReplayChatClient

pytestmark = pytest.mark.anyio
HELLO = [{"role": "user", "content": "hello"}]
ADD_TOOL = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}


async def test_text_answer_and_usage(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"content": "hi there", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}])
    response = await make_client(model_name, temperature=0.2).create(HELLO)
    assert response.content == "hi there" and response.tool_calls == []
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)
    sent = model_server.requests(model_name)[0]
    assert sent["messages"] == HELLO and sent["temperature"] == 0.2


async def test_parallel_tool_calls_are_all_returned(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"tool_calls": [{"name": "add", "arguments": {"a": 1}}, {"name": "echo", "arguments": "{bad"}]}])
    response = await make_client(model_name).create(HELLO, [ADD_TOOL])
    assert [c.name for c in response.tool_calls] == ["add", "echo"]
    assert json.loads(response.tool_calls[0].arguments) == {"a": 1}
    assert response.tool_calls[1].arguments == "{bad"  # malformed arguments are passed through, not fixed up
    assert model_server.requests(model_name)[0]["tools"] == [ADD_TOOL]


async def test_retries_429_and_500_then_succeeds(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"status": 429, "retry_after": 0}, {"status": 500}, {"content": "ok"}])
    response = await make_client(model_name, max_retries=3).create(HELLO)
    assert response.content == "ok"
    assert len(model_server.requests(model_name)) == 3


async def test_rate_limit_outlasting_retries_is_a_clear_error(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"status": 429, "retry_after": 0}] * 3)
    with pytest.raises(ModelRateLimitError, match="rate limiting"):
        await make_client(model_name, max_retries=2).create(HELLO)
    assert len(model_server.requests(model_name)) == 3


async def test_server_errors_outlasting_retries(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"status": 503}] * 2)
    with pytest.raises(ModelError, match="HTTP 503"):
        await make_client(model_name, max_retries=1).create(HELLO)


async def test_bad_key_is_401_with_advice(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"content": "never"}])
    with pytest.raises(ModelAuthError, match="rejected the API key.*set a valid key"):
        await make_client(model_name, api_key="bad-key").create(HELLO)
    assert model_server.requests(model_name) == []  # no retry on 401


async def test_unknown_model(model_server: ModelServer, make_client) -> None:
    with pytest.raises(ModelNotFoundError, match="'no-such-model' was not found.*check the model name"):
        await make_client("no-such-model").create(HELLO)


async def test_missing_key_without_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelAuthError, match=r"no API key.*\$OPENAI_API_KEY"):
        async with OpenAIChatClient("gpt-4o-mini") as c:
            await c.create(HELLO)


async def test_unreachable_server() -> None:
    async with OpenAIChatClient("m", base_url="http://127.0.0.1:9/v1", max_retries=1, retry_backoff=0.01, timeout=2) as c:
        with pytest.raises(ModelUnavailableError, match="cannot reach"):
            await c.create(HELLO)


async def test_timeout_is_retried_then_reported(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"delay": 2, "content": "late"}, {"content": "on time"}])
    assert (await make_client(model_name, timeout=0.3, max_retries=1).create(HELLO)).content == "on time"


async def test_streaming_text_and_tool_calls(model_server: ModelServer, model_name: str, make_client) -> None:
    model_server.script(model_name, [{"content": "streamed answer"},
                                     {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}},
                                                     {"name": "echo", "arguments": {"message": "x"}}]}])
    c = make_client(model_name)
    items = [i async for i in c.create_stream(HELLO)]
    assert "".join(i for i in items if isinstance(i, str)) == "streamed answer"
    assert len([i for i in items if isinstance(i, str)]) > 1
    final = items[-1]
    assert isinstance(final, ModelResponse) and final.content == "streamed answer" and final.usage.output_tokens > 0
    items = [i async for i in c.create_stream(HELLO, [ADD_TOOL])]
    final = items[-1]
    assert [(t.name, json.loads(t.arguments)) for t in final.tool_calls] == [("add", {"a": 1, "b": 2}), ("echo", {"message": "x"})]
    assert model_server.requests(model_name)[0]["stream"] is True


async def test_cache_keys_on_the_full_request(model_server: ModelServer, model_name: str, tmp_path, make_client) -> None:
    model_server.script(model_name, [{"content": "first"}, {"content": "second"}, {"content": "third"}])
    path = tmp_path / "cache.sqlite"
    cached = CachedChatClient(make_client(model_name), path)
    assert (await cached.create(HELLO)).content == "first"
    assert (await cached.create(HELLO)).content == "first"  # hit: no request
    assert (await cached.create(HELLO, [ADD_TOOL])).content == "second"  # tools are part of the key
    cached.close()
    reopened = CachedChatClient(make_client(model_name), path)  # persisted on disk
    assert (await reopened.create(HELLO)).content == "first"
    streamed = [i async for i in reopened.create_stream(HELLO)]
    assert streamed[0] == "first" and isinstance(streamed[-1], ModelResponse)
    assert len(model_server.requests(model_name)) == 2 and reopened.hits == 2


async def test_replay_plays_in_order_then_says_so(tmp_path) -> None:
    path = tmp_path / "replay.json"
    path.write_text(json.dumps(["hello", {"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}]))
    replay = ReplayChatClient.from_file(path)
    assert (await replay.create(HELLO)).content == "hello"
    call = (await replay.create(HELLO)).tool_calls[0]
    assert call.name == "add" and json.loads(call.arguments) == {"a": 1}
    with pytest.raises(ModelError, match="no response left"):
        await replay.create(HELLO)
