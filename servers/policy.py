"""`[serve.policy]`: which tools, resources and prompts each caller may see and use.

A policy is a list of rules. A rule applies to a caller when every condition it names holds:
`identities` (globs over `CallContext.identity`), `scopes` (the token grants any of them),
`claims` (each named claim — a dotted path into the verified token claims, e.g. `groups` or
`realm_access.roles` — has one of the listed values; a list-valued claim matches when any
element does). The rules that apply to a caller are combined: a name is granted when some
applying rule allows it (`tools`, `resources`, `prompts`: globs over the names clients see,
after `expose`, prefixes and renames; resource globs match URIs) and no applying rule denies
it (`deny_*`). A caller no rule applies to gets nothing: the policy allows, it never assumes.

`PolicyWorkbench` enforces it as a catalog-shaping wrapper: what is not granted is missing
from `tools/list`, `resources/list` and `prompts/list`; a `tools/call` of it gets an
`is_error` result naming what is missing, before anything reaches the tool (so the answer is
the same whether the tool exists or not); a read, get, completion or subscription gets a
protocol error.
`require_approval` globs make a granted tool ask the calling client first (`servers.approval`).

Listings carry no `CallContext`, so the server binds the caller of every request
(`bind_caller`, a middleware; `calling_as` for other entry points) and the policy reads it from a
context variable; work a request starts (a background job) inherits it, so a job is decided on
the same facts as the call that started it. Without a bound caller a call's `CallContext` is the
caller; with neither, the policy grants nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import mcp.types as mt
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from servers.approval import ask_approval
from servers.audit import refusal
from workbench.core import CallContext, CompletionRef, ToolResult, ToolSpec, Workbench, logger
from workbench.shaped import Globs
from workbench.wrapper import WorkbenchWrapper

FORBIDDEN = mt.INVALID_PARAMS
"""The JSON-RPC code of a refused read or get: MCP has no "forbidden" code, and the request's
params (the URI or prompt name) are what this caller may not use."""


class PolicyRule(BaseModel):
    """One `[[serve.policy.rules]]` entry: whom it applies to, and what it grants or denies them."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    """Shown in the server log when the policy is loaded; never sent to clients."""
    identities: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    claims: dict[str, list[str]] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list)
    deny_tools: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    deny_resources: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    deny_prompts: list[str] = Field(default_factory=list)
    require_approval: list[str] = Field(default_factory=list)
    """Globs over granted tool names that ask the calling client before each run."""

    @model_validator(mode="after")
    def _names_someone(self) -> PolicyRule:
        if not (self.identities or self.scopes or self.claims):
            raise ValueError(
                "a policy rule must say whom it applies to: identities, scopes or claims "
                '(identities = ["*"] applies it to every caller)'
            )
        return self

    def applies_to(self, caller: CallContext) -> bool:
        if self.identities and not Globs(tuple(self.identities)).admits(caller.identity):
            return False
        if self.scopes and caller.scopes.isdisjoint(self.scopes):
            return False
        return all(_claim_matches(caller.claims, path, accepted) for path, accepted in self.claims.items())


class PolicyConfig(BaseModel):
    """`[serve.policy]`: absent, every client may use everything `expose` allows."""

    model_config = ConfigDict(extra="forbid")

    rules: list[PolicyRule] = Field(default_factory=list)
    approval_timeout: float = Field(default=120.0, gt=0, le=3600, allow_inf_nan=False)
    """Seconds a `require_approval` tool waits for the person's answer before it is refused."""


def _claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return []
        value = value.get(part)
    items = value if isinstance(value, list) else [value]
    # Only plain values compare: an object where a group name belongs matches nothing.
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in items if isinstance(v, str | int | bool)]


def _claim_matches(claims: Mapping[str, Any], path: str, accepted: list[str]) -> bool:
    return any(Globs(tuple(accepted)).admits(v) for v in _claim_values(claims, path))


@dataclass(frozen=True)
class Grant:
    """What the rules that apply to one caller grant, combined."""

    tools: Globs
    resources: Globs
    prompts: Globs
    approval: Globs


def _combined(include: list[str], exclude: list[str]) -> Globs:
    return Globs(tuple(include), tuple(exclude))


NOTHING = Grant(Globs(()), Globs(()), Globs(()), Globs(()))
"""The grant of a call that names no caller: a policy fails closed."""


def _who(caller: CallContext | None) -> str:
    return repr(caller.identity) if caller is not None else "a call that names no caller"


GRANTS_CACHED = 1024
"""Callers whose grant is kept worked out (least recently used dropped first)."""


class Policy:
    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        # A grant is asked for on every call and listing, and depends only on who calls: kept per
        # caller, bounded. Rules that read claims make the claims part of who calls; those are
        # worked out each time (claims are open JSON, no cheap key).
        self._reads_claims = any(rule.claims for rule in config.rules)
        self._cached_grant = functools.lru_cache(maxsize=GRANTS_CACHED)(self._grant_of)

    def grant(self, caller: CallContext | None) -> Grant:
        if caller is None:
            return NOTHING
        if self._reads_claims:
            return self._grant_of(caller.identity, caller.scopes, caller.claims)
        return self._cached_grant(caller.identity, frozenset(caller.scopes))  # (no copy of a frozenset)

    def _grant_of(self, identity: str, scopes: frozenset[str], claims: Mapping[str, Any] | None = None) -> Grant:
        caller = CallContext(identity=identity, scopes=scopes, claims=claims or {})
        tools: list[str] = []
        deny_tools: list[str] = []
        resources: list[str] = []
        deny_resources: list[str] = []
        prompts: list[str] = []
        deny_prompts: list[str] = []
        approval: list[str] = []
        for rule in self.config.rules:
            if rule.applies_to(caller):
                tools += rule.tools
                deny_tools += rule.deny_tools
                resources += rule.resources
                deny_resources += rule.deny_resources
                prompts += rule.prompts
                deny_prompts += rule.deny_prompts
                approval += rule.require_approval
        return Grant(_combined(tools, deny_tools), _combined(resources, deny_resources),
                     _combined(prompts, deny_prompts), Globs(tuple(approval)))

    def missing(self, caller: CallContext | None, tool: str) -> str:
        """What `caller` lacks to call `tool`, for its refusal: the scopes that would grant it
        (as OAuth's insufficient_scope does), never other rules' identities or claim values."""
        if caller is None:
            return "the server's policy grants nothing to a call that names no caller"
        if any(r.applies_to(caller) and Globs(tuple(r.deny_tools)).admits(tool) for r in self.config.rules):
            return "the server's policy denies it to this caller"
        scopes = sorted({s for r in self.config.rules if Globs(tuple(r.tools)).admits(tool)
                         and not r.identities and not r.claims for s in r.scopes} - caller.scopes)
        if scopes:
            return f"it needs a token with one of the scopes {', '.join(scopes)}"
        return "no rule of the server's policy grants it to this caller; ask the server's administrator"


_caller: ContextVar[Callable[[], CallContext] | None] = ContextVar("workbench.policy.caller", default=None)


def current_caller(ctx: CallContext | None = None) -> CallContext | None:
    """The caller the server bound for this request (or the work it started), else `ctx`; None
    when neither names one (the policy then grants nothing)."""
    bound = _caller.get()
    return bound() if bound is not None else ctx


@contextmanager
def calling_as(caller: CallContext) -> Iterator[None]:
    """Bind `caller` for what runs inside: for entry points other than MCP requests (an HTTP API
    calling the served workbench), so the policy judges their listings and calls as that caller."""
    token = _caller.set(lambda: caller)
    try:
        yield
    finally:
        _caller.reset(token)


Ctx = ServerRequestContext[Any, Any]


def bind_caller(caller_of: Callable[[Ctx], CallContext]) -> ServerMiddleware[Any]:
    """SDK middleware binding each request's caller, `caller_of(ctx)`, for the handlers it runs.
    Worked out on first use only: a server without a policy never asks."""

    async def middleware(ctx: Ctx, call_next: CallNext) -> HandlerResult:
        token = _caller.set(functools.cache(functools.partial(caller_of, ctx)))
        try:
            return await call_next(ctx)
        finally:
            _caller.reset(token)

    return middleware


class PolicyWorkbench(WorkbenchWrapper):
    """`inner` as each caller may see it under `policy` (None: everything, today's behaviour)."""

    def __init__(self, inner: Workbench, policy: PolicyConfig | None) -> None:
        super().__init__(inner)
        self.policy = Policy(policy) if policy is not None else None
        self._input_schemas: dict[str, dict[str, Any]] = {}
        if policy is not None:
            for rule in policy.rules:
                logger.info("policy rule", extra={"rule": rule.name or "(unnamed)", "identities": rule.identities,
                                                  "scopes": rule.scopes, "claims": sorted(rule.claims)})

    def _grant(self, ctx: CallContext | None = None) -> Grant | None:
        return None if self.policy is None else self.policy.grant(current_caller(ctx))

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema from the last listing of every tool, whoever listed: the SDK asks
        before it knows the caller, so the answer must not depend on who listed last."""
        return self._input_schemas.get(name)

    async def list_tools(self) -> list[ToolSpec]:
        specs = await self.inner.list_tools()
        self._input_schemas = {s.name: s.input_schema for s in specs}
        grant = self._grant()
        return specs if grant is None else [s for s in specs if grant.tools.admits(s.name)]

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        grant = self._grant(ctx)
        if grant is not None and self.policy is not None:
            caller = current_caller(ctx)
            if not grant.tools.admits(name):
                return refusal("policy", f"permission denied: {_who(caller)} may not call tool {name!r}: "
                                          f"{self.policy.missing(caller, name)}.")
            if grant.approval.admits(name):
                why = await ask_approval(ctx, name, arguments or {}, self.policy.config.approval_timeout)
                if why is not None:
                    return refusal("approval", why)
        return await self.inner.call_tool(name, arguments, ctx)

    async def list_resources(self) -> list[mt.Resource]:
        resources = await self.inner.list_resources()
        grant = self._grant()
        return resources if grant is None else [r for r in resources if grant.resources.admits(str(r.uri))]

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        templates = await self.inner.list_resource_templates()
        grant = self._grant()
        return templates if grant is None else [t for t in templates if grant.resources.admits(t.uri_template)]

    def _check_resource(self, uri: str, ctx: CallContext | None) -> None:
        grant = self._grant(ctx)
        if grant is not None and not grant.resources.admits(uri):
            raise MCPError(FORBIDDEN, f"permission denied: {_who(current_caller(ctx))} may not use resource {uri!r} "
                                      "(the server's policy grants it no access)")

    def _check_prompt(self, name: str, ctx: CallContext | None) -> None:
        grant = self._grant(ctx)
        if grant is not None and not grant.prompts.admits(name):
            raise MCPError(FORBIDDEN, f"permission denied: {_who(current_caller(ctx))} may not use prompt {name!r} "
                                      "(the server's policy grants it no access)")

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        self._check_resource(uri, ctx)
        return await self.inner.read_resource(uri, ctx)

    async def subscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        self._check_resource(uri, ctx)  # else its updates would tell what a hidden resource does
        await self.inner.subscribe_resource(uri, ctx)

    async def list_prompts(self) -> list[mt.Prompt]:
        prompts = await self.inner.list_prompts()
        grant = self._grant()
        return prompts if grant is None else [p for p in prompts if grant.prompts.admits(p.name)]

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None,
                         ctx: CallContext | None = None) -> mt.GetPromptResult:
        self._check_prompt(name, ctx)
        return await self.inner.get_prompt(name, arguments, ctx)

    async def complete(self, ref: CompletionRef, argument: mt.CompletionArgument,
                       context: mt.CompletionContext | None = None, ctx: CallContext | None = None) -> mt.Completion:
        # Suggestions for a hidden prompt's or template's arguments would show what it holds.
        if isinstance(ref, mt.PromptReference):
            self._check_prompt(ref.name, ctx)
        else:
            self._check_resource(ref.uri, ctx)
        return await self.inner.complete(ref, argument, context, ctx)
