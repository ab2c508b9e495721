"""Wire a `Config` into one workbench: MCP servers, the sandbox, then agents and teams.

This is the only place the four packages meet (DESIGN.md: the CLI may wire them
together); each import is lazy so a config that does not use a part never loads it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from workbench.cli.config import Config
from workbench.composite import CompositeWorkbench, Mount
from workbench.core import Workbench, logger
from workbench.static import StaticWorkbench


def build_sources(config: Config, *, relay_client_requests: bool = False) -> CompositeWorkbench:
    """Every tool source the config names: MCP servers and the sandbox.

    `relay_client_requests`: upstream servers may send sampling, elicitation and roots
    requests, answered by whoever made the call (a served client, through `CallContext`)."""
    sources = CompositeWorkbench(name="sources")
    enabled = {name: s for name, s in config.servers.items() if s.enabled}
    if enabled:
        from adapters.mcp import McpWorkbench

        for name, server in enabled.items():
            sources.add(
                name,
                Mount(
                    McpWorkbench.from_config(
                        name, server, base_dir=config.base_dir, relay_client_requests=relay_client_requests
                    ),
                    prefix=server.prefix,
                    include=server.include,
                    exclude=server.exclude,
                    rename=server.rename,
                    descriptions=server.descriptions,
                ),
            )
    if config.sandbox.enabled:
        from sandbox import SandboxWorkbench

        box = config.sandbox
        # The per-identity cap lives in [serve] (identities are the server's notion), the rest in [sandbox].
        sandbox = SandboxWorkbench.from_config(box, max_per_identity=config.serve.max_sandboxes_per_identity)
        sources.add("sandbox", Mount(sandbox, prefix=box.prefix, include=box.include, exclude=box.exclude))
    return sources


def unusable_agents(config: Config) -> dict[str, str]:
    """Agents whose model cannot be called (no key, no base URL), and the teams that need
    them, each with the `[models]` key it lacks."""
    off = {
        name: model
        for name, agent in config.agents.items()
        if agent.kind == "assistant" and not config.models[model := agent.model or next(iter(config.models))].usable()
    }
    changed = True
    while changed:  # a team of a dropped team is dropped too
        changed = False
        for name, team in config.teams.items():
            lacking = next((off[m] for m in team.members if m in off), None)
            if name not in off and lacking is not None:
                off[name] = lacking
                changed = True
    return off


def with_usable_agents(config: Config) -> Config:
    """The config without `unusable_agents` — so the bundled example serves its model-free parts anywhere."""
    off = unusable_agents(config)
    for name in sorted(off):
        model = config.models[off[name]]
        logger.warning("agent or team %s is off: model %r has no API key and no base_url; to turn it on, export %s=…, "
                       "or set base_url under [models.%s] to an OpenAI-compatible server (Ollama, vLLM, llama.cpp)",
                       name, off[name], model.api_key_env, off[name])
    agents = {k: v for k, v in config.agents.items() if k not in off}
    teams = {k: v for k, v in config.teams.items() if k not in off}
    return config.model_copy(update={"agents": agents, "teams": teams})


def build_workbench(config: Config, *, relay_client_requests: bool = False,
                    runners: dict[str, Any] | None = None) -> CompositeWorkbench:
    """The whole workbench `workbench serve` exposes: tool sources plus agents and teams as tools.
    `runners`, when given, receives the agents and teams by name (Studio's Playground runs them).

    One flat composite: the agents see the sources through `sources`, a view that is never
    started; the returned composite mounts the same sources (so each starts and stops once,
    and reports its own health) and the agents next to them."""
    sources = build_sources(config, relay_client_requests=relay_client_requests)
    config = with_usable_agents(config)
    if not (config.agents or config.teams):
        return sources
    from workbench.agents import AgentTool, build_agents

    built = build_agents(config, sources)
    if runners is not None:
        runners.update(built)
    agents: Workbench = StaticWorkbench([AgentTool(runner) for runner in built.values()], name="agents")
    # "agents" unless a server took that name (a key of their own, as when they were mounted apart).
    candidates = ("agents", *(f"agents-{i}" for i in range(1, len(sources.mounts) + 2)))
    key = next(k for k in candidates if k not in sources.mounts)
    # Copies of the sources' mounts: the two composites must not share (and mutate) one Mount.
    return CompositeWorkbench({**{k: replace(m) for k, m in sources.mounts.items()}, key: Mount(agents, prefix="")})
