"""The connection's lifecycle: which transitions tell listeners the tool set changed, how the
states read as health, and how the reconnect backoff grows — without a server."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_REQUEST

from adapters.mcp_connection import (
    Connection,
    ConnectionState,
    StdioTarget,
    _Backoff,
    is_disconnect,
    session_expired,
)


def _connection(heard: list[ConnectionState]) -> Connection:
    async def nothing(*_: Any) -> None:
        return None

    conn: Connection

    def on_up_or_down() -> None:
        heard.append(conn.state)

    conn = Connection("t", StdioTarget("true"), lambda _: None,  # type: ignore[arg-type,return-value]  # never connects
                      nothing, nothing, on_up_or_down=on_up_or_down)
    return conn


def test_listeners_hear_going_down_and_coming_back_not_the_first_connect_or_closing() -> None:
    heard: list[ConnectionState] = []
    conn = _connection(heard)
    assert conn.state is ConnectionState.IDLE and conn.health_state == "down"
    client: Any = object()
    for state in (ConnectionState.CONNECTING, ConnectionState.UP):  # first connect: silent
        conn._transition(state, client=client)
    assert heard == [] and conn.live is client and conn.health_state == "up"
    conn._transition(ConnectionState.DOWN, error="gone")
    assert heard == [ConnectionState.DOWN] and conn.live is None and conn.last_error == "gone"
    conn._transition(ConnectionState.CONNECTING)
    assert conn.health_state == "starting"
    conn._transition(ConnectionState.UP, client=client)
    assert heard == [ConnectionState.DOWN, ConnectionState.UP] and conn.last_error is None
    conn._transition(ConnectionState.CLOSED)  # on purpose: silent
    assert len(heard) == 2 and conn.live is None and conn.health_state == "stopped"
    conn.reopen()
    assert conn.state is ConnectionState.IDLE
    conn._transition(ConnectionState.UP, client=client)  # it had been up before: the tools came back
    assert heard[-1] is ConnectionState.UP


def test_backoff_is_immediate_after_a_stable_connection_and_grows_in_a_crash_loop() -> None:
    backoff = _Backoff(0.5, 4.0)
    assert backoff.wait() <= 0
    backoff.failed()
    assert 0.4 < backoff.wait() <= 0.5
    backoff.failed()
    assert 0.9 < backoff.wait() <= 1.0
    for _ in range(5):
        backoff.failed()
    assert 3.9 < backoff.wait() <= 4.0  # capped
    backoff.allow_now()
    assert backoff.wait() <= 0


async def test_lost_on_a_connection_that_is_not_up_changes_nothing() -> None:
    heard: list[ConnectionState] = []
    conn = _connection(heard)
    await conn.lost("whatever")
    assert conn.state is ConnectionState.IDLE and heard == []


def test_disconnects_are_told_by_type_and_code() -> None:
    assert is_disconnect(MCPError(CONNECTION_CLOSED, "Connection closed"))
    assert is_disconnect(ExceptionGroup("g", [anyio.BrokenResourceError()]))
    assert is_disconnect(ConnectionRefusedError(111, "refused"))
    assert not is_disconnect(TimeoutError())  # slow is not gone
    assert not is_disconnect(MCPError(-32602, "invalid params"))
    assert session_expired(MCPError(INVALID_REQUEST, "Session terminated"))  # the SDK's stand-in for a bare 404
    assert session_expired(MCPError(-32001, "Session not found"))  # the TypeScript SDK's 404 body
    assert not session_expired(MCPError(INVALID_REQUEST, "Unexpected content type: text/html"))


pytestmark = pytest.mark.anyio
