"""Studio's login and `/mcp` count wrong tokens in one budget per client address (the verifier's,
`servers.auth.FailedAuthentications`): guesses spread over both doors get one budget, not two, so
the console is no second way to guess. Real HTTP on loopback; 127.0.0.2 is another address."""

from __future__ import annotations

import httpx2
import pytest
from studio_harness import studio_http

from workbench import CompositeWorkbench, StaticWorkbench

pytestmark = pytest.mark.anyio
ALICE = "alice-" + "a" * 26
BUDGET = 4
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def hello() -> str:
    """Say hello."""
    return "hello"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_guesses_at_mcp_and_at_the_login_form_share_one_budget() -> None:
    workbench = CompositeWorkbench({"fn": StaticWorkbench([hello], name="fn")})
    async with studio_http(workbench, token=None, tokens={"alice": {"token": ALICE}},
                           failed_auth_per_minute=BUDGET) as studio:
        http = studio.http
        for i in range(BUDGET // 2):
            assert (await http.post("/mcp", json=PING, headers={**MCP_HEADERS, **bearer(f"mcp-{i}")})).status_code == 401
        for i in range(BUDGET - BUDGET // 2):
            form = await http.post("/ui/login", data={"token": f"form-{i}", "next": "/ui/tools"})
            assert form.status_code == 401
        # The budget is spent, whichever door each guess used: both doors refuse the right token now.
        assert (await http.post("/ui/login", data={"token": ALICE, "next": "/ui/tools"})).status_code == 429
        assert (await http.get("/ui/api/session", headers=bearer(ALICE))).status_code == 429
        refused = await http.post("/mcp", json=PING, headers={**MCP_HEADERS, **bearer(ALICE)})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1

        transport = httpx2.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx2.AsyncClient(base_url=str(http.base_url), transport=transport, timeout=30) as other:
            assert (await other.get("/ui/api/session", headers=bearer(ALICE))).json()["identity"] == "alice"
