"""A response cache around any chat client, on SQLite by default.

The key is a SHA-256 of the full request (model, messages, tools, tool choice and every
sampling parameter), so a cached answer is only replayed for the very same question. A
cache file doubles as a recording: run once against a real model, replay offline after.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from workbench.agents.messages import ModelResponse
from workbench.agents.models import ChatClient


class CachedChatClient(ChatClient):
    """`CachedChatClient(OpenAIChatClient("gpt-4o-mini"), "responses.sqlite")`; `path=None`
    keeps the cache in memory. `hits` and `misses` count lookups."""

    def __init__(self, inner: ChatClient, path: str | Path | None = None) -> None:
        self.inner = inner
        self.model = inner.model
        self.hits = 0
        self.misses = 0
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")

    def key(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, tool_choice: str | None) -> str:
        build = getattr(self.inner, "request", None)
        request = build(messages, tools, tool_choice) if build else {
            "model": self.inner.model, "messages": messages, "tools": tools, "tool_choice": tool_choice}
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def _get(self, key: str) -> ModelResponse | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return ModelResponse.model_validate_json(row[0])

    def _put(self, key: str, response: ModelResponse) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, response.model_dump_json()))

    async def create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                     tool_choice: str | None = None) -> ModelResponse:
        key = self.key(messages, tools, tool_choice)
        cached = self._get(key)
        if cached is not None:
            return cached
        response = await self.inner.create(messages, tools, tool_choice=tool_choice)
        self._put(key, response)
        return response

    async def create_stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                            tool_choice: str | None = None) -> AsyncGenerator[str | ModelResponse, None]:
        key = self.key(messages, tools, tool_choice)
        cached = self._get(key)
        if cached is not None:
            if cached.content:
                yield cached.content
            yield cached
            return
        async for item in self.inner.create_stream(messages, tools, tool_choice=tool_choice):
            if isinstance(item, ModelResponse):
                self._put(key, item)
            yield item

    def close(self) -> None:
        with self._lock:
            self._db.close()
