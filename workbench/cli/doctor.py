"""`workbench doctor`: is everything this config needs there, and if not, what to do."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import shutil
import sys
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workbench.cli.config import Config
from workbench.core import first_error

if TYPE_CHECKING:
    from docker import DockerClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = True
    """A failed check that is not required is a warning: the workbench runs without it."""


def _check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    try:
        mcp_version = importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        return Check("python", False, f"Python {version}, mcp not installed", "run scripts/setup.sh")
    return Check("python", sys.version_info >= (3, 11), f"Python {version}, mcp {mcp_version}")


def _check_caps(client: DockerClient, config: Config | None) -> Check:
    """The global sandbox caps this config resolves to on this engine, and how many of the project's
    sandbox containers run there now (any process's: they all share the engine's memory)."""
    from sandbox.capacity import Caps
    from sandbox.container import project_containers
    from sandbox.errors import SandboxError
    from sandbox.settings import SandboxConfig, SandboxSettings

    box = config.sandbox if config else SandboxConfig()  # no config file: the defaults
    serve = config.serve if config else Config.model_validate({}).serve
    settings = SandboxSettings.from_config(box, max_per_identity=serve.max_sandboxes_per_identity)
    try:
        caps = Caps.resolve(settings, int(client.info()["MemTotal"]))
    except SandboxError as e:
        return Check("sandbox caps", False, str(e), "raise [sandbox] memory_budget or lower [sandbox] memory")
    live = sum(1 for c in project_containers(client) if c.get("State") == "running")
    return Check("sandbox caps", True, f"{caps.describe()}; {live} live now")


def _check_docker(image: str, config: Config | None = None) -> list[Check]:
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError:
        return [Check("docker", False, "the docker Python package is missing", "run scripts/setup.sh")]
    try:
        client = docker.from_env(timeout=5)
        info = client.version()
    except DockerException as e:
        reason = str(e).split("(")[0].strip() or type(e).__name__
        hint = "start it: sudo bash scripts/ensure_docker.sh"
        return [Check("docker engine", False, f"not reachable: {reason}", hint)]
    checks = [Check("docker engine", True, f"Docker {info.get('Version', '?')}")]
    try:
        img = client.images.get(image)
        size = img.attrs.get("Size", 0) / 1e6
        checks.append(Check("sandbox image", True, f"{image} ({size:.0f} MB)"))
    except ImageNotFound:
        checks.append(Check("sandbox image", False, f"{image} is missing", "build it: workbench sandbox build"))
    except DockerException as e:
        checks.append(Check("sandbox image", False, str(e)))
    try:
        if config is None or config.sandbox.enabled:  # no caps to show for a config without a sandbox
            checks.append(_check_caps(client, config))
    except DockerException as e:
        checks.append(Check("sandbox caps", False, f"the engine did not answer: {e}"))
    finally:
        client.close()
    return checks


def _check_node() -> Check:
    node = shutil.which("node")
    peers = PROJECT_ROOT / "node_modules" / "@modelcontextprotocol"
    if node is None:
        return Check("node peers", False, "node is not installed", "apt-get install nodejs npm, then scripts/setup.sh")
    have = sorted(p.name for p in peers.iterdir()) if peers.is_dir() else []
    if not have:
        return Check("node peers", False, "npm peers not installed", "run scripts/setup.sh (npm install)")
    return Check("node peers", True, ", ".join(have))


async def _check_server(name: str, config: Config) -> Check:
    from adapters.mcp import McpWorkbench

    server = config.servers[name]
    started = time.perf_counter()
    wb = McpWorkbench.from_config(name, server, base_dir=config.base_dir)
    try:
        with anyio.fail_after(20):
            async with wb:
                tools = await wb.list_tools()
        ms = (time.perf_counter() - started) * 1000
        return Check(f"server {name}", True, f"{len(tools)} tool{'' if len(tools) == 1 else 's'}, ready in {ms:.0f} ms")
    except TimeoutError:
        return Check(f"server {name}", False, "no answer within 20 s", "check the command/URL; run it by hand")
    except Exception as e:  # a report, not a crash (cancellation still propagates)
        error = first_error(e)
        health = wb.health()
        detail = health.detail or f"{type(error).__name__}: {error}"
        hint = "check the command/URL; `workbench doctor --debug` shows more"
        if f"workbench login {name}" in detail:
            hint = f"run `workbench login {name}`"
        return Check(f"server {name}", False, detail, hint)


async def _check_login(name: str, config: Config) -> Check:
    """Whether a person must log in before this server can be used (no tokens, or expired ones
    that cannot be refreshed); says the command that does it."""
    from adapters.oauth import storage_for
    from adapters.token_store import TokenFileError

    server = config.servers[name]
    assert server.oauth is not None and server.url is not None
    login = f"run `workbench login {name}`"
    storage = storage_for(name, server.url, server.oauth, config.base_dir)
    try:
        status = await storage.status()
    except TokenFileError as e:
        return Check(f"login {name}", False, str(e), login)
    if status == "missing":
        return Check(f"login {name}", False, "needs a login: no tokens stored", login)
    if status == "expired":
        return Check(f"login {name}", False, "needs a login: the token expired and cannot be refreshed", login)
    detail = "logged in" if status == "valid" else "logged in; the expired token is refreshed on first use"
    return Check(f"login {name}", True, f"{detail} (tokens in {storage.path})")


async def _check_model(name: str, config: Config) -> Check:
    import os

    import openai

    model = config.models[name]
    key = model.api_key or os.environ.get(model.api_key_env)
    if not model.usable():
        # Not a failure: `serve` and `tools` run without it, only the agents that need it are off.
        return Check(f"model {name}", False, f"{model.api_key_env} is not set; the agents that use it are off",
                     f"export {model.api_key_env}=… or set base_url", required=False)
    client = openai.AsyncOpenAI(base_url=model.base_url, api_key=key or "not-needed", timeout=5, max_retries=0)
    try:
        await client.models.retrieve(model.model)
        return Check(f"model {name}", True, f"{model.model} at {model.base_url or 'api.openai.com'}")
    except openai.NotFoundError:
        return Check(f"model {name}", False, f"the server does not know model {model.model!r}")
    except openai.AuthenticationError:
        return Check(f"model {name}", False, "the API key was refused", f"check {model.api_key_env}")
    except openai.APIError as e:
        return Check(f"model {name}", False, f"{type(e).__name__}: {e}")
    finally:
        await client.close()


def unmatched_tool_globs(config: Config, tool_names: Iterable[str]) -> list[str]:
    """One sentence per agent `tools` glob that matches none of `tool_names`, naming the sources
    the config has: such an agent is offered fewer tools than its author meant (or none) in silence."""
    from workbench.cli.assembly import unusable_agents

    names = list(tool_names)
    off = unusable_agents(config)
    sources = [name for name, server in config.servers.items() if server.enabled]
    sources += ["sandbox"] if config.sandbox.enabled else []
    have = ", ".join(sources) or "none"
    return [
        f"agents.{agent}.tools: {glob!r} matches no tool of the configured sources ({have})"
        for agent, cfg in config.agents.items()
        if agent not in off
        for glob in cfg.tools
        if not any(fnmatch.fnmatchcase(name, glob) for name in names)
    ]


async def _check_agent_tools(config: Config) -> Check:
    from workbench.cli.assembly import build_sources

    one_shot = config.model_copy(update={"sandbox": config.sandbox.model_copy(update={"pool_size": 0})})
    try:
        with anyio.fail_after(30):
            async with build_sources(one_shot) as sources:
                names = [spec.name for spec in await sources.list_tools()]
    except Exception as e:  # a report, not a crash; the server checks say which source failed
        return Check("agent tools", False, f"cannot list the tools: {type(first_error(e)).__name__}")
    unmatched = unmatched_tool_globs(config, names)
    if unmatched:
        return Check("agent tools", False, "; ".join(unmatched), "fix the glob, or configure the source it names")
    return Check("agent tools", True, "every agent's tools glob matches a tool")


async def _check_serve_auth(config: Config) -> Check:
    """Who `workbench serve` over HTTP would let in, and whether `[serve.oauth]`'s issuer hands out its keys."""
    import httpx2

    from servers.oauth_resource import Jwks

    serve = config.serve
    named = ", ".join(serve.tokens) or "none"
    oauth = serve.oauth
    if oauth is None:
        return Check("serve auth", True, f"named tokens: {named}; no [serve.oauth]", required=False)
    try:
        with anyio.fail_after(oauth.http_timeout * 3):
            async with httpx2.AsyncClient(timeout=oauth.http_timeout, follow_redirects=False) as http:
                keys = await Jwks(oauth, http).fetch()
    except Exception as e:  # a report, not a crash
        return Check("serve auth", False, f"issuer {oauth.issuer}: cannot fetch its keys ({type(e).__name__}: {e})",
                     "check serve.oauth.issuer (or set serve.oauth.jwks_uri); the issuer must be reachable from here")
    return Check("serve auth", True, f"issuer {oauth.issuer}: {len(keys.keys)} signing key(s); audience "
                 f"{oauth.resource}; named tokens: {named}")


async def doctor_checks(config: Config | None) -> list[Check]:
    """Every check `workbench doctor` runs (Studio's Health page shows them live)."""
    checks = [_check_python()]
    from sandbox.settings import DEFAULT_IMAGE

    image = config.sandbox.image if config else DEFAULT_IMAGE
    checks += await anyio.to_thread.run_sync(_check_docker, image, config)
    checks.append(_check_node())
    if config is not None:
        results: dict[str, Check] = {}

        async def one(key: str, check: Awaitable[Check]) -> None:
            results[key] = await check

        async with anyio.create_task_group() as tg:
            for name, server in config.servers.items():
                if server.enabled:
                    tg.start_soon(one, f"s:{name}", _check_server(name, config))
                if server.enabled and server.oauth is not None and server.oauth.grant == "authorization_code":
                    tg.start_soon(one, f"l:{name}", _check_login(name, config))
            for name in config.models:
                tg.start_soon(one, f"m:{name}", _check_model(name, config))
            if config.serve.transport == "http" and (config.serve.oauth or config.serve.tokens):
                tg.start_soon(one, "a:serve", _check_serve_auth(config))
            if any(agent.tools for agent in config.agents.values()):
                tg.start_soon(one, "t:agents", _check_agent_tools(config))
        checks += [results[k] for k in sorted(results)]
    return checks


async def run_doctor(config: Config | None, console: Console) -> bool:
    checks = await doctor_checks(config)
    table = Table("", "check", "detail", "what to do", box=None, pad_edge=False)
    for c in checks:
        mark = "[green]✓[/]" if c.ok else "[red]✗[/]" if c.required else "[yellow]![/]"
        table.add_row(mark, escape(c.name), escape(c.detail), escape(c.hint))  # details quote errors: not markup
    console.print(table)
    return all(c.ok or not c.required for c in checks)
