"""Who may call, from where, with what: bearer auth, Host/Origin checks, body size, the expose
allowlist, refusing to listen unprotected — and the health endpoints."""

from __future__ import annotations

import httpx2
import mcp.types as mt
import pytest
from mcp.shared.exceptions import MCPError
from serve_toolkit import ServeBench
from serving import http_client, serving

from servers import ServeError, ServeSettings
from workbench import CompositeWorkbench, Health, StaticWorkbench
from workbench.cli.config import ServeConfig
from workbench.core import first_error

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_bearer_token_refused_without_and_accepted_with(mode: str) -> None:
    settings = ServeSettings(transport="http", auth_token="s3cret")
    async with serving(ServeBench(), settings) as served:
        async with httpx2.AsyncClient() as http:
            missing = await http.post(served.url, json=INIT, headers=HEADERS)
            wrong = await http.post(served.url, json=INIT, headers={**HEADERS, "Authorization": "Bearer nope"})
            health = await http.get(f"{served.base}/healthz")
            # Every method on the MCP endpoint needs the token: the GET event stream and DELETE too.
            stream = await http.get(served.url, headers={"Accept": "text/event-stream"})
            delete = await http.delete(served.url, headers={"Mcp-Session-Id": "guessed"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in missing.json()["error_description"]
        assert wrong.status_code == 401 and stream.status_code == 401 and delete.status_code == 401
        assert health.status_code == 200  # probes need no token
        async with httpx2.AsyncClient() as http:
            anonymous = (await http.get(f"{served.base}/readyz")).json()
            insider = (await http.get(f"{served.base}/readyz", headers={"Authorization": "Bearer s3cret"})).json()
        assert anonymous["sources"] == {"testbench": {"state": "up"}} and "sessions" not in anonymous
        assert insider["sources"] == {"testbench": {"state": "up", "detail": ""}} and insider["sessions"] == 0

        with pytest.raises(BaseExceptionGroup) as refused:  # the SDK turns the 401 into an error response
            async with http_client(served.url, mode=mode) as client:
                await client.list_tools()
        assert isinstance(first_error(refused.value), MCPError), refused.value

        async with http_client(served.url, mode=mode, headers={"Authorization": "Bearer s3cret"}) as client:
            assert (await client.call_tool("echo", {"text": "in"})).content[0].text == "in"


async def test_bad_origin_and_bad_host_are_refused() -> None:
    async with serving(ServeBench()) as served, httpx2.AsyncClient() as http:
        evil = await http.post(served.url, json=INIT, headers={**HEADERS, "Origin": "http://evil.example"})
        rebound = await http.post(served.url, json=INIT, headers={**HEADERS, "Host": "evil.example"})
        local = await http.post(served.url, json=INIT, headers={**HEADERS, "Origin": "http://localhost:3000"})
    assert evil.status_code == 403
    assert rebound.status_code == 421
    assert local.status_code == 200


async def test_oversized_request_is_refused() -> None:
    settings = ServeSettings(transport="http", max_request_bytes=10_000)
    async with serving(ServeBench(), settings) as served, httpx2.AsyncClient() as http:
        big = {**INIT, "params": {**INIT["params"], "padding": "x" * 20_000}}
        response = await http.post(served.url, json=big, headers=HEADERS)
    assert response.status_code == 413


def test_refuses_to_listen_on_the_network_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServeError, match="refusing to serve on 0.0.0.0 without authentication"):
        ServeSettings(transport="http", host="0.0.0.0").check()
    ServeSettings(transport="http", host="0.0.0.0", auth_token="t", allowed_hosts=["tools.example"]).check()
    ServeSettings(transport="stdio", host="0.0.0.0").check()  # stdio never listens

    monkeypatch.setenv("WORKBENCH_TOKEN", "from-env")
    assert ServeSettings.from_config(ServeConfig(transport="http", host="0.0.0.0")).auth_token == "from-env"


def test_token_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = tmp_path / "token"
    token.write_text("from-file\n")
    cfg = ServeConfig(auth_token_env="NO_SUCH_VAR_FOR_TEST", auth_token_file=str(token), background=["slow"])
    settings = ServeSettings.from_config(cfg, environ={})
    assert settings.auth_token == "from-file" and settings.background == ["slow"]
    with pytest.raises(ServeError, match="cannot read"):
        ServeSettings.from_config(ServeConfig(auth_token_env=None, auth_token_file=str(tmp_path / "none")), environ={})


async def test_expose_allowlist_hides_tools_from_listing_and_calling(mode: str) -> None:
    settings = ServeSettings(transport="http", expose=["add", "e*"])
    async with serving(ServeBench(), settings) as served, http_client(served.url, mode=mode) as client:
        assert sorted(t.name for t in (await client.list_tools()).tools) == ["add", "echo"]
        with pytest.raises(MCPError) as hidden:
            await client.call_tool("fail", {})
        assert hidden.value.code == mt.INVALID_PARAMS and "fail" in hidden.value.message
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("slo", {})
        assert "slow" not in unknown.value.message  # suggestions never name hidden tools
        assert (await client.list_prompts()).prompts == []  # prompts follow the same allowlist


class Down(StaticWorkbench):
    def health(self) -> Health:
        return Health("down", "upstream unreachable")


async def test_health_and_readiness_per_source() -> None:
    composite = CompositeWorkbench({"bench": ServeBench(), "flaky": Down([], name="flaky")})
    async with serving(composite) as served, httpx2.AsyncClient() as http:
        assert (await http.get(f"{served.base}/healthz")).json() == {"status": "ok"}
        ready = await http.get(f"{served.base}/readyz")
        assert ready.status_code == 200  # one source down: the rest still serve
        body = ready.json()
        assert body["sources"]["bench"]["state"] == "up"
        assert body["sources"]["flaky"] == {"state": "down", "detail": "upstream unreachable"}

        served.server.draining = True
        draining = await http.get(f"{served.base}/readyz")
        assert draining.status_code == 503 and draining.json()["status"] == "draining"

    async with serving(Down([], name="alone")) as served, httpx2.AsyncClient() as http:
        assert (await http.get(f"{served.base}/readyz")).status_code == 503


def test_host_and_origin_allowlists() -> None:
    local = ServeSettings(transport="http").transport_security()
    assert local.enable_dns_rebinding_protection and "localhost:*" in local.allowed_hosts
    named = ServeSettings(transport="http", host="10.1.2.3", auth_token="t", allowed_origins=["https://app.example"])
    security = named.transport_security()
    assert "10.1.2.3:*" in security.allowed_hosts and security.allowed_origins == ["https://app.example"]
    everywhere = ServeSettings(transport="http", host="0.0.0.0", auth_token="t", allowed_hosts=["tools.example:*"])
    assert everywhere.transport_security().allowed_hosts == ["tools.example:*"]
    # Checks off only when the config says so, with '*' (bound to every interface without names is refused).
    opted_out = ServeSettings(transport="http", host="0.0.0.0", auth_token="t", allowed_hosts=["*"])
    opted_out.check()
    assert not opted_out.transport_security().enable_dns_rebinding_protection


async def test_a_busy_port_is_a_clear_error() -> None:
    import socket

    from servers import serve_workbench

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = ServeSettings(transport="http", port=taken.getsockname()[1], log_json=False)
        with pytest.raises(ServeError, match="is the port in use"):
            async with ServeBench() as bench:
                await serve_workbench(bench, settings)
