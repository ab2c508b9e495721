"""Global sandbox caps: how many containers may live at once, in total, by memory and per identity.

`Caps.resolve` is plain arithmetic; the rest runs real containers with caps of two or three, so
"over the cap" is a few containers away. Each test fails if its defence is taken out: the count
check in `_admit`, the pool's `room`, LRU reclaim, the busy check, the per-identity count and the
cleanup of a refused session id.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from sandbox import SandboxSettings, SandboxWorkbench
from sandbox.capacity import UNLIMITED_MEMORY_DEFAULT, Caps
from sandbox.container import OWNER, docker_client, project_containers
from sandbox.errors import SandboxError
from sandbox.workbench import RECLAIMED_NOTE
from workbench.cli.assembly import build_sources
from workbench.cli.config import parse_config
from workbench.core import CallContext, ToolResult

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

GIB = 1 << 30
MIB = 1 << 20
REFUSAL_SECONDS = 1.0
"""A refusal is bookkeeping only (no engine call): past a second it waited for something. The
milliseconds it takes are measured in bench/bench_sandbox.py, not asserted here."""


# --- Caps.resolve: the arithmetic ---------------------------------------------------------------


def test_budget_defaults_to_half_the_engine_memory() -> None:
    caps = Caps.resolve(SandboxSettings(memory="512m"), 24 * GIB)
    assert (caps.budget, caps.per_box, caps.total) == (12 * GIB, 512 * MIB, 24)
    assert caps.describe() == "24 sandboxes (the 12.0 GiB memory budget at 512 MiB each)"


def test_total_is_the_smaller_of_max_sandboxes_and_what_fits_in_the_budget() -> None:
    assert Caps.resolve(SandboxSettings(memory="512m", max_sandboxes=5), 24 * GIB).total == 5
    assert Caps.resolve(SandboxSettings(memory="512m", max_sandboxes=100), 24 * GIB).total == 24
    assert Caps.resolve(SandboxSettings(memory="256m", memory_budget="1g"), 24 * GIB).total == 4
    caps = Caps.resolve(SandboxSettings(memory="256m", memory_budget="1g", max_per_identity=2), 24 * GIB)
    assert caps.describe() == "4 sandboxes (the 1.0 GiB memory budget at 256 MiB each), 2 per identity"


def test_a_budget_smaller_than_one_sandbox_is_an_error_naming_both_keys() -> None:
    with pytest.raises(SandboxError) as e:
        Caps.resolve(SandboxSettings(memory="512m", memory_budget="256m"), 24 * GIB)
    assert "sandbox.memory_budget (256 MiB)" in str(e.value) and "sandbox.memory 512 MiB" in str(e.value)
    with pytest.raises(SandboxError, match="memory_budget"):  # the default budget too, on a tiny engine
        Caps.resolve(SandboxSettings(memory="512m"), 512 * MIB)


def test_without_a_memory_limit_the_count_is_the_default_or_max_sandboxes() -> None:
    caps = Caps.resolve(SandboxSettings(memory=""), 24 * GIB)
    assert (caps.total, caps.budget, caps.per_box) == (UNLIMITED_MEMORY_DEFAULT, None, None)
    assert Caps.resolve(SandboxSettings(memory="", max_sandboxes=3), 24 * GIB).total == 3


def test_the_config_caps_reach_the_sandbox_settings() -> None:
    # The per-identity cap is a [serve] key (identities are the server's), the others are [sandbox] keys.
    config = parse_config("[sandbox]\nmax_sandboxes = 5\nmemory_budget = '2g'\nreclaim_after = 7.5\n"
                          "[serve]\nmax_sandboxes_per_identity = 3\n")
    sandbox = build_sources(config).mounts["sandbox"].workbench
    assert isinstance(sandbox, SandboxWorkbench)
    s = sandbox.settings
    assert (s.max_per_identity, s.max_sandboxes, s.memory_budget, s.reclaim_after) == (3, 5, "2g", 7.5)
    default = build_sources(parse_config("[sandbox]\n")).mounts["sandbox"].workbench
    assert isinstance(default, SandboxWorkbench) and default.settings.max_per_identity == 8


# --- real containers ----------------------------------------------------------------------------


def engine_count() -> int:
    """Containers this test process has on the engine right now (what `docker ps` would show)."""
    return len(project_containers(docker_client(), owner=OWNER))


@asynccontextmanager
async def capped(**caps: Any) -> AsyncIterator[SandboxWorkbench]:
    """A SandboxWorkbench with small boxes (64 MiB) and the given caps; the pool off unless asked."""
    settings = SandboxSettings(memory="64m", timeout=10, **{"pool_size": 0, **caps})
    async with SandboxWorkbench(settings) as wb:
        assert wb.caps is not None, wb.health()
        yield wb


def caller(session: str, identity: str = "default") -> CallContext:
    return CallContext(session_id=session, identity=identity)


async def run(wb: SandboxWorkbench, session: str, code: str = "print(1)", identity: str = "default") -> ToolResult:
    with anyio.fail_after(30):
        return await wb.call_tool("run_python", {"code": code}, caller(session, identity))


async def refused(wb: SandboxWorkbench, session: str, identity: str = "default") -> str:
    """Ask for a new session that must be refused at once; the refusal's message."""
    started = time.perf_counter()
    with anyio.fail_after(5):  # a hang would be the bug: bounded, and timed below
        r = await wb.call_tool("run_python", {"code": "print(1)"}, caller(session, identity))
    elapsed = time.perf_counter() - started
    assert r.is_error, f"{session} was served: {r.text}"
    assert elapsed < REFUSAL_SECONDS, f"the refusal took {elapsed * 1000:.1f} ms"
    return r.text


def assert_nothing_pending(wb: SandboxWorkbench) -> None:
    """Refused or closed session ids leave no lock, no reservation and no owner entry behind."""
    assert wb._opening == {}
    assert not wb._admitting  # zero counts too: identities come from clients
    assert set(wb._owners) == set(wb._sessions)


async def wait_for(predicate: Callable[[], bool], seconds: float = 15) -> None:
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.02)


@pytest.mark.parametrize("pool_size", [0, 1])
async def test_n_sessions_are_served_and_the_next_is_refused_at_once_naming_the_cap(pool_size: int) -> None:
    async with capped(max_sandboxes=2, pool_size=pool_size) as wb:
        assert wb.caps is not None and wb.caps.total == 2
        for session in ("a", "b"):
            r = await run(wb, session)
            assert (r.text, r.is_error) == ("1", False)
        message = await refused(wb, "c")
        assert "no sandbox is free" in message and "max_sandboxes" in message and "2 sandboxes" in message
        for i in range(50):  # client-chosen ids: none may leave anything behind
            await refused(wb, f"probe-{i}")
        assert_nothing_pending(wb)
        assert set(wb._sessions) == {"a", "b"}
        assert engine_count() <= 2
        assert (await run(wb, "a")).text == "1"  # the sessions that hold the places still work


async def test_the_memory_budget_caps_like_max_sandboxes() -> None:
    async with capped(memory_budget="150m") as wb:  # two 64 MiB boxes fit, a third does not
        assert wb.caps is not None and wb.caps.total == 2
        assert not (await run(wb, "a")).is_error and not (await run(wb, "b")).is_error
        assert "150 MiB memory budget at 64 MiB each" in await refused(wb, "c")


async def test_closing_a_session_frees_its_place() -> None:
    async with capped(max_sandboxes=2) as wb:
        await run(wb, "a")
        await run(wb, "b")
        await refused(wb, "c")
        await wb.close_session("a")
        r = await run(wb, "c")
        assert (r.text, r.is_error) == ("1", False)
        assert_nothing_pending(wb)


async def test_pooled_containers_count_against_the_cap() -> None:
    # The pool would hold three; under a cap of two it fills only into free room, before and after takes.
    async with capped(max_sandboxes=2, pool_size=3) as wb:
        assert wb.caps is not None
        seen: list[tuple[int, int]] = []  # (wb.live, engine count) samples

        async def watch() -> None:
            while True:
                seen.append((wb.live, await anyio.to_thread.run_sync(engine_count)))
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            assert wb._pool is not None
            await wait_for(lambda: wb._pool is not None and wb._pool.ready == 2)
            await anyio.sleep(0.3)  # room for a third start, if the pool ignored the cap
            assert wb._pool.held == 2 and engine_count() == 2
            async with anyio.create_task_group() as openers:  # both at once, from the pool
                for session in ("a", "b"):
                    openers.start_soon(run, wb, session)
            await anyio.sleep(0.3)  # room for a refill, if the pool ignored the cap
            assert wb._pool.held == 0 and len(wb._sessions) == 2
            await refused(wb, "c")
            tg.cancel_scope.cancel()
        assert seen and max(live for live, _ in seen) <= wb.caps.total, seen
        assert max(engine for _, engine in seen) <= wb.caps.total, seen
        assert engine_count() == 2


async def test_the_least_recently_used_idle_session_is_reclaimed_and_told() -> None:
    async with capped(max_sandboxes=2, reclaim_after=0.3) as wb:
        await run(wb, "old", "x = 'old'")
        await run(wb, "recent", "x = 'recent'")
        await run(wb, "old")  # warm runs, milliseconds apart (the cold starts above are not)
        await run(wb, "recent")
        assert "idle for 0.3 s" in await refused(wb, "new")  # neither has been idle long enough yet
        await anyio.sleep(0.4)
        await run(wb, "recent", "print(x)")  # now "old" is the least recently used
        await anyio.sleep(0.4)
        r = await run(wb, "new")
        assert (r.text, r.is_error) == ("1", False)
        assert set(wb._sessions) == {"recent", "new"}  # "old" made room, not "recent"
        assert (await run(wb, "recent", "print(x)")).text == "recent"

        await anyio.sleep(0.4)
        r = await run(wb, "old", "print('back')")  # a fresh sandbox: works, and says what happened
        assert not r.is_error and r.text.startswith("back") and RECLAIMED_NOTE in r.text
        r = await run(wb, "old", "print(x)")
        assert "NameError" in r.text and RECLAIMED_NOTE not in r.text  # said once; the old state is gone
        assert engine_count() <= 2
        assert_nothing_pending(wb)


async def test_a_busy_session_is_never_reclaimed() -> None:
    async with capped(max_sandboxes=1, reclaim_after=0.3) as wb:
        await run(wb, "busy")
        await anyio.sleep(0.4)  # idle long enough before its run starts: only `busy` protects it now
        async with anyio.create_task_group() as tg:
            results: list[ToolResult] = []

            async def long_run() -> None:
                results.append(await run(wb, "busy", "import time; time.sleep(1.5); print('done')"))

            tg.start_soon(long_run)
            box = wb._sessions["busy"]
            await wait_for(lambda: box.busy > 0, 5)
            await anyio.sleep(0.4)
            assert "no sandbox is free" in await refused(wb, "intruder")
        assert [r.text for r in results] == ["done"]  # the run finished, in the same sandbox
        assert wb._sessions["busy"] is box


async def test_the_per_identity_cap_refuses_that_identity_only() -> None:
    async with capped(max_sandboxes=3, max_per_identity=1) as wb:
        assert not (await run(wb, "alice-1", identity="alice")).is_error
        message = await refused(wb, "alice-2", identity="alice")
        assert "max_sandboxes_per_identity" in message and "1 sandboxes" in message
        r = await run(wb, "bob-1", identity="bob")  # room remains for everyone else
        assert (r.text, r.is_error) == ("1", False)
        assert not (await run(wb, "alice-1", identity="alice")).is_error  # her own session still works
        await wb.close_session("alice-1")
        assert not (await run(wb, "alice-2", identity="alice")).is_error
        assert_nothing_pending(wb)
