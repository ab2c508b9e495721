"""The `workbench` command: tools, call, doctor, login, logout, serve, run, sandbox.

Exit codes: 0 success, 1 the tool (or a doctor check) reported an error, 2 usage or
config error. Errors are one line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from workbench.cli.config import Config, ConfigError, ServerConfig, load_config
from workbench.core import ToolNotFoundError, ToolResult, Workbench, WorkbenchError, first_error

T = TypeVar("T")

app = typer.Typer(
    name="workbench",
    help="Wire AI agents to tools: MCP servers in, Docker sandboxes, agents served back out over MCP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_debug = False

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c",
        help="workbench.toml or an mcpServers JSON file (default: $WORKBENCH_CONFIG, else ./workbench.toml)",
    ),
]


class UsageError(WorkbenchError):
    """Bad command-line input (exit 2)."""


def _fail(message: str, code: int) -> NoReturn:
    # Messages quote config ([models.x]) and output ([exit code 1]): rich must not read them as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    raise typer.Exit(code)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it builds (not on Windows), else asyncio's own. The gateway's hop is
    mostly event-loop and socket work, which uvloop does in C: 4-6% less CPU per proxied call
    (bench/bench_serve.py; an A/B of two gateways in front of one upstream)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main`, turning expected errors into one-line messages and exit codes."""
    try:
        return anyio.run(main, backend_options={"loop_factory": _loop_factory()})
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BaseException as e:  # noqa: BLE001 — the CLI boundary: nothing escapes as a traceback
        leaf = first_error(e)
        if isinstance(leaf, typer.Exit):
            raise leaf from None
        if _debug:
            raise
        if isinstance(leaf, (ConfigError, UsageError, ToolNotFoundError)):
            _fail(str(leaf), 2)
        if isinstance(leaf, WorkbenchError):
            _fail(str(leaf), 1)
        _fail(f"{type(leaf).__name__}: {leaf} (run with --debug for the traceback)", 1)


def _config_path(config: Path | None) -> Path:
    if config is not None:
        return config
    if env := os.environ.get("WORKBENCH_CONFIG"):
        return Path(env)
    return Path("workbench.toml")


def _load(config: Path | None, *, one_shot: bool = False) -> Config:
    """The config; `one_shot` commands (tools, call, run) exit after one use, so they warm no
    sandbox pool: its containers would only be started to be removed again."""
    try:
        cfg = load_config(_config_path(config))
        if one_shot:
            cfg = cfg.model_copy(update={"sandbox": cfg.sandbox.model_copy(update={"pool_size": 0})})
        return cfg
    except ConfigError as e:
        # A path taken from a forgotten $WORKBENCH_CONFIG would be a mystery: say where it came from.
        from_env = config is None and os.environ.get("WORKBENCH_CONFIG")
        origin = " — the path comes from $WORKBENCH_CONFIG" if from_env else ""
        _fail(f"{e}{origin}", 2)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    global _debug
    _debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # a dead source is reported once, by _report_down_sources, not by every retry's log line
        logging.getLogger("workbench.sources").setLevel(logging.ERROR)


def _report_down_sources(workbench: Workbench) -> None:
    for name, h in workbench.health_by_source().items():
        if h.state != "up":
            err.print(f"[yellow]warning:[/] source {name} is {h.state}: {escape(h.detail or '')} "
                      "(`workbench doctor` checks it)", highlight=False)


async def _warn_unmatched_tools(config: Config, workbench: Workbench) -> None:
    """An agent whose `tools` globs match nothing would be offered no tools, in silence: say so at start."""
    from workbench.cli.doctor import unmatched_tool_globs

    if not any(agent.tools for agent in config.agents.values()):
        return
    names = [spec.name for spec in await workbench.list_tools()]
    for line in unmatched_tool_globs(config, names):
        err.print(f"[yellow]warning:[/] {escape(line)} (`workbench doctor` checks it)", highlight=False)


def _summary(description: str | None) -> str:
    """A description's first paragraph on one line: sources hard-wrap theirs mid-sentence."""
    return " ".join((description or "").strip().split("\n\n")[0].split())


@app.command()
def tools(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the MCP tool specs as JSON.")] = False,
) -> None:
    """List every tool from every configured source."""
    from workbench.cli.assembly import build_workbench

    cfg = _load(config, one_shot=True)

    async def main() -> None:
        async with build_workbench(cfg) as wb:
            specs = await wb.list_tools()
            _report_down_sources(wb)
            await _warn_unmatched_tools(cfg, wb)
        if as_json:
            out.print_json(data=[s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in specs])
            return
        from rich.table import Table

        table = Table("tool", "description", box=None, pad_edge=False)
        for spec in specs:
            table.add_row(escape(spec.name), escape(_summary(spec.description)))
        out.print(table)
        err.print(f"{len(specs)} tool{'' if len(specs) == 1 else 's'}", style="dim")

    run_async(main)


def _parse_arguments(raw: str | None) -> dict[str, Any]:
    if raw is None or raw.strip() == "":
        return {}
    if raw == "-":
        raw = sys.stdin.read()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        example = '{"message": "hi"}'
        raise UsageError(f"arguments are not valid JSON: {e.msg} at column {e.colno} (example: '{example}')") from None
    if not isinstance(value, dict):
        raise UsageError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value


def print_result(result: ToolResult, *, as_json: bool) -> None:
    if as_json:
        out.print_json(data=result.to_mcp().model_dump(mode="json", by_alias=True, exclude_none=True))
        return
    import mcp.types as mt

    for block in result.content:
        if isinstance(block, mt.TextContent):
            out.print(block.text, markup=False, highlight=False)
        elif isinstance(block, (mt.ImageContent, mt.AudioContent)):
            out.print(f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes]", markup=False)
        elif isinstance(block, mt.ResourceLink):
            out.print(f"[resource link {block.uri}{' — ' + block.name if block.name else ''}]", markup=False)
        elif isinstance(block, mt.EmbeddedResource):
            res = block.resource
            body = getattr(res, "text", None)
            out.print(f"[resource {res.uri}]" + (f"\n{body}" if body else ""), markup=False)
    if not result.content and result.structured is not None:
        out.print_json(data=result.structured)


@app.command()
def call(
    tool: Annotated[str, typer.Argument(help="Tool name as `workbench tools` shows it.")],
    arguments: Annotated[str | None, typer.Argument(help="Arguments as a JSON object ('-' reads stdin).")] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole MCP result as JSON.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the call is cancelled.")] = None,
) -> None:
    """Call one tool and print its result (exit 1 when the tool reports an error)."""
    from workbench.cli.assembly import build_workbench
    from workbench.core import CallContext

    if timeout is not None and timeout <= 0:
        _fail(f"--timeout must be a positive number of seconds, not {timeout:g}", 2)
    cfg = _load(config, one_shot=True)

    async def progress(done: float, total: float | None, message: str | None) -> None:
        of_total = "/" + format(total, "g") if total else ""
        err.print(f"[dim]progress {done:g}{of_total} {escape(message or '')}[/]", highlight=False)

    async def main() -> ToolResult:
        args = _parse_arguments(arguments)
        async with build_workbench(cfg) as wb:
            ctx = CallContext(session_id="cli", progress=progress).with_timeout(timeout)
            with anyio.move_on_after(timeout) if timeout else contextlib.nullcontext():
                return await wb.call_tool(tool, args, ctx)
            return ToolResult.error(f"{tool} did not finish within {timeout:g} s and was cancelled")

    try:
        result = run_async(main)
    except typer.Exit:
        raise
    print_result(result, as_json=as_json)
    raise typer.Exit(1 if result.is_error else 0)


@app.command()
def doctor(config: ConfigOption = None) -> None:
    """Check Docker, the sandbox image, the npm peers, every configured server and model."""
    from workbench.cli.doctor import run_doctor

    cfg = _load(config) if (config is not None or _config_path(None).exists()) else None
    ok = run_async(lambda: run_doctor(cfg, out))
    raise typer.Exit(0 if ok else 1)


def _oauth_server(cfg: Config, name: str) -> ServerConfig:
    """`[servers.NAME]`, which must have an `oauth` section (exit 2 otherwise)."""
    server = cfg.servers.get(name)
    if server is None:
        _fail(f"no server {name!r} in the config (have: {', '.join(cfg.servers) or 'none'})", 2)
    if server.oauth is None:
        _fail(f"servers.{name} has no [servers.{name}.oauth] section: it needs no login", 2)
    return server


@app.command()
def login(
    server: Annotated[str, typer.Argument(help="The [servers.NAME] to log in to.")],
    config: ConfigOption = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the URL to open.")] = False,
) -> None:
    """Log in to an OAuth-protected MCP server: opens the browser, then stores the tokens (mode 0600)."""
    from adapters.oauth_login import login as run_login
    from adapters.oauth_login import open_in_browser

    cfg = _load(config)
    entry = _oauth_server(cfg, server)

    def print_url(url: str) -> None:
        print(f"Open this URL to log in:\n\n  {url}\n", flush=True)

    outcome = run_async(lambda: run_login(server, entry, base_dir=cfg.base_dir,
                                          open_browser=print_url if no_browser else open_in_browser))
    out.print(f"logged in to {escape(server)} ({outcome.tools} tools); tokens saved in "
              f"{escape(str(outcome.token_file))}", highlight=False)


@app.command()
def logout(
    server: Annotated[str, typer.Argument(help="The [servers.NAME] to log out of.")],
    config: ConfigOption = None,
) -> None:
    """Delete the stored OAuth tokens of a server (the next use needs `workbench login` again)."""
    from adapters.oauth_login import logout as run_logout

    cfg = _load(config)
    removed = run_logout(server, _oauth_server(cfg, server), base_dir=cfg.base_dir)
    message = f"deleted {removed}" if removed else "no tokens were stored"
    out.print(f"logged out of {escape(server)}: {escape(message)}", highlight=False)


@app.command()
def serve(
    config: ConfigOption = None,
    transport: Annotated[str | None, typer.Option(help="stdio (for IDEs) or http (streamable HTTP).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (http).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (http).")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open Studio (/ui) in a browser (http).")] = False,
) -> None:
    """Serve every configured tool, agent and team over MCP (stdio or streamable HTTP, with Studio at /ui)."""
    from servers import ServeSettings, serve_workbench
    from servers.settings import ServeError
    from workbench.cli.assembly import build_workbench

    cfg = _load(config)
    if transport is not None and transport not in ("stdio", "http"):
        _fail(f"--transport must be stdio or http, not {transport!r}", 2)
    overrides = {k: v for k, v in {"transport": transport, "host": host, "port": port}.items() if v is not None}
    try:  # a refused setting is a config error, found before any source or sandbox starts
        settings = ServeSettings.from_config(cfg.serve.model_copy(update=overrides))
        settings.check()
    except ServeError as e:
        _fail(str(e), 2)

    # A server logs JSON lines on stderr from the first line on (stdout may carry MCP itself).
    from servers.logs import configure_json_logging

    logging.getLogger().handlers.clear()
    configure_json_logging(logging.DEBUG if _debug else logging.INFO)
    logging.getLogger("workbench.sources").setLevel(logging.NOTSET)  # a server's log keeps every source event

    from workbench.cli.studio import open_when_listening, studio_factory

    runners: dict[str, Any] = {}  # filled by build_workbench, before Studio is built
    studio = studio_factory(cfg, _config_path(config), runners) if settings.transport == "http" else None

    async def main() -> None:
        # Served, the upstreams' sampling/elicitation requests go to the connected MCP client.
        async with build_workbench(cfg, relay_client_requests=True, runners=runners) as wb, \
                anyio.create_task_group() as tg:
            _report_down_sources(wb)
            await _warn_unmatched_tools(cfg, wb)
            if open_browser and studio is not None:
                tg.start_soon(open_when_listening, settings.host, settings.port)
            await serve_workbench(wb, settings, studio=studio)
            tg.cancel_scope.cancel()

    run_async(main)


@app.command()
def studio(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open Studio in a browser.")] = True,
) -> None:
    """Serve over streamable HTTP and open Studio, the web console at /ui."""
    serve(config=config, transport="http", host=host, port=port, open_browser=open_browser)


@app.command()
def run(
    agent: Annotated[str, typer.Argument(help="Agent or team name from the config.")],
    task: Annotated[str, typer.Argument(help="The task to give it.")],
    config: ConfigOption = None,
) -> None:
    """Run an agent or team on a task, streaming its messages and tool calls."""
    from workbench.cli.assembly import build_sources, unusable_agents

    cfg = _load(config, one_shot=True)
    # Without a model the agent would fail at its first turn, after the sources started: say what to set now.
    if (lacking := unusable_agents(cfg).get(agent)) is not None:
        _fail(f"{agent} needs a model: export {cfg.models[lacking].api_key_env}=…, or set base_url under "
              f"[models.{lacking}] to an OpenAI-compatible server (Ollama, vLLM, llama.cpp)", 2)

    async def main() -> None:
        from workbench.agents import build_agents, run_in_console

        async with build_sources(cfg) as wb:
            await wb.list_tools()  # finds the sources that are down, to say so before the agent trips on them
            _report_down_sources(wb)
            await _warn_unmatched_tools(cfg, wb)
            runners = build_agents(cfg, wb)
            if agent not in runners:
                raise UsageError(f"no agent or team {agent!r} in the config (have: {', '.join(runners) or 'none'})")
            await run_in_console(runners[agent], task, out)

    run_async(main)


def _mount_sandbox_cli() -> None:
    try:
        from sandbox.cli import app as sandbox_app
    except ImportError:  # the sandbox package is optional at import time (no docker SDK, …)
        return
    app.add_typer(sandbox_app, name="sandbox", help="Build the sandbox image, run code, list or prune containers.")


_mount_sandbox_cli()


def main() -> None:
    app()


