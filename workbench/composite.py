"""Many workbenches as one: tools namespaced `source__tool`, filtered, renamed, fail-open.

A source that fails to list its tools is left out (its health says why) and tried
again on the next listing; the other sources' tools stay available.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp.types as mt

from workbench.core import (
    CallContext,
    Health,
    PromptNotFoundError,
    ResourceNotFoundError,
    ToolNotFoundError,
    ToolResult,
    ToolSpec,
    Workbench,
    logger,
)
from workbench.naming import disambiguate, qualified_name
from workbench.tasks import BackgroundTasks

source_log = logger.getChild("sources")
"""A source failing to start or list: the CLI quiets it, as it reports each down source once itself."""


@dataclass
class Mount:
    """How one source appears in a composite."""

    workbench: Workbench
    prefix: str | None = None
    """Name prefix (`prefix__tool`): None uses the source's key, "" serves its names unchanged."""
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    """Globs over the source's own tool names."""
    rename: dict[str, str] = field(default_factory=dict)
    """Source tool name → exposed name (used as is, no prefix)."""
    descriptions: dict[str, str] = field(default_factory=dict)
    """Source tool name → description override."""

    def admits(self, tool_name: str) -> bool:
        return any(fnmatch.fnmatchcase(tool_name, g) for g in self.include) and not any(
            fnmatch.fnmatchcase(tool_name, g) for g in self.exclude
        )


@dataclass
class _Route:
    source: str
    original: str


class CompositeWorkbench(Workbench):
    """`CompositeWorkbench({"github": gh, "sandbox": Mount(box, exclude=["reset"]), "mine": Mount(wb, prefix="")})`.

    A source under key `k` is named `k__tool` unless its mount says otherwise. Starting the composite
    starts every source concurrently; one that fails to start is reported in `health`
    and does not stop the others.
    """

    def __init__(self, sources: Mapping[str, Workbench | Mount] | None = None, *, name: str = "workbench") -> None:
        super().__init__()
        self.name = name
        self.mounts: dict[str, Mount] = {}
        self._routes: dict[str, _Route] | None = None
        self._specs: list[ToolSpec] = []
        self._prompt_routes: dict[str, _Route] = {}
        self._start_errors: dict[str, str] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._background: BackgroundTasks | None = None
        self._unlisted: set[str] = set()
        """Sources whose last listing failed: left out of the catalog and probed until they answer."""
        self._probing = False
        self._last_routes: dict[str, _Route] | None = None
        self._gone: dict[str, _Route] = {}
        for key, source in (sources or {}).items():
            self.add(key, source)

    def add(self, key: str, source: Workbench | Mount) -> Mount:
        if key in self.mounts:
            raise ValueError(f"duplicate source name {key!r}")
        mount = source if isinstance(source, Mount) else Mount(source)
        if mount.prefix is None:
            mount.prefix = key
        self.mounts[key] = mount
        self._routes = None
        return mount

    async def start(self) -> None:
        async def start_one(key: str, mount: Mount) -> None:
            try:
                await mount.workbench.start()
            except Exception as e:
                source_log.warning("source %s failed to start: %s", key, e, exc_info=logger.isEnabledFor(logging.DEBUG))
                self._start_errors[key] = f"{type(e).__name__}: {e}"

        self._background = BackgroundTasks()
        await self._background.open()
        async with anyio.create_task_group() as tg:
            for key, mount in self.mounts.items():
                tg.start_soon(start_one, key, mount)
        for mount in self.mounts.values():
            self._unsubscribe.append(mount.workbench.on_tools_changed(self._source_changed))

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._background is not None:
            await self._background.aclose()
            self._background = None
        # Stop in reverse order of mounting; each source owns its connections, so order is free,
        # but errors in one must not leak the others' resources.
        with anyio.CancelScope(shield=True):
            for key, mount in reversed(list(self.mounts.items())):
                try:
                    await mount.workbench.stop()
                except Exception:
                    logger.warning("source %s failed to stop cleanly", key, exc_info=True)

    async def close_session(self, session_id: str) -> None:
        for key, mount in self.mounts.items():
            try:
                await mount.workbench.close_session(session_id)
            except Exception:
                logger.warning("source %s failed to close session %s", key, session_id, exc_info=True)

    async def _source_changed(self) -> None:
        self._routes = None
        await self.notify_tools_changed()

    def health_by_source(self) -> dict[str, Health]:
        out: dict[str, Health] = {}
        for key, mount in self.mounts.items():
            if mount.prefix == "" and isinstance(mount.workbench, CompositeWorkbench):
                # Mounted as is (as `build_workbench` nests the sources): its sources are ours, and a
                # dead one must not hide behind the nested composite's "up".
                out.update(mount.workbench.health_by_source())
            elif key in self._start_errors and mount.workbench.health().state != "up":
                out[key] = Health("down", self._start_errors[key])
            else:
                out[key] = mount.workbench.health()
        return out

    def health(self) -> Health:
        states = self.health_by_source()
        down = [k for k, h in states.items() if h.state != "up"]
        return Health("up") if not down else Health("down" if len(down) == len(states) else "up", f"down: {', '.join(down)}")

    async def _list_source(self, key: str, mount: Mount) -> list[ToolSpec] | None:
        try:
            return await mount.workbench.list_tools()
        except Exception as e:
            source_log.warning("source %s: cannot list tools: %s", key, e)
            return None

    async def _probe_unlisted(self) -> None:
        """Ask the sources that failed to list again, backing off, until all answer; each
        one that comes back changes the catalog, and listeners hear of it."""
        delay = 1.0
        try:
            while self._unlisted:
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)
                for key in list(self._unlisted):
                    if await self._list_source(key, self.mounts[key]) is not None:
                        self._unlisted.discard(key)
                        await self._source_changed()
        finally:
            self._probing = False

    async def _build_routes(self) -> dict[str, _Route]:
        listed: dict[str, list[ToolSpec] | None] = {}

        async def fetch(key: str, mount: Mount) -> None:
            listed[key] = await self._list_source(key, mount)

        async with anyio.create_task_group() as tg:
            for key, mount in self.mounts.items():
                tg.start_soon(fetch, key, mount)

        routes: dict[str, _Route] = {}
        specs: list[ToolSpec] = []
        self._unlisted = {key for key, tools in listed.items() if tools is None}
        # Names of a source that went down are remembered, so a call can say why it fails.
        self._gone.update({n: r for n, r in (self._last_routes or {}).items() if r.source in self._unlisted})
        for key, mount in self.mounts.items():  # mount order decides who keeps a contested name
            for spec in listed.get(key) or []:
                if not mount.admits(spec.name):
                    continue
                exposed = mount.rename.get(spec.name) or qualified_name(mount.prefix, spec.name)
                exposed = disambiguate(exposed, set(routes), f"{key}/{spec.name}")
                routes[exposed] = _Route(key, spec.name)
                update: dict[str, Any] = {"name": exposed}
                if spec.name in mount.descriptions:
                    update["description"] = mount.descriptions[spec.name]
                specs.append(spec.model_copy(update=update))
        self._specs = specs
        # A source that is down is asked again on the next listing, and probed meanwhile.
        self._gone = {n: r for n, r in self._gone.items() if r.source in self._unlisted and n not in routes}
        self._last_routes = routes
        self._routes = None if self._unlisted else routes
        if self._unlisted and self._background is not None and not self._probing:
            self._probing = True
            self._background.start_soon(self._probe_unlisted)
        return routes

    async def list_tools(self) -> list[ToolSpec]:
        if self._routes is None:
            await self._build_routes()
        return list(self._specs)

    async def resolve(self, name: str) -> tuple[Mount, str]:
        """The mount and the source's own tool name behind an exposed name."""
        routes = self._routes if self._routes is not None else await self._build_routes()
        route = routes.get(name)
        if route is None and self._routes is not None:  # stale catalog: a source may have gained it
            routes = await self._build_routes()
            route = routes.get(name)
        if route is None:
            raise ToolNotFoundError(name, list(routes))
        return self.mounts[route.source], route.original

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None) -> ToolResult:
        try:
            mount, original = await self.resolve(name)
        except ToolNotFoundError:
            down = self._down_source(name)
            if down is None:
                raise
            source, health = down
            return ToolResult.error(
                f"tool {name!r} is unavailable: its source {source!r} is down ({health.detail or health.state}); "
                "its tools come back when it does"
            )
        return await mount.workbench.call_tool(original, arguments, ctx)

    def _down_source(self, name: str) -> tuple[str, Health] | None:
        """The down source behind `name`: one that went down remembers its names; one never listed
        is known by its prefix, so the user hears of the dead server, not of an "unknown tool"."""
        if (gone := self._gone.get(name)) is not None:
            return gone.source, self.health_by_source()[gone.source]
        for key in self._unlisted:
            prefix = self.mounts[key].prefix
            if prefix and name.startswith(qualified_name(prefix, "")):
                return key, self.health_by_source()[key]
        for mount in self.mounts.values():  # a composite mounted as is (as `build_workbench` does) knows its own
            if mount.prefix == "" and isinstance(mount.workbench, CompositeWorkbench):
                if (down := mount.workbench._down_source(name)) is not None:
                    return down
        return None

    # Resources keep their URIs (they are already globally unique by scheme); prompts are
    # namespaced like tools.
    async def list_resources(self) -> list[mt.Resource]:
        out: list[mt.Resource] = []
        for key, mount in self.mounts.items():
            try:
                out.extend(await mount.workbench.list_resources())
            except Exception as e:
                logger.warning("source %s: cannot list resources: %s", key, e)
        return out

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        out: list[mt.ResourceTemplate] = []
        for key, mount in self.mounts.items():
            try:
                out.extend(await mount.workbench.list_resource_templates())
            except Exception as e:
                logger.warning("source %s: cannot list resource templates: %s", key, e)
        return out

    async def read_resource(self, uri: str) -> mt.ReadResourceResult:
        for mount in self.mounts.values():
            try:
                return await mount.workbench.read_resource(uri)
            except ResourceNotFoundError:
                continue
        raise ResourceNotFoundError(f"no source has resource {uri!r}")

    async def list_prompts(self) -> list[mt.Prompt]:
        out: list[mt.Prompt] = []
        routes: dict[str, _Route] = {}
        for key, mount in self.mounts.items():
            try:
                prompts = await mount.workbench.list_prompts()
            except Exception as e:
                logger.warning("source %s: cannot list prompts: %s", key, e)
                continue
            for prompt in prompts:
                exposed = disambiguate(qualified_name(mount.prefix, prompt.name), set(routes), f"{key}/{prompt.name}")
                routes[exposed] = _Route(key, prompt.name)
                out.append(prompt.model_copy(update={"name": exposed}))
        self._prompt_routes = routes
        return out

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> mt.GetPromptResult:
        if name not in self._prompt_routes:
            await self.list_prompts()
        route = self._prompt_routes.get(name)
        if route is None:
            raise PromptNotFoundError(f"unknown prompt {name!r}")
        return await self.mounts[route.source].workbench.get_prompt(route.original, arguments)
