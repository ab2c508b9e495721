"""A bearer-token guesser against `/mcp` (real server, real HTTP on loopback; a second client
address is 127.0.0.2, all of 127/8 being the loopback interface): past
`serve.failed_auth_per_minute` wrong tokens an address gets 429 with Retry-After and the 401's
challenge, before its token is looked at; right tokens and requests without one are never
counted; the table of guessers stays bounded whatever addresses they use; and X-Forwarded-For
picks the address only when the peer is a configured trusted proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from pydantic import ValidationError
from serve_toolkit import ServeBench
from serving import Served, free_port, serving

import servers.auth
from servers import ServeSettings
from servers.auth import FAILED_AUTHENTICATIONS_PER_MINUTE, FailedAuthentications, TooManyFailures, guesser_of
from servers.oauth_resource import OAuthConfig

pytestmark = pytest.mark.anyio

ALICE = "alice-" + "a" * 26
BUDGET = 4
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-11-25"}


def bearer(token: str, **more: str) -> dict[str, str]:
    return {**HEADERS, "Authorization": f"Bearer {token}", **more}


@asynccontextmanager
async def guarded(**settings: object) -> AsyncIterator[Served]:
    serve = ServeSettings(transport="http", tokens={"alice": ALICE}, failed_auth_per_minute=BUDGET,
                          **settings)  # type: ignore[arg-type]  # test-chosen fields
    async with serving(ServeBench(), serve) as served:
        yield served


@asynccontextmanager
async def client_from(address: str) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(local_address=address), timeout=10) as http:
        yield http


async def post(http: httpx2.AsyncClient, served: Served, headers: dict[str, str]) -> httpx2.Response:
    return await http.post(served.url, json=INIT, headers=headers)


async def test_a_guesser_is_refused_before_its_token_is_checked_and_others_are_not() -> None:
    async with guarded() as served, client_from("127.0.0.1") as http:
        for _ in range(BUDGET + 3):  # right tokens are never counted
            assert (await http.get(f"{served.base}/readyz", headers=bearer(ALICE))).status_code == 200
        for _ in range(3 * BUDGET):  # nor are requests without a token (an OAuth client's first request)
            assert (await post(http, served, HEADERS)).status_code == 401
        for i in range(BUDGET):
            assert (await post(http, served, bearer(f"guess-{i}"))).status_code == 401
        refused = await post(http, served, bearer("guess-next"))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["error"] == "too_many_failed_attempts"
        assert "serve.failed_auth_per_minute" in refused.json()["error_description"]
        # Past the budget the right token is not even looked at: a guess cannot be told right from wrong.
        assert (await post(http, served, bearer(ALICE))).status_code == 429

        async with client_from("127.0.0.2") as other:  # another address has its own budget
            assert (await post(other, served, bearer(ALICE))).status_code == 200


async def test_the_health_probe_is_no_oracle_past_the_budget() -> None:
    """`/readyz` shows a valid token's holder more: a wrong token there is a guess like any other."""
    async with guarded() as served, client_from("127.0.0.1") as http:
        probe = f"{served.base}/readyz"
        assert "detail" in (await http.get(probe, headers=bearer(ALICE))).json()
        for i in range(BUDGET):
            assert "detail" not in (await http.get(probe, headers=bearer(f"guess-{i}"))).json()
        past = await http.get(probe, headers=bearer(ALICE))
        assert past.status_code == 200 and "detail" not in past.json()  # still open, but as to anyone
        assert (await post(http, served, bearer(ALICE))).status_code == 429  # the probe's guesses counted


async def test_oauth_clients_still_find_the_metadata_when_refused() -> None:
    port = free_port()
    oauth = OAuthConfig(issuer="http://127.0.0.1:9", resource=f"http://127.0.0.1:{port}/mcp",
                        required_scopes=["tools:call"])
    settings = ServeSettings(transport="http", oauth=oauth, tokens={"alice": ALICE}, failed_auth_per_minute=BUDGET)
    async with serving(ServeBench(), settings, port=port) as served, client_from("127.0.0.1") as http:
        for i in range(BUDGET):
            assert (await post(http, served, bearer(f"guess-{i}"))).status_code == 401
        refused = await post(http, served, bearer("guess-next"))
        assert refused.status_code == 429
        challenge = refused.headers["WWW-Authenticate"]
        assert f'resource_metadata="{oauth.metadata_url()}"' in challenge and 'scope="tools:call"' in challenge
        metadata = await http.get(oauth.metadata_url())  # and can still read it
        assert metadata.status_code == 200 and metadata.json()["resource"] == oauth.resource


async def test_an_authorization_server_that_cannot_be_asked_locks_nobody_out() -> None:
    """Opaque tokens while introspection is down: refused, but no guess was judged wrong, so a
    client retrying its good token through the outage is not turned into a guesser."""
    port = free_port()
    oauth = OAuthConfig(issuer="http://127.0.0.1:9", resource=f"http://127.0.0.1:{port}/mcp",
                        introspection_endpoint="http://127.0.0.1:9/introspect", token_cache_seconds=0)
    settings = ServeSettings(transport="http", oauth=oauth, failed_auth_per_minute=BUDGET)
    async with serving(ServeBench(), settings, port=port) as served, client_from("127.0.0.1") as http:
        for _ in range(3 * BUDGET):
            refused = await post(http, served, bearer("opaque-token-of-a-real-user"))
            assert refused.status_code == 401, refused.text


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    async with guarded() as served, client_from("127.0.0.1") as http:
        for i in range(BUDGET):  # a new X-Forwarded-For each time: still one address, the peer's
            assert (await post(http, served, bearer(f"guess-{i}", **{"X-Forwarded-For": f"203.0.113.{i}"}))
                    ).status_code == 401
        spoofed = await post(http, served, bearer(ALICE, **{"X-Forwarded-For": "203.0.113.200"}))
        assert spoofed.status_code == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() -> None:
    async with guarded(trusted_proxies=["127.0.0.2"]) as served:
        async with client_from("127.0.0.2") as proxy:
            for i in range(BUDGET):
                assert (await post(proxy, served, bearer(f"guess-{i}", **{"X-Forwarded-For": "203.0.113.7"}))
                        ).status_code == 401
            assert (await post(proxy, served, bearer(ALICE, **{"X-Forwarded-For": "203.0.113.7"}))).status_code == 429
            # Another client behind the same proxy is not held back by the guesser's failures.
            assert (await post(proxy, served, bearer(ALICE, **{"X-Forwarded-For": "203.0.113.8"}))).status_code == 200

        async with client_from("127.0.0.1") as direct:  # not the proxy: its X-Forwarded-For is not believed
            for i in range(BUDGET):
                assert (await post(direct, served, bearer(f"guess-{i}", **{"X-Forwarded-For": "203.0.113.8"}))
                        ).status_code == 401
            assert (await post(direct, served, bearer(ALICE))).status_code == 429  # counted as 127.0.0.1
        async with client_from("127.0.0.2") as proxy:  # so it could not spend 203.0.113.8's budget
            assert (await post(proxy, served, bearer(ALICE, **{"X-Forwarded-For": "203.0.113.8"}))).status_code == 200


@pytest.mark.parametrize("entry", ["*", "proxy.example.com", "10.0.0.300"])
def test_trusted_proxies_must_be_addresses(entry: str) -> None:
    with pytest.raises(ValidationError, match="not an IP address or network"):
        ServeSettings(transport="http", trusted_proxies=[entry])
    assert ServeSettings(trusted_proxies=["10.0.0.5", "10.0.0.0/24", "fd00::/8"]).trusted_proxies


def test_the_default_budget_is_the_documented_one() -> None:
    assert ServeSettings().failed_auth_per_minute == FAILED_AUTHENTICATIONS_PER_MINUTE == 10


# ---- the table itself: keys, forgiveness, bound (a clock the test turns) ----------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(servers.auth.time, "monotonic", clock)
    yield clock


def refused(failures: FailedAuthentications, host: str) -> int | None:
    try:
        failures.check(host)
    except TooManyFailures as e:
        return e.retry_after
    return None


def test_an_ipv6_guesser_is_counted_by_its_64(clock: Clock) -> None:
    assert guesser_of("2001:db8:1:2::1") == guesser_of("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert guesser_of("2001:db8:1:3::1") != guesser_of("2001:db8:1:2::1")
    assert guesser_of("::ffff:192.0.2.1") == guesser_of("192.0.2.1") == "192.0.2.1"
    failures = FailedAuthentications(3)
    for i in range(3):
        failures.failed(f"2001:db8:1:2::{i + 1:x}")
    assert refused(failures, "2001:db8:1:2::abcd") == 20  # 60 s / 3 a minute
    assert refused(failures, "2001:db8:1:3::1") is None


def test_failures_are_forgiven_at_the_per_minute_rate(clock: Clock) -> None:
    failures = FailedAuthentications(6)
    for _ in range(6):
        failures.failed("192.0.2.1")
    assert refused(failures, "192.0.2.1") == 10
    clock.now += 9.9
    assert refused(failures, "192.0.2.1") == 1
    clock.now += 0.1
    assert refused(failures, "192.0.2.1") is None  # one more try
    failures.failed("192.0.2.1")
    assert refused(failures, "192.0.2.1") == 10
    clock.now += 60
    assert refused(failures, "192.0.2.1") is None
    assert not failures._owing  # forgiven entries are dropped: the table does not keep every address it saw


def test_the_table_stays_bounded_and_many_addresses_share_one_budget(clock: Clock) -> None:
    failures = FailedAuthentications(2, max_addresses=100)
    for i in range(100):
        failures.failed(f"10.0.{i // 256}.{i % 256}")
    # The table is full of addresses still owing: every new one is counted in one shared slot.
    for i in range(10_000):
        host = f"2001:db8:{i:x}::1"
        if refused(failures, host) is None:
            failures.failed(host)
    assert len(failures._owing) <= 101  # the 100 addresses and the shared slot, not 10 100
    assert refused(failures, "2001:db8:ffff::1") is not None  # a spread-out guesser got 2 tries, not 20 000
    assert refused(failures, "10.0.0.5") is None  # a tracked address keeps its own budget

    clock.now += 120  # all forgiven: a newcomer's failure makes room for its own entry again
    failures.failed("198.51.100.1")
    assert refused(failures, "198.51.100.1") is None and refused(failures, "2001:db8:ffff::1") is None
    assert "198.51.100.1" in failures._owing
