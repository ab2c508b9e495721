"""`[models]`, `[agents]` and `[teams]` of `workbench.toml`: chat models, the agents that use them
and the teams they form. `build_agents` turns them into runners."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """An OpenAI-compatible chat model (OpenAI, Azure, Ollama, vLLM, llama.cpp server)."""

    model: str
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    max_retries: int = 3
    cache: str | None = None
    """Path of a SQLite response cache; None disables caching."""

    @model_validator(mode="after")
    def _empty_is_unset(self) -> ModelConfig:
        # `base_url = "${URL:-}"` must mean "not set", not "the empty URL".
        self.base_url = self.base_url or None
        self.api_key = self.api_key or None
        return self

    def usable(self, environ: Mapping[str, str] | None = None) -> bool:
        """A model can be called when it has a key or a self-hosted base URL (which often needs none)."""
        env = os.environ if environ is None else environ
        return bool(self.api_key or env.get(self.api_key_env) or self.base_url)


class AgentConfig(_Strict):
    kind: Literal["assistant", "code_executor"] = "assistant"
    description: str = ""
    model: str | None = None
    """Key in [models]; required for kind = "assistant"."""
    system_message: str = "You are a helpful assistant."
    tools: list[str] = Field(default_factory=list)
    """Globs over the workbench's exposed tool names."""
    max_tool_iterations: int = 8
    reflect_on_tool_use: bool = False
    tool_timeout: float | None = None
    """Seconds one tool call may take before the model is told it timed out."""
    max_context_messages: int | None = None
    """Send only the latest this-many messages of a long conversation to the model."""
    stream: bool = False
    """Stream the model's text as it is generated (`workbench run` shows it live)."""


class TeamConfig(_Strict):
    kind: Literal["round_robin", "selector"] = "round_robin"
    description: str = ""
    members: list[str]
    model: str | None = None
    """Key in [models] that picks the next speaker (selector teams)."""
    max_messages: int | None = 10
    text_mention: str | None = None
    timeout: float | None = None
    max_tokens: int | None = None


class AgentsSections(Protocol):
    """What `build_agents` reads of a config: its `[models]`, `[agents]`, `[teams]` and the folder
    relative paths (a model's `cache`) resolve against. The application's root config is one."""

    @property
    def models(self) -> dict[str, ModelConfig]: ...
    @property
    def agents(self) -> dict[str, AgentConfig]: ...
    @property
    def teams(self) -> dict[str, TeamConfig]: ...
    @property
    def base_dir(self) -> Path: ...
