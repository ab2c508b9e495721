"""Agents and teams from `workbench.toml`'s [models], [agents] and [teams].

    agents = build_agents(config, workbench)          # name -> AssistantAgent | CodeExecutorAgent | team
    result = await agents["coder"].run("…")

Agent `tools` are globs over the workbench's tool names (empty: every tool). A
`code_executor` agent uses the workbench's sandbox run tools (`sandbox__run_python`, …).
"""

from __future__ import annotations

from pathlib import Path

from workbench.agents.assistant import AssistantAgent
from workbench.agents.base import Runner
from workbench.agents.cache import CachedChatClient
from workbench.agents.code_executor import CodeExecutorAgent
from workbench.agents.config import AgentsSections, ModelConfig, TeamConfig
from workbench.agents.models import ChatClient, OpenAIChatClient
from workbench.agents.teams import RoundRobinGroupChat, SelectorGroupChat
from workbench.agents.termination import MaxMessages, Termination, TextMention, Timeout, TokenBudget
from workbench.core import ConfigError, Workbench


def build_model(cfg: ModelConfig, base_dir: Path | None = None) -> ChatClient:
    client: ChatClient = OpenAIChatClient(
        cfg.model, base_url=cfg.base_url, api_key=cfg.api_key, api_key_env=cfg.api_key_env,
        temperature=cfg.temperature, max_tokens=cfg.max_tokens, timeout=cfg.timeout, max_retries=cfg.max_retries,
    )
    if cfg.cache:
        path = Path(cfg.cache)
        client = CachedChatClient(client, path if path.is_absolute() or base_dir is None else base_dir / path)
    return client


def build_termination(name: str, cfg: TeamConfig) -> Termination:
    conditions: list[Termination] = []
    if cfg.max_messages is not None:
        conditions.append(MaxMessages(cfg.max_messages))
    if cfg.text_mention:
        conditions.append(TextMention(cfg.text_mention))
    if cfg.timeout is not None:
        conditions.append(Timeout(cfg.timeout))
    if cfg.max_tokens is not None:
        conditions.append(TokenBudget(cfg.max_tokens))
    if not conditions:
        raise ConfigError(
            f"teams.{name}: set max_messages, text_mention, timeout or max_tokens, or the team never stops"
        )
    termination = conditions[0]
    for condition in conditions[1:]:
        termination = termination | condition
    return termination


def build_agents(config: AgentsSections, workbench: Workbench) -> dict[str, Runner]:
    """Every agent and team of `config`, by name, using `workbench`'s tools."""
    models = {name: build_model(cfg, config.base_dir) for name, cfg in config.models.items()}

    def model_for(where: str, key: str | None) -> ChatClient:
        if key is None:
            if len(models) != 1:
                raise ConfigError(f"{where}.model: name one of the [models] ({', '.join(models) or 'none defined'})")
            return next(iter(models.values()))
        return models[key]  # the config validator already checked the key exists

    built: dict[str, Runner] = {}
    for name, a in config.agents.items():
        where = f"agents.{name}"
        try:
            if a.kind == "code_executor":
                built[name] = CodeExecutorAgent(name, workbench, description=a.description, tools=a.tools or None)
            else:
                built[name] = AssistantAgent(name, model_for(where, a.model), workbench, description=a.description,
                                             system_message=a.system_message, tools=a.tools or None,
                                             max_tool_iterations=a.max_tool_iterations,
                                             reflect_on_tool_use=a.reflect_on_tool_use, tool_timeout=a.tool_timeout,
                                             max_context_messages=a.max_context_messages,
                                             model_client_stream=a.stream)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None

    building: list[str] = []

    def team(name: str) -> Runner:
        if name in built:
            return built[name]
        if name in building:
            raise ConfigError(f"teams.{name}: teams contain each other ({' -> '.join(building + [name])})")
        building.append(name)
        cfg = config.teams[name]
        members = [team(m) if m in config.teams else built[m] for m in cfg.members]
        termination = build_termination(name, cfg)
        try:
            if cfg.kind == "selector":
                built[name] = SelectorGroupChat(members, model_for(f"teams.{name}", cfg.model), termination=termination,
                                                name=name, description=cfg.description)
            else:
                built[name] = RoundRobinGroupChat(
                    members, termination=termination, name=name, description=cfg.description
                )
        except ValueError as e:
            raise ConfigError(f"teams.{name}: {e}") from None
        building.pop()
        return built[name]

    for name in config.teams:
        team(name)
    return built
