"""CallContext deadlines and the tools-changed listeners of the Workbench base."""

import time

import pytest

from workbench import CallContext, StaticWorkbench

pytestmark = pytest.mark.anyio


def test_a_nested_timeout_never_extends_the_callers_deadline() -> None:
    outer = CallContext(session_id="s").with_timeout(5)
    inner = outer.with_timeout(100)  # e.g. an agent's tool_timeout under a shorter call deadline
    assert inner.deadline == outer.deadline and inner.session_id == "s"
    tighter = outer.with_timeout(0.5)
    assert tighter.deadline is not None and outer.deadline is not None and tighter.deadline < outer.deadline
    assert outer.with_timeout(None) is outer
    left = inner.timeout(60)
    assert left is not None and 4 < left <= 5  # the tighter of the default and the time left
    assert CallContext().timeout(7) == 7 and CallContext().remaining() is None
    expired = CallContext(deadline=time.monotonic() - 1)
    assert expired.remaining() == 0 and expired.timeout(None) == 0


async def test_a_broken_listener_does_not_stop_the_others() -> None:
    wb = StaticWorkbench([])
    heard: list[str] = []

    async def broken() -> None:
        raise RuntimeError("listener bug")

    async def good() -> None:
        heard.append("good")

    wb.on_tools_changed(broken)
    unsubscribe = wb.on_tools_changed(good)
    await wb.notify_tools_changed()  # does not raise
    assert heard == ["good"]
    unsubscribe()
    await wb.notify_tools_changed()
    assert heard == ["good"]
