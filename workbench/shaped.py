"""`Shaped`: one workbench's catalog as others see it — filtered, namespaced, renamed, described.

The one place catalog shaping lives: a composite shapes each of its sources with it, the
agents' toolset its `tools` globs, the server its `expose` allowlist.

    Shaped(github, prefix="gh", tools=Globs(exclude=("delete_*",)), rename={"search": "find"})
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mcp.types as mt

from workbench.core import CallContext, Health, PromptNotFoundError, ToolNotFoundError, ToolResult, ToolSpec, Workbench
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
            return await self.inner.call_tool(source, arguments, ctx)
        source = self._unlisted_tool(name)
        if source is None:  # left out or never ours: no listing, nothing reaches the inner workbench
            raise ToolNotFoundError(name, list(self._tool_routes))
        try:
            return await self.inner.call_tool(source, arguments, ctx)
        except ToolNotFoundError:  # suggest only names this view serves
            raise ToolNotFoundError(name, list(self._tool_routes)) from None

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

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> mt.GetPromptResult:
        if name not in self._prompt_routes and self._may_list_prompt(name):
            await self.list_prompts()  # the inner workbench may have gained it since the last listing
        source = self._prompt_routes.get(name)
        if source is None:
            raise PromptNotFoundError(f"unknown prompt {name!r}")
        return await self.inner.get_prompt(source, arguments)

