"""`[serve.limits]`: each identity's tool-call rate and concurrency (an `is_error` naming the limit
and when to retry) and its HTTP request rate (429 with Retry-After before dispatch) — counted per
identity, so one person's burst never refuses another's call."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from serve_toolkit import ServeBench
from serving import http_client, serving

import servers.rate_limit as rate_limit
from servers import ServeSettings
from servers.audit import REFUSED
from servers.rate_limit import RETRY_AFTER, LimitsConfig, RateLimited, TokenBuckets
from workbench import CallContext, StaticWorkbench, ToolResult

pytestmark = pytest.mark.anyio

ALICE_TOKEN, BOB_TOKEN = "alice-" + "a" * 26, "bob-" + "b" * 28
ALICE, BOB = {"Authorization": f"Bearer {ALICE_TOKEN}"}, {"Authorization": f"Bearer {BOB_TOKEN}"}


def settings(**limits: Any) -> ServeSettings:
    return ServeSettings(transport="http", tokens={"alice": ALICE_TOKEN, "bob": BOB_TOKEN},
                         limits=LimitsConfig(**limits))


# ---- the bucket ---------------------------------------------------------------------------


def test_a_bucket_gives_its_burst_then_says_how_long_to_wait() -> None:
    buckets = TokenBuckets(per_minute=6, capacity=2)
    assert buckets.take("alice") == 0 and buckets.take("alice") == 0
    wait = buckets.take("alice")
    assert 9 < wait <= 10  # one token every 10 s
    assert buckets.take("bob") == 0  # bob has a bucket of his own
    buckets._buckets["alice"].updated -= 10  # ten seconds pass
    assert buckets.take("alice") == 0
    assert buckets.take("alice") > 0


def test_idle_buckets_are_dropped_so_the_table_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limit, "MAX_TRACKED", 3)
    buckets = TokenBuckets(per_minute=60)
    buckets.take("busy")
    for i in range(10):
        buckets.take(f"idle-{i}")
        buckets._buckets[f"idle-{i}"].updated -= 120  # long idle: refilled
    assert len(buckets._buckets) <= 4
    assert "busy" in buckets._buckets  # a bucket still refilling is kept: forgetting it would reset its limit


# ---- the wrapper, in process ----------------------------------------------------------------


class Gate(StaticWorkbench):
    """One tool that waits until released, to hold calls running."""

    def __init__(self) -> None:
        super().__init__(name="gate")
        self.release = anyio.Event()
        self.running = 0

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        ctx: CallContext | None = None) -> ToolResult:
        self.running += 1
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return ToolResult.from_text("done")


async def test_concurrency_is_capped_per_identity_and_spends_no_tokens() -> None:
    inner = Gate()
    wb = RateLimited(inner, LimitsConfig(max_concurrent_calls=2, calls_per_minute=3))
    alice = CallContext(identity="alice")
    results: list[ToolResult] = []
    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(lambda: _collect(wb, alice, results))
        with anyio.fail_after(5):
            while inner.running < 2:
                await anyio.sleep(0.01)
        refused = await wb.call_tool("t", {}, alice)
        assert refused.is_error and "already has 2 tool calls running" in refused.text
        assert refused.meta == {REFUSED: "rate", RETRY_AFTER: 1}
        assert inner.running == 2  # the refused call never reached the tool
        # another identity is not held up by alice's calls
        tg.start_soon(lambda: _collect(wb, CallContext(identity="bob"), results))
        with anyio.fail_after(5):
            while inner.running < 3:
                await anyio.sleep(0.01)
        inner.release.set()
    assert [r.text for r in results] == ["done"] * 3
    assert not wb.running  # nothing left counted once the calls are over
    # the refused call took no token: alice still has one of her three
    assert not (await _call_now(wb, alice)).is_error


async def _collect(wb: RateLimited, ctx: CallContext, into: list[ToolResult]) -> None:
    into.append(await wb.call_tool("t", {}, ctx))


async def _call_now(wb: RateLimited, ctx: CallContext) -> ToolResult:
    inner = wb.inner
    assert isinstance(inner, Gate)
    inner.release.set()
    return await wb.call_tool("t", {}, ctx)


# ---- through the server ---------------------------------------------------------------------


async def test_over_the_call_rate_a_call_is_told_when_to_retry(mode: str) -> None:
    async with serving(ServeBench(), settings(calls_per_minute=3)) as served, \
            http_client(served.url, mode=mode, headers=ALICE) as alice, \
            http_client(served.url, mode=mode, headers=BOB) as bob:
        for _ in range(3):
            assert not (await alice.call_tool("echo", {"text": "hi"})).is_error
        refused = await alice.call_tool("echo", {"text": "hi"})
        assert refused.is_error
        text = refused.content[0].text
        assert "'alice' may make 3 tool calls a minute (serve.limits.calls_per_minute); retry in" in text
        assert refused.meta is not None and refused.meta[REFUSED] == "rate"
        assert 1 <= refused.meta[RETRY_AFTER] <= 20 and f"retry in {refused.meta[RETRY_AFTER]} s" in text
        assert (await bob.call_tool("echo", {"text": "hi"})).content[0].text == "hi"  # bob's budget is his own


async def test_concurrency_counts_every_session_of_an_identity() -> None:
    bench = ServeBench()
    async with serving(bench, settings(max_concurrent_calls=1)) as served, \
            http_client(served.url, mode="legacy", headers=ALICE) as first, \
            http_client(served.url, mode="legacy", headers=ALICE) as second, \
            http_client(served.url, mode="legacy", headers=BOB) as bob:
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.call_tool, "slow", {"seconds": 30, "tag": "held"})
            with anyio.fail_after(10):
                while "held" not in bench.running:
                    await anyio.sleep(0.02)
            refused = await second.call_tool("echo", {"text": "x"})
            assert refused.is_error and "max_concurrent_calls = 1" in refused.content[0].text
            assert not (await bob.call_tool("echo", {"text": "x"})).is_error
            tg.cancel_scope.cancel()


async def test_over_the_request_rate_http_answers_429_with_retry_after() -> None:
    async with serving(ServeBench(), settings(requests_per_minute=2)) as served:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        head = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                "Content-Type": "application/json"}
        async with httpx2.AsyncClient(timeout=10) as http:
            statuses = [(await http.post(served.url, json=body, headers={**head, **ALICE})).status_code
                        for _ in range(2)]
            over = await http.post(served.url, json=body, headers={**head, **ALICE})
            other = await http.post(served.url, json=body, headers={**head, **BOB})
        assert statuses != [429, 429] and 429 not in statuses
        assert over.status_code == 429
        assert 1 <= int(over.headers["Retry-After"]) <= 30
        assert "requests_per_minute" in over.json()["error"]["message"]
        assert other.status_code != 429


async def test_without_limits_nothing_is_refused() -> None:
    async with serving(ServeBench(), settings()) as served, http_client(served.url, headers=ALICE) as alice:
        for _ in range(30):
            assert not (await alice.call_tool("echo", {"text": "x"})).is_error


async def test_an_sdk_client_over_the_request_rate_gets_the_reason_not_a_hang() -> None:
    from mcp.shared.exceptions import MCPError

    async with serving(ServeBench(), settings(requests_per_minute=6)) as served, \
            http_client(served.url, mode="legacy", headers=ALICE) as alice:
        with anyio.fail_after(30), pytest.raises(MCPError, match=r"too many requests: 6 a minute .* retry in \d+ s"):
            for _ in range(10):
                await alice.call_tool("echo", {"text": "x"})
