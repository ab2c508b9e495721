"""Many workbenches as one: tools namespaced `source__tool`, filtered, renamed, fail-open.

A source that fails to list its tools is left out (its health says why) and tried
again on the next listing; the other sources' tools stay available.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import mcp.types as mt
from mcp.shared.subscriptions import ServerEvent, ToolsListChanged

from workbench.core import (
    CallContext,
    CompletionRef,
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
from workbench.shaped import Globs, Shaped
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

    def shaped(self, key: str) -> Shaped:
        return Shaped(self.workbench, prefix=self.prefix, tools=Globs(tuple(self.include), tuple(self.exclude)),
                      rename=self.rename, descriptions=self.descriptions, origin=key)


@dataclass(frozen=True)
class Route:
    source: str
    """The mount's key."""
    name: str
    """The name in that mount's shaped catalog."""


@dataclass(frozen=True)
class Catalog:
    """The composite's catalog as of its last listing; replaced whole, never edited."""

    routes: Mapping[str, Route] = field(default_factory=dict)
    specs: tuple[ToolSpec, ...] = ()
    unlisted: frozenset[str] = frozenset()
    """Sources whose listing failed: left out, and probed until they answer."""
    gone: Mapping[str, Route] = field(default_factory=dict)
    """Names of sources that went down, so a call can say why it fails."""
    stale: bool = True
    """List again before answering: a source changed, or one was unlisted."""
    prompts: Mapping[str, Route] = field(default_factory=dict)
    resources: Mapping[str, str] = field(default_factory=dict)
    """Exposed resource URI → the mount's key, from the last resource listing."""
    templates: tuple[tuple[str, str], ...] = ()
    """(a template's fixed head, the mount's key), from the last template listing."""


class CompositeWorkbench(Workbench):
    """`CompositeWorkbench({"github": gh, "sandbox": Mount(box, exclude=["reset"]), "mine": Mount(wb, prefix="")})`.

    A source under key `k` is named `k__tool` unless its mount says otherwise; each source is
    shaped by a `Shaped` wrapper, and the composite merges the shaped catalogs. Starting the
    composite starts every source concurrently; one that fails to start is reported in `health`
    and does not stop the others.
    """

    def __init__(self, sources: Mapping[str, Workbench | Mount] | None = None, *, name: str = "workbench") -> None:
        super().__init__()
        self.name = name
        self.mounts: dict[str, Mount] = {}
        self._shaped: dict[str, Shaped] = {}
        self.catalog = Catalog()
        self._start_errors: dict[str, str] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._background: BackgroundTasks | None = None
        self._probing = False
        for key, source in (sources or {}).items():
            self.add(key, source)

    def add(self, key: str, source: Workbench | Mount) -> Mount:
        if key in self.mounts:
            raise ValueError(f"duplicate source name {key!r}")
        mount = source if isinstance(source, Mount) else Mount(source)
        if mount.prefix is None:
            mount.prefix = key
        self.mounts[key] = mount
        self._shaped[key] = mount.shaped(key)
        self.catalog = replace(self.catalog, stale=True)
        return mount

    def _subscribe(self) -> None:
        """Listen to every source once this composite caches their catalog (it listed, or it
        started): a composite that only views sources someone else starts hears of changes too."""
        for key, shaped in self._shaped.items():
            if key not in self._unsubscribe:
                self._unsubscribe[key] = shaped.on_event(self._source_event)

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
        self._subscribe()

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe.values():
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
        self.catalog = replace(self.catalog, stale=True)
        await self.notify_tools_changed()

    async def _source_event(self, event: ServerEvent, session_id: str | None) -> None:
        """A source's change, passed on (its shaping already rewrote what it names)."""
        if isinstance(event, ToolsListChanged):
            self.catalog = replace(self.catalog, stale=True)
        await self.publish(event, session_id)

    def health_by_source(self) -> dict[str, Health]:
        out: dict[str, Health] = {}
        for key, mount in self.mounts.items():
            inner = mount.workbench.health_by_source()
            if list(inner) != [mount.workbench.name]:
                # It combines sources of its own (a composite): they are reported by their names,
                # so a dead one does not hide behind the combination's "up".
                out.update(inner)
                continue
            health = inner[mount.workbench.name]
            if key in self._start_errors and health.state != "up":
                health = Health("down", self._start_errors[key])
            out[key] = health
        return out

    def health(self) -> Health:
        states = self.health_by_source()
        down = [k for k, h in states.items() if h.state != "up"]
        if not down:
            return Health("up")
        return Health("down" if len(down) == len(states) else "up", f"down: {', '.join(down)}")

    async def _list_source(self, key: str) -> list[ToolSpec] | None:
        try:
            return await self._shaped[key].list_tools()
        except Exception as e:
            source_log.warning("source %s: cannot list tools: %s", key, e)
            return None

    async def _probe_unlisted(self) -> None:
        """Ask the sources that failed to list again, backing off, until all answer; each
        one that comes back changes the catalog, and listeners hear of it."""
        delay = 1.0
        try:
            while self.catalog.unlisted:
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)
                for key in self.catalog.unlisted:
                    if await self._list_source(key) is not None:
                        self.catalog = replace(self.catalog, unlisted=self.catalog.unlisted - {key})
                        await self._source_changed()
        finally:
            self._probing = False

    async def _relist(self) -> Catalog:
        """List every source concurrently and swap in the merged catalog."""
        listed: dict[str, list[ToolSpec] | None] = {}

        async def fetch(key: str) -> None:
            listed[key] = await self._list_source(key)

        async with anyio.create_task_group() as tg:
            for key in self.mounts:
                tg.start_soon(fetch, key)

        routes: dict[str, Route] = {}
        specs: list[ToolSpec] = []
        unlisted = frozenset(key for key, tools in listed.items() if tools is None)
        for key, shaped in self._shaped.items():  # mount order decides who keeps a contested name
            for spec in listed.get(key) or []:
                exposed = disambiguate(spec.name, routes, f"{key}/{shaped.source_tool(spec.name)}")
                routes[exposed] = Route(key, spec.name)
                specs.append(spec if exposed == spec.name else spec.model_copy(update={"name": exposed}))
        previous = self.catalog
        known = {**previous.gone, **previous.routes}
        gone = {n: r for n, r in known.items() if r.source in unlisted and n not in routes}
        # A source that is down is asked again on the next listing, and probed meanwhile.
        self.catalog = catalog = Catalog(routes, tuple(specs), unlisted, gone, bool(unlisted), previous.prompts)
        self._subscribe()
        if unlisted and self._background is not None and not self._probing:
            self._probing = True
            self._background.start_soon(self._probe_unlisted)
        return catalog

    async def list_tools(self) -> list[ToolSpec]:
        catalog = await self._relist() if self.catalog.stale else self.catalog
        return list(catalog.specs)

    async def resolve(self, name: str) -> tuple[Shaped, str]:
        """The shaped source and its name for an exposed name."""
        relisted = self.catalog.stale
        catalog = await self._relist() if relisted else self.catalog
        route = catalog.routes.get(name)
        if route is None and not relisted:  # a cached catalog: a source may have gained it
            catalog = await self._relist()
            route = catalog.routes.get(name)
        if route is None:
            # A name no source lists, which exactly one source could own: that source answers it as
            # it would straight (an MCP server behind a gateway may answer with an `isError` result,
            # a local workbench raises `ToolNotFoundError`). Two possible owners: nobody is asked.
            owners = [shaped for key, shaped in self._shaped.items()  # a source that is down: see down_source
                      if key not in catalog.unlisted and shaped._unlisted_tool(name) is not None]
            if len(owners) != 1:
                raise ToolNotFoundError(name, list(catalog.routes))
            return owners[0], name
        return self._shaped[route.source], route.name

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        try:
            shaped, original = await self.resolve(name)
            # Inside the try: a name forwarded to the one source that could own it may be unknown
            # there too, and a source that is down should be named rather than "unknown tool".
            result = await shaped.call_tool(original, arguments, ctx)
        except ToolNotFoundError:
            down = self.down_source(name)
            if down is None:
                raise
            source, health = down
            return ToolResult.error(
                f"tool {name!r} is unavailable: its source {source!r} is down ({health.detail or health.state}); "
                "its tools come back when it does"
            )
        if result.task is not None:  # an upstream's task: its result, inlined later, is reshaped as this one was
            result = replace(result, task=result.task.through(shaped.exposed_result))
        return result

    def down_source(self, name: str) -> tuple[str, Health] | None:
        """A source that went down remembers its names; one never listed is known by its prefix,
        so the user hears of the dead server, not of an "unknown tool"; a listed source may
        combine sources of its own and know."""
        catalog = self.catalog
        if (gone := catalog.gone.get(name)) is not None:
            return gone.source, self.health_by_source()[gone.source]
        for key in catalog.unlisted:
            prefix = self.mounts[key].prefix
            if prefix and name.startswith(qualified_name(prefix, "")):
                return key, self.health_by_source()[key]
        for key, shaped in self._shaped.items():
            if key not in catalog.unlisted and (down := shaped.down_source(name)) is not None:
                return down
        return None

    # Resources: a prefixed source claims its URIs by their scheme (see `workbench.shaped`); an
    # unprefixed one by its last listing, then by trying.
    async def list_resources(self) -> list[mt.Resource]:
        out: list[mt.Resource] = []
        owners: dict[str, str] = {}
        for key, shaped in self._shaped.items():
            try:
                resources = await shaped.list_resources()
            except Exception as e:
                logger.warning("source %s: cannot list resources: %s", key, e)
                continue
            for resource in resources:
                owners.setdefault(resource.uri, key)
            out.extend(resources)
        self.catalog = replace(self.catalog, resources=owners)
        return out

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        out: list[mt.ResourceTemplate] = []
        heads: list[tuple[str, str]] = []
        for key, shaped in self._shaped.items():
            try:
                templates = await shaped.list_resource_templates()
            except Exception as e:
                logger.warning("source %s: cannot list resource templates: %s", key, e)
                continue
            heads.extend((t.uri_template.split("{", 1)[0], key) for t in templates)
            out.extend(templates)
        self.catalog = replace(self.catalog, templates=tuple(heads))
        return out

    def _uri_owners(self, uri: str) -> list[Shaped]:
        """The sources that may serve `uri`, most likely first: the one whose prefix it bears,
        else the one that listed it or a template it fits, then the other unprefixed ones."""
        claimed = [k for k, s in self._shaped.items() if s.prefix and s.source_uri(uri) is not None]
        if claimed:
            return [self._shaped[claimed[0]]]
        open_keys = [k for k, s in self._shaped.items() if not s.prefix]
        likely = [self.catalog.resources[uri]] if uri in self.catalog.resources else []
        likely += [k for head, k in self.catalog.templates if head and uri.startswith(head)]
        ordered = [k for k in dict.fromkeys(likely + open_keys) if k in open_keys]
        return [self._shaped[k] for k in ordered]

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        for shaped in self._uri_owners(uri):
            try:
                return await shaped.read_resource(uri, ctx)
            except ResourceNotFoundError:
                continue
        raise ResourceNotFoundError(f"no source has resource {uri!r}")

    async def subscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        owners = self._uri_owners(uri)
        if not owners:
            raise ResourceNotFoundError(f"no source has resource {uri!r}")
        await owners[0].subscribe_resource(uri, ctx)

    async def unsubscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        owners = self._uri_owners(uri)
        if owners:
            await owners[0].unsubscribe_resource(uri, ctx)

    async def complete(
        self,
        ref: CompletionRef,
        argument: mt.CompletionArgument,
        context: mt.CompletionContext | None = None,
        ctx: CallContext | None = None,
    ) -> mt.Completion:
        if isinstance(ref, mt.PromptReference):
            if ref.name not in self.catalog.prompts:
                await self.list_prompts()
            route = self.catalog.prompts.get(ref.name)
            if route is None:
                raise PromptNotFoundError(f"unknown prompt {ref.name!r}")
            return await self._shaped[route.source].complete(ref.model_copy(update={"name": route.name}), argument,
                                                             context, ctx)
        if not self.catalog.templates:
            await self.list_resource_templates()
        owners = self._uri_owners(ref.uri)
        if not owners:
            raise ResourceNotFoundError(f"no source has resource template {ref.uri!r}")
        return await owners[0].complete(ref, argument, context, ctx)

    async def set_log_level(self, level: mt.LoggingLevel, ctx: CallContext | None = None) -> None:
        for key, shaped in self._shaped.items():
            try:
                await shaped.set_log_level(level, ctx)
            except Exception as e:  # one source's refusal must not stop the others hearing it
                logger.warning("source %s: cannot set log level: %s", key, e)

    async def list_prompts(self) -> list[mt.Prompt]:
        out: list[mt.Prompt] = []
        routes: dict[str, Route] = {}
        for key, shaped in self._shaped.items():
            try:
                prompts = await shaped.list_prompts()
            except Exception as e:
                logger.warning("source %s: cannot list prompts: %s", key, e)
                continue
            for prompt in prompts:
                exposed = disambiguate(prompt.name, routes, f"{key}/{shaped.source_prompt(prompt.name)}")
                routes[exposed] = Route(key, prompt.name)
                out.append(prompt if exposed == prompt.name else prompt.model_copy(update={"name": exposed}))
        self.catalog = replace(self.catalog, prompts=routes)
        return out

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, ctx: CallContext | None = None
    ) -> mt.GetPromptResult:
        if name not in self.catalog.prompts:
            await self.list_prompts()
        route = self.catalog.prompts.get(name)
        if route is None:
            raise PromptNotFoundError(f"unknown prompt {name!r}")
        return await self._shaped[route.source].get_prompt(route.name, arguments, ctx)
