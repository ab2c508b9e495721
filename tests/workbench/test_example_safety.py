"""The example config is what users copy and serve, so nothing it serves may reach the host:
no tool fetches a URL from this machine (SSRF around the sandbox's "no network"), none reads
its environment or files. Served the way `workbench serve` serves it (`build_workbench` with
client relaying, `create_app`, real HTTP), driven by the official MCP client. The sandbox is
switched off: these tests are about the tools in front of it, and stay fast without Docker.

Also: the numeric arguments of the tools we define (the demo server, agents as tools) refuse
"nan", "inf" and negative values with a validation error, not a traceback.
"""

from __future__ import annotations

import http.server
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import Tool as ToolSpec

from servers import ServeSettings
from workbench.agents.tool import INPUT_SCHEMA as AGENT_INPUT_SCHEMA
from workbench.cli.assembly import build_workbench
from workbench.cli.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "workbench.toml"
DEMO_SERVER = ROOT / "examples" / "servers" / "demo_server.py"
sys.path.insert(0, str(ROOT / "tests" / "servers"))
from serving import serving  # noqa: E402 — the servers tests' harness: uvicorn exactly as `workbench serve` runs it

pytestmark = pytest.mark.anyio

# The audit of @modelcontextprotocol/server-everything (dist/tools/*.js), tool by tool. A new
# release that adds a tool fails `test_served_tools_are_audited` until someone reads it.
EVERYTHING_REACHES_HOST = {
    "gzip-file-as-resource": "fetch()es any http(s) URL from the host",
    "get-env": "returns the server process's environment",
    "get-roots-list": "shows the first caller's roots (cached on the shared upstream session) to every caller",
}
EVERYTHING_CLIENT_DEMOS = {
    "trigger-elicitation-request", "trigger-elicitation-request-async", "trigger-url-elicitation",
    "trigger-sampling-request", "trigger-sampling-request-async", "trigger-long-running-operation",
    "toggle-simulated-logging", "toggle-subscriber-updates", "simulate-research-query",
}
"""Not a way into the host, but demos of one directly connected client's features: excluded too."""
EVERYTHING_SAFE = {
    "echo", "get-annotated-message", "get-resource-links", "get-resource-reference",
    "get-structured-content", "get-sum", "get-tiny-image",
}
"""Return fixed or argument-derived data; touch no network, file or environment of the host."""


# ---- a loopback-only service holding a secret -------------------------------------------------


class _SecretService:
    """An HTTP server on 127.0.0.1 that answers every GET with a secret and counts the requests:
    the kind of thing (an admin API, cloud metadata, our own /readyz) SSRF is after."""

    def __init__(self) -> None:
        self.secret = f"loopback-secret-{secrets.token_hex(8)}"
        self.requests: list[str] = []
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.requests.append(self.path)
                body = service.secret.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/secret"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def secret_service() -> Iterator[_SecretService]:
    with _SecretService() as service:
        yield service


# ---- the example, served as `workbench serve` serves it ---------------------------------------


def _example_without_sandbox() -> Config:
    config = load_config(EXAMPLE)
    return config.model_copy(update={"sandbox": config.sandbox.model_copy(update={"enabled": False})})


@asynccontextmanager
async def _served_example() -> AsyncIterator[Client]:
    """The example config behind real streamable HTTP (as `workbench serve` runs it), and a client."""
    config = _example_without_sandbox()
    settings = ServeSettings.from_config(config.serve.model_copy(update={"transport": "http"}))
    # relay_client_requests=True as in `workbench serve`: upstreams then see sampling, elicitation
    # and roots support and register the tools that need them (get-roots-list among them).
    async with serving(build_workbench(config, relay_client_requests=True), settings) as served:
        async with Client(served.url) as client:
            yield client


def _probe_arguments(spec: ToolSpec, url: str) -> dict[str, Any]:
    """Arguments for `spec` where every free-text field is the URL: a tool that fetches what it
    is given, under whatever argument name, fetches it."""
    args: dict[str, Any] = {}
    for name, prop in (spec.input_schema.get("properties") or {}).items():
        kind = prop.get("type")
        if "enum" in prop:
            args[name] = prop["enum"][0]
        elif kind == "string":
            args[name] = url
        elif kind in ("number", "integer"):
            args[name] = max(1, prop.get("minimum", 1))
        elif kind == "boolean":
            args[name] = False
    return args


@pytest.mark.npm
async def test_no_served_tool_fetches_a_loopback_url(secret_service: _SecretService) -> None:
    async with _served_example() as client:
        specs = (await client.list_tools()).tools
        assert any(s.name.startswith("everything__") for s in specs), "the everything server did not start"
        for spec in specs:
            try:
                with anyio.fail_after(30):
                    result = await client.call_tool(spec.name, _probe_arguments(spec, secret_service.url))
            except MCPError:  # refused arguments are fine; only a fetch is not
                continue
            assert secret_service.secret not in result.model_dump_json(), f"{spec.name} returned the loopback secret"
    assert secret_service.requests == [], "a served tool fetched a loopback URL from the host"


@pytest.mark.npm
async def test_gzip_file_as_resource_is_not_served(secret_service: _SecretService) -> None:
    async with _served_example() as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "everything__gzip-file-as-resource" not in names
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("everything__gzip-file-as-resource",
                                   {"data": secret_service.url, "outputType": "resource"})
    assert secret_service.requests == []


@pytest.mark.npm
async def test_served_tools_are_audited() -> None:
    async with _served_example() as client:
        names = {t.name for t in (await client.list_tools()).tools}
    upstream = {n.removeprefix("everything__") for n in names if n.startswith("everything__")}
    assert upstream, "the everything server did not start"
    assert not upstream & EVERYTHING_REACHES_HOST.keys(), "a tool that reaches the host is served"
    assert not upstream & EVERYTHING_CLIENT_DEMOS
    assert upstream <= EVERYTHING_SAFE, f"not audited yet, read its source first: {sorted(upstream - EVERYTHING_SAFE)}"


# ---- numeric arguments of the tools we define ---------------------------------------------------

BAD_NUMBERS: list[object] = ["nan", "inf", "-inf", -1]
"""Pydantic's lax mode would turn the strings into floats; -1 is a negative size or duration."""


@asynccontextmanager
async def _demo_server() -> AsyncIterator[Client]:
    # One server per test, not per value: closing a stdio server costs the SDK ~2 s.
    async with Client(StdioServerParameters(command=sys.executable, args=[str(DEMO_SERVER)])) as client:
        yield client


async def test_demo_countdown_refuses_bad_seconds() -> None:
    async with _demo_server() as client:
        seconds = {t.name: t for t in (await client.list_tools()).tools}["countdown"].input_schema["properties"]["seconds"]
        assert seconds["minimum"] == 0 and seconds["maximum"] >= 1  # clients see the bounds before calling
        for bad in BAD_NUMBERS:
            result = await client.call_tool("countdown", {"seconds": bad})
            assert result.is_error, bad
            text = result.content[0].text  # type: ignore[union-attr]
            assert "validation error" in text and "seconds" in text and "Traceback" not in text, text


async def test_demo_add_refuses_non_finite_numbers() -> None:
    async with _demo_server() as client:
        for bad in ("nan", "inf", "-inf"):
            result = await client.call_tool("add", {"a": 1, "b": bad})
            assert result.is_error and "finite number" in result.content[0].text, bad  # type: ignore[union-attr]
        overflow = await client.call_tool("add", {"a": 1e308, "b": 1e308})  # finite in, infinite out
        assert overflow.is_error and "overflows" in overflow.content[0].text  # type: ignore[union-attr]
        negative = await client.call_tool("add", {"a": -2, "b": 44})  # operands, not sizes: signs are fine
        assert negative.structured_content == {"total": 42.0}


def _numeric_properties(schema: dict[str, Any]) -> list[str]:
    return [name for name, prop in (schema.get("properties") or {}).items()
            if prop.get("type") in ("number", "integer")]


def test_agent_tool_numeric_arguments_have_bounds() -> None:
    # Agents as tools take only text today; a numeric argument added later must come bounded.
    schema = AGENT_INPUT_SCHEMA
    for name in _numeric_properties(schema):
        prop = schema["properties"][name]
        assert "minimum" in prop or "exclusiveMinimum" in prop, f"AgentTool argument {name!r} has no lower bound"
