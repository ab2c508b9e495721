"""`Shaped`: one workbench's catalog as others see it — filtered, namespaced, renamed, described.

The one place catalog shaping lives: a composite shapes each of its sources with it, the
agents' toolset its `tools` globs, the server its `expose` allowlist.

    Shaped(github, prefix="gh", tools=Globs(exclude=("delete_*",)), rename={"search": "find"})

A prefix names tools and prompts `gh__name` and puts itself in front of resource URIs'
schemes: `repo://a/b` is served as `gh+repo://a/b` (templates alike: `gh+repo://{owner}/{name}`).
That keeps every URI a valid URI (a scheme may hold `+`), keeps templates expandable by
clients, and reverses without a table — so a URI the listing never showed (an expanded
template, a resource link in a tool's result) still finds its way back. Completion
references, subscriptions, `ResourceUpdated` events and resource URIs inside tool results
are rewritten the same way, both ways.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import mcp.types as mt
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent

from workbench.core import (
    CallContext,
    CompletionRef,
    EventCallback,
    Health,
    PromptNotFoundError,
    ResourceNotFoundError,
    ToolNotFoundError,
    ToolResult,
    ToolSpec,
    Workbench,
)
from workbench.naming import disambiguate, qualified_name
from workbench.wrapper import WorkbenchWrapper


@dataclass(frozen=True)
class Globs:
    """Names matching any `include` glob and no `exclude` glob."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def admits(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, g) for g in self.include) and not any(
            fnmatch.fnmatchcase(name, g) for g in self.exclude
        )


EVERYTHING = Globs()

_NOT_SCHEME = re.compile(r"[^a-z0-9+.-]")


def uri_prefix(prefix: str) -> str:
    """What a prefix puts in front of a URI: itself as a scheme part (lower case, other
    characters as `-`) and a `+`, e.g. `gh+` for `repo://x` → `gh+repo://x`."""
    head = _NOT_SCHEME.sub("-", prefix.lower())
    return (head if head[:1].isalpha() else "x" + head) + "+"


class Shaped(WorkbenchWrapper):
    """`inner`'s tools and prompts under other names, some left out; resources pass unchanged.

    `prefix`: None keeps names as they are, "" makes them safe for every client, "p" names
    them `p__tool`. `tools`/`prompts` select by the inner workbench's own names; `rename`
    (inner name → exposed name, used as is) and `descriptions` apply to tools. Clashing
    names get a stable suffix hashed from `origin/name`, so the same catalog always yields
    the same names.
    """

    def __init__(
        self,
        inner: Workbench,
        *,
        prefix: str | None = None,
        tools: Globs = EVERYTHING,
        prompts: Globs = EVERYTHING,
        rename: Mapping[str, str] | None = None,
        descriptions: Mapping[str, str] | None = None,
        origin: str | None = None,
    ) -> None:
        super().__init__(inner)
        self.prefix = prefix
        self.tools = tools
        self.prompts = prompts
        self.rename = dict(rename or {})
        self.descriptions = dict(descriptions or {})
        self.origin = origin if origin is not None else (prefix or inner.name)
        self._renamed_from = {exposed: original for original, exposed in self.rename.items()}
        # Exposed name → inner name, from the last listing; each listing swaps in a new dict.
        self._tool_routes: dict[str, str] = {}
        self._prompt_routes: dict[str, str] = {}
        self._uri_head = uri_prefix(prefix) if prefix else ""

    def _qualified(self, name: str) -> str:
        return name if self.prefix is None else qualified_name(self.prefix, name)

    def source_tool(self, exposed: str) -> str:
        """The inner workbench's name for the tool listed as `exposed`."""
        return self._tool_routes.get(exposed, exposed)

    def source_prompt(self, exposed: str) -> str:
        return self._prompt_routes.get(exposed, exposed)

    def _unlisted_tool(self, name: str) -> str | None:
        """The inner name this shaping would give `name` although the last listing did not
        have it (the inner workbench may have gained it since), or None if it never could."""
        if name in self._renamed_from:  # a rename never lets an excluded tool through
            original = self._renamed_from[name]
            return original if self.tools.admits(original) else None
        if self.prefix:
            head = qualified_name(self.prefix, "")
            if not name.startswith(head):
                return None
            name = name[len(head):]
        if name in self.rename:  # renamed away: its plain name is not served
            return None
        return name if self.tools.admits(name) else None

    async def list_tools(self) -> list[ToolSpec]:
        routes: dict[str, str] = {}
        specs: list[ToolSpec] = []
        for spec in await self.inner.list_tools():
            if not self.tools.admits(spec.name):
                continue
            exposed = self.rename.get(spec.name) or self._qualified(spec.name)
            exposed = disambiguate(exposed, routes, f"{self.origin}/{spec.name}")
            routes[exposed] = spec.name
            update: dict[str, Any] = {}
            if exposed != spec.name:
                update["name"] = exposed
            if spec.name in self.descriptions:
                update["description"] = self.descriptions[spec.name]
            specs.append(spec.model_copy(update=update) if update else spec)
        self._tool_routes = routes
        return specs

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        source = self._tool_routes.get(name)
        if source is not None:
            return self.exposed_result(await self.inner.call_tool(source, arguments, ctx))
        source = self._unlisted_tool(name)
        if source is None:  # left out or never ours: no listing, nothing reaches the inner workbench
            raise ToolNotFoundError(name, list(self._tool_routes))
        try:
            return self.exposed_result(await self.inner.call_tool(source, arguments, ctx))
        except ToolNotFoundError:  # suggest only names this view serves
            raise ToolNotFoundError(name, list(self._tool_routes)) from None

    def exposed_result(self, result: ToolResult) -> ToolResult:
        """Resource links and embedded resources name URIs a client reads back through us (also a relayed
        task's inlined result, later: `CompositeWorkbench.call_tool`)."""
        if not self._uri_head or not any(isinstance(c, mt.ResourceLink | mt.EmbeddedResource) for c in result.content):
            return result
        return replace(result, content=[self._exposed_block(block) for block in result.content])

    def _exposed_block(self, block: Any) -> Any:
        if isinstance(block, mt.ResourceLink):
            return block.model_copy(update={"uri": self.exposed_uri(block.uri)})
        if isinstance(block, mt.EmbeddedResource):
            inner = block.resource.model_copy(update={"uri": self.exposed_uri(block.resource.uri)})
            return block.model_copy(update={"resource": inner})
        return block

    def down_source(self, name: str) -> tuple[str, Health] | None:
        source = self._tool_routes.get(name) or self._unlisted_tool(name)
        return None if source is None else self.inner.down_source(source)

    async def list_prompts(self) -> list[mt.Prompt]:
        routes: dict[str, str] = {}
        prompts: list[mt.Prompt] = []
        for prompt in await self.inner.list_prompts():
            if not self.prompts.admits(prompt.name):
                continue
            exposed = disambiguate(self._qualified(prompt.name), routes, f"{self.origin}/{prompt.name}")
            routes[exposed] = prompt.name
            prompts.append(prompt if exposed == prompt.name else prompt.model_copy(update={"name": exposed}))
        self._prompt_routes = routes
        return prompts

    def _may_list_prompt(self, name: str) -> bool:
        """Whether `name` could be one of ours at all: a name a client makes up costs no listing."""
        if self.prefix:
            head = qualified_name(self.prefix, "")
            if not name.startswith(head):
                return False
            name = name[len(head):]
        return self.prompts.admits(name)

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, ctx: CallContext | None = None
    ) -> mt.GetPromptResult:
        if name not in self._prompt_routes and self._may_list_prompt(name):
            await self.list_prompts()  # the inner workbench may have gained it since the last listing
        source = self._prompt_routes.get(name)
        if source is None:
            raise PromptNotFoundError(f"unknown prompt {name!r}")
        result = await self.inner.get_prompt(source, arguments, ctx)
        if not self._uri_head:
            return result
        messages = [m.model_copy(update={"content": self._exposed_block(m.content)}) for m in result.messages]
        return result.model_copy(update={"messages": messages})


    # ---- resources: URIs carry the prefix in their scheme (see the module docstring) ----------
    def exposed_uri(self, uri: str) -> str:
        return self._uri_head + uri

    def source_uri(self, exposed: str) -> str | None:
        """The inner workbench's URI for `exposed`, or None when it cannot be one of ours."""
        if not self._uri_head:
            return exposed
        return exposed[len(self._uri_head):] if exposed.startswith(self._uri_head) else None

    def _source_uri_or_raise(self, exposed: str) -> str:
        uri = self.source_uri(exposed)
        if uri is None:
            raise ResourceNotFoundError(f"unknown resource {exposed!r}: this source's URIs begin {self._uri_head!r}")
        return uri

    async def list_resources(self) -> list[mt.Resource]:
        resources = await self.inner.list_resources()
        if not self._uri_head:
            return resources
        return [r.model_copy(update={"uri": self.exposed_uri(r.uri)}) for r in resources]

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        templates = await self.inner.list_resource_templates()
        if not self._uri_head:
            return templates
        return [t.model_copy(update={"uri_template": self.exposed_uri(t.uri_template)}) for t in templates]

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        result = await self.inner.read_resource(self._source_uri_or_raise(uri), ctx)
        if not self._uri_head:
            return result
        contents = [c.model_copy(update={"uri": self.exposed_uri(c.uri)}) for c in result.contents]
        return result.model_copy(update={"contents": contents})

    async def subscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        await self.inner.subscribe_resource(self._source_uri_or_raise(uri), ctx)

    async def unsubscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        source = self.source_uri(uri)
        if source is not None:
            await self.inner.unsubscribe_resource(source, ctx)

    async def complete(
        self,
        ref: CompletionRef,
        argument: mt.CompletionArgument,
        context: mt.CompletionContext | None = None,
        ctx: CallContext | None = None,
    ) -> mt.Completion:
        if isinstance(ref, mt.PromptReference):
            if ref.name not in self._prompt_routes and self._may_list_prompt(ref.name):
                await self.list_prompts()
            source = self._prompt_routes.get(ref.name)
            if source is None:
                raise PromptNotFoundError(f"unknown prompt {ref.name!r}")
            inner_ref: CompletionRef = ref.model_copy(update={"name": source})
        else:
            inner_ref = ref.model_copy(update={"uri": self._source_uri_or_raise(ref.uri)})
        return await self.inner.complete(inner_ref, argument, context, ctx)

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        if not self._uri_head:
            return self.inner.on_event(callback)

        async def exposed(event: ServerEvent, session_id: str | None) -> None:
            if isinstance(event, ResourceUpdated):
                event = ResourceUpdated(self.exposed_uri(event.uri))
            await callback(event, session_id)

        return self.inner.on_event(exposed)
