"""How many sandboxes may live at once: global caps that keep many callers from taking the host down.

Each container is bounded by its own limits; these bound them together. The count cap is the
smaller of `max_sandboxes` and what fits in the memory budget at the per-box memory limit; the
budget defaults to half the engine's memory, so the defaults never let sandboxes fill the host.
Pooled and starting containers count. A per-identity cap keeps one caller from holding them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.errors import SandboxError
from sandbox.settings import SandboxSettings, parse_bytes

UNLIMITED_MEMORY_DEFAULT = 16
"""The count cap when boxes have no memory limit (so no budget arithmetic) and none is configured."""


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB" if size >= 1 << 30 else f"{size >> 20} MiB"


@dataclass(frozen=True)
class Caps:
    total: int
    """Live containers at most: sessions, pooled and starting ones."""
    per_identity: int | None
    budget: int | None
    """Bytes all sandboxes together may use (None: no memory limit per box, so no budget)."""
    per_box: int | None

    @classmethod
    def resolve(cls, settings: SandboxSettings, engine_memory: int) -> Caps:
        """The caps for `settings` on an engine with `engine_memory` bytes. A budget that cannot
        hold one box is a configuration error, named as such."""
        per_box = parse_bytes(settings.memory) if settings.memory else None
        budget = parse_bytes(settings.memory_budget) if settings.memory_budget else engine_memory // 2
        if per_box is None:
            total = settings.max_sandboxes or UNLIMITED_MEMORY_DEFAULT
            return cls(total, settings.max_per_identity, None, None)
        fits = budget // per_box
        if fits < 1:
            raise SandboxError(f"sandbox.memory_budget ({_gib(budget)}) does not hold one sandbox of "
                               f"sandbox.memory {_gib(per_box)}: raise the budget or lower the memory limit")
        total = min(fits, settings.max_sandboxes) if settings.max_sandboxes else fits
        return cls(total, settings.max_per_identity, budget, per_box)

    def describe(self) -> str:
        """'24 sandboxes (the 12.0 GiB memory budget at 512 MiB each), 8 per identity'."""
        why = ""
        if self.budget and self.per_box:
            why = f" (the {_gib(self.budget)} memory budget at {_gib(self.per_box)} each)"
        per = f", {self.per_identity} per identity" if self.per_identity else ""
        return f"{self.total} sandboxes{why}{per}"

    def full_message(self, reclaim_after: float) -> str:
        return (f"no sandbox is free: all {self.describe()} are in use and none has been idle for "
                f"{reclaim_after:g} s to reclaim. Retry in a moment, or ask the operator to raise "
                "[sandbox] max_sandboxes / memory_budget")

    def identity_message(self) -> str:
        return (f"this identity already holds {self.per_identity} sandboxes, the per-identity cap "
                "([serve] max_sandboxes_per_identity): end one of your sessions (HTTP DELETE, or close the "
                "client) or wait for an idle one to expire")
