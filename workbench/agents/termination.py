"""When a team stops: conditions combinable with `|` (either) and `&` (both).

A condition sees every event of a run as it happens and returns a stop reason once it
fires. Conditions reset at the end of each run, so the next run starts fresh.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from workbench.agents.messages import TextMessage


class Termination:
    def check(self, events: Sequence[Any]) -> str | None:
        """Look at new events; the stop reason once this condition is met."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def deadline(self) -> float | None:
        """A `time.monotonic()` instant by which the run must stop, if any."""
        return None

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        return None

    def __or__(self, other: Termination) -> Termination:
        return AnyOf([self, other])

    def __and__(self, other: Termination) -> Termination:
        return AllOf([self, other])


class MaxMessages(Termination):
    """Stop after `n` chat messages (the task counts; tool events do not)."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("MaxMessages needs n >= 1")
        self.n = n
        self.count = 0

    def check(self, events: Sequence[Any]) -> str | None:
        self.count += sum(isinstance(e, TextMessage) for e in events)
        return f"{self.count} messages reached the maximum of {self.n}" if self.count >= self.n else None

    def reset(self) -> None:
        self.count = 0

    def state(self) -> dict[str, Any]:
        return {"count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.count = int(state.get("count", 0))


class TextMention(Termination):
    """Stop when a message (not the user's task, unless `sources` names "user") contains `text`."""

    def __init__(self, text: str, sources: Sequence[str] | None = None) -> None:
        self.text = text
        self.sources = set(sources) if sources else None

    def check(self, events: Sequence[Any]) -> str | None:
        for e in events:
            if not isinstance(e, TextMessage):
                continue
            if (e.source in self.sources) if self.sources else e.source != "user":
                if self.text in e.content:
                    return f"{e.source} mentioned {self.text!r}"
        return None

    def reset(self) -> None:
        return None


class Timeout(Termination):
    """Stop `seconds` after the run began — mid-turn if need be (the unfinished turn is dropped)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None

    def check(self, events: Sequence[Any]) -> str | None:
        if self.started is None:
            self.started = time.monotonic()
        return f"timed out after {self.seconds:g} s" if time.monotonic() >= self.started + self.seconds else None

    def deadline(self) -> float | None:
        if self.started is None:
            self.started = time.monotonic()
        return self.started + self.seconds

    def reset(self) -> None:
        self.started = None


class TokenBudget(Termination):
    """Stop once the models' input + output tokens reach `max_tokens`."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.used = 0

    def check(self, events: Sequence[Any]) -> str | None:
        for e in events:
            usage = getattr(e, "usage", None)
            if usage is not None:
                self.used += usage.total_tokens
        return f"{self.used} tokens used, budget {self.max_tokens}" if self.used >= self.max_tokens else None

    def reset(self) -> None:
        self.used = 0

    def state(self) -> dict[str, Any]:
        return {"used": self.used}

    def load(self, state: dict[str, Any]) -> None:
        self.used = int(state.get("used", 0))


class ExternalStop(Termination):
    """Stop at the next turn boundary once `set()` is called (from a UI, a signal handler, …):
    unlike cancelling, the current turn completes and is kept."""

    def __init__(self) -> None:
        self.requested: str | None = None

    def set(self, reason: str = "stop requested") -> None:
        self.requested = reason

    def check(self, events: Sequence[Any]) -> str | None:
        return self.requested

    def reset(self) -> None:
        self.requested = None


class AnyOf(Termination):
    def __init__(self, conditions: Sequence[Termination]) -> None:
        self.conditions = list(conditions)

    def check(self, events: Sequence[Any]) -> str | None:
        reasons = [r for r in (c.check(events) for c in self.conditions) if r]  # every child sees every event
        return "; ".join(reasons) if reasons else None

    def deadline(self) -> float | None:
        deadlines = [d for d in (c.deadline() for c in self.conditions) if d is not None]
        return min(deadlines) if deadlines else None

    def reset(self) -> None:
        for c in self.conditions:
            c.reset()

    def state(self) -> dict[str, Any]:
        return {"conditions": [c.state() for c in self.conditions]}

    def load(self, state: dict[str, Any]) -> None:
        for c, s in zip(self.conditions, state.get("conditions", []), strict=False):
            c.load(s)


class AllOf(AnyOf):
    """Fires once every condition has fired (each remembers that it did)."""

    def __init__(self, conditions: Sequence[Termination]) -> None:
        super().__init__(conditions)
        self.fired: list[str | None] = [None] * len(self.conditions)

    def check(self, events: Sequence[Any]) -> str | None:
        for i, c in enumerate(self.conditions):
            self.fired[i] = c.check(events) or self.fired[i]
        return " and ".join(r for r in self.fired if r) if all(self.fired) else None

    def deadline(self) -> float | None:
        return None  # time alone cannot satisfy the other conditions

    def reset(self) -> None:
        super().reset()
        self.fired = [None] * len(self.conditions)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "fired": list(self.fired)}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.fired = list(state.get("fired", self.fired))
