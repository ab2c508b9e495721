"""What the sessions behind one upstream connection asked of it: resource subscriptions and
log levels. A shared upstream connection hears the union — one `resources/subscribe` per URI
while any session wants it, the most verbose level any session set — and the gateway sends
each client only what it asked for itself."""

from __future__ import annotations

from typing import get_args

import mcp.types as mt

LEVELS: tuple[mt.LoggingLevel, ...] = get_args(mt.LoggingLevel)
"""Least to most severe (RFC 5424 order, as the SDK's literal declares them)."""

MAX_SUBSCRIPTIONS_PER_SESSION = 1000
"""A client subscribing without end would grow the upstream's set and ours: refused past this."""


def severity(level: mt.LoggingLevel) -> int:
    return LEVELS.index(level)


class SubscriptionLimitError(ValueError):
    pass


class Subscriptions:
    def __init__(self) -> None:
        self.resources: dict[str, set[str]] = {}
        """URI → the sessions subscribed to it."""
        self.levels: dict[str, mt.LoggingLevel] = {}
        """Session → the level it set."""

    def add(self, uri: str, session_id: str) -> bool:
        """Record the subscription; True when `uri` had no subscriber (the upstream must hear it)."""
        if sum(session_id in s for s in self.resources.values()) >= MAX_SUBSCRIPTIONS_PER_SESSION:
            raise SubscriptionLimitError(
                f"this session holds {MAX_SUBSCRIPTIONS_PER_SESSION} resource subscriptions already; "
                "unsubscribe from some first")
        sessions = self.resources.setdefault(uri, set())
        first = not sessions
        sessions.add(session_id)
        return first

    def remove(self, uri: str, session_id: str) -> bool:
        """Forget the subscription; True when `uri` has no subscriber left (the upstream may stop)."""
        sessions = self.resources.get(uri)
        if sessions is None or session_id not in sessions:
            return False
        sessions.discard(session_id)
        if sessions:
            return False
        del self.resources[uri]
        return True

    def set_level(self, session_id: str, level: mt.LoggingLevel) -> bool:
        """Record `level`; True when the upstream's level (the most verbose) changes."""
        before = self.level
        self.levels[session_id] = level
        return self.level != before

    @property
    def level(self) -> mt.LoggingLevel | None:
        return LEVELS[min(map(severity, self.levels.values()))] if self.levels else None

    def drop_session(self, session_id: str) -> tuple[list[str], bool]:
        """Forget everything of a session that ended: the URIs nobody wants any more, and
        whether the upstream's level changes."""
        unwanted = [uri for uri in list(self.resources) if self.remove(uri, session_id)]
        before = self.level
        self.levels.pop(session_id, None)
        return unwanted, self.level != before
