"""A client for the official MCP conformance CLIENT suite, built on `McpWorkbench`.

    conformance client --command "python tests/adapters/conformance_client.py" --suite all

The harness starts a scenario's server (and, for `auth/*`, its authorization server),
passes the server URL as the last argument and sets MCP_CONFORMANCE_SCENARIO,
MCP_CONFORMANCE_PROTOCOL_VERSION and, for some scenarios, MCP_CONFORMANCE_CONTEXT (JSON).
Everything goes through the workbench's own code: `McpWorkbench`, and for authorization
the `[servers.X.oauth]` config, `adapters.oauth` and the real `workbench login` machinery
(loopback listener, state check) — only the person is replaced: the "browser" fetches the
authorization URL and follows its redirect to the listener.

Exit status 0 when the scenario's client steps succeeded; 1 (one line on stderr) when not.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as mt
from mcp.client.context import ClientRequestContext
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from adapters.config import ServerConfig  # noqa: E402
from adapters.mcp import McpWorkbench  # noqa: E402
from adapters.oauth import oauth_auth  # noqa: E402
from adapters.oauth_login import interactive_auth  # noqa: E402

CIMD_URL = "https://conformance-test.local/client-metadata.json"
_FIXED_ARGUMENTS = {"add_numbers": {"a": 5, "b": 3}}


async def follow_to_listener(url: str) -> None:
    """The person: open the authorization URL (the test AS consents at once) and follow its
    redirect, which lands on the login's loopback listener."""
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(url, follow_redirects=False)
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise RuntimeError(f"the authorization endpoint answered {response.status_code} without a redirect")
        await http.get(location, follow_redirects=False)


async def accept_with_defaults(_ctx: ClientRequestContext, params: mt.ElicitRequestParams) -> mt.ElicitResult:
    """Accept an elicitation with the defaults its schema declares (SEP-1034)."""
    content: dict[str, Any] = {}
    if isinstance(params, mt.ElicitRequestFormParams):
        for key, prop in params.requested_schema.get("properties", {}).items():
            if isinstance(prop, dict) and "default" in prop:
                content[key] = prop["default"]
    return mt.ElicitResult(action="accept", content=content)


def _context() -> dict[str, Any]:
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    return json.loads(raw) if raw else {}


def _mode(scenario: str) -> str:
    """`auto` (discover, then the stateless protocol) on a 2026 leg, the handshake on a 2025 one.
    The `json-schema-ref-no-deref` mock speaks only the handshake whatever the leg says."""
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION")
    if scenario == "json-schema-ref-no-deref" or (version and version not in MODERN_PROTOCOL_VERSIONS):
        return "legacy"
    return "auto"


async def stub_sampling(_ctx: ClientRequestContext, _params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
    return mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text=""), model="stub")


async def stub_roots(_ctx: ClientRequestContext) -> mt.ListRootsResult:
    return mt.ListRootsResult(roots=[])


async def _authorization_server(url: str) -> str:
    """What a user looks up once for SEP-990's fixed issuer: the server's protected-resource metadata."""
    parts = httpx2.URL(url)
    prm = parts.copy_with(path="/.well-known/oauth-protected-resource" + parts.path, query=None)
    async with httpx2.AsyncClient(timeout=10) as http:
        issuer: str = (await http.get(prm)).json()["authorization_servers"][0]
        return issuer


async def _oauth_section(scenario: str, context: dict[str, Any], folder: Path, url: str) -> dict[str, Any]:
    """The `[servers.X.oauth]` a user would write for this scenario's server."""
    if scenario == "auth/enterprise-managed-authorization":
        return {"grant": "identity_assertion", "client_id": context["client_id"],
                "client_secret": context["client_secret"], "issuer": await _authorization_server(url),
                "id_token": context["idp_id_token"], "idp_token_endpoint": context["idp_token_endpoint"],
                "idp_client_id": context["idp_client_id"]}
    if scenario == "auth/client-credentials-basic":
        return {"grant": "client_credentials", "client_id": context["client_id"],
                "client_secret": context["client_secret"], "token_endpoint_auth_method": "client_secret_basic"}
    if scenario == "auth/client-credentials-jwt":
        key = folder / "client.pem"
        key.write_text(context["private_key_pem"])
        return {"grant": "client_credentials", "client_id": context["client_id"], "private_key_file": str(key),
                "signing_algorithm": context.get("signing_algorithm", "ES256")}
    if context.get("client_id"):  # pre-registered
        section: dict[str, Any] = {"client_id": context["client_id"]}
        if context.get("client_secret"):
            section["client_secret"] = context["client_secret"]
        return section
    return {"client_id": CIMD_URL}  # a metadata document where supported, else dynamic registration


@asynccontextmanager
async def connected(url: str, scenario: str) -> AsyncIterator[McpWorkbench]:
    # Every client capability declared (request-metadata checks they are announced).
    options: dict[str, Any] = {"mode": _mode(scenario), "connect_timeout": 20.0, "timeout": 20.0,
                               "elicitation_callback": accept_with_defaults, "sampling_callback": stub_sampling,
                               "list_roots_callback": stub_roots, "max_backoff": 1.0}
    if not scenario.startswith("auth/"):
        async with McpWorkbench.http(url, name="conformance", **options) as wb:
            yield wb
        return
    with tempfile.TemporaryDirectory() as folder:
        oauth = await _oauth_section(scenario, _context(), Path(folder), url)
        server = ServerConfig(url=url, oauth={**oauth, "token_dir": folder, "login_timeout": 15.0})
        assert server.oauth is not None
        if server.oauth.grant in ("client_credentials", "identity_assertion"):
            auth = oauth_auth("conformance", url, server.oauth)
            async with McpWorkbench.http(url, name="conformance", auth=auth, **options) as wb:
                yield wb
            return
        async with interactive_auth("conformance", server, open_browser=follow_to_listener) as auth:
            async with McpWorkbench.http(url, name="conformance", auth=auth, **options) as wb:
                yield wb


async def run(url: str, scenario: str) -> None:
    context = _context()
    async with connected(url, scenario) as wb:
        tools = await wb.list_tools()
        calls = [(c["name"], c.get("arguments", {})) for c in context.get("toolCalls", [])]
        if scenario == "json-schema-2020-12-preservation":  # echo the focal tool's schema as listed
            focal = next(t for t in tools if t.name == "json_schema_2020_12_tool")
            calls = [("json_schema_echo", {"schema": focal.input_schema})]
        if not calls:
            calls = [(t.name, _FIXED_ARGUMENTS.get(t.name, {})) for t in tools]
        if scenario.startswith("auth/"):
            calls = calls[:1]  # one authorized call is the point; more would only repeat it
        for name, arguments in calls:
            result = await wb.call_tool(name, arguments)
            if result.is_error and scenario.startswith("auth/"):
                raise RuntimeError(f"tool {name} failed: {result.text[:300]}")
        if not scenario.startswith("auth/"):
            await _touch_resources_and_prompts(wb)


async def _touch_resources_and_prompts(wb: McpWorkbench) -> None:
    """Scenarios that check per-method HTTP headers observe these too; a server without them is fine."""
    try:
        resources = await wb.list_resources()
        if resources:
            await wb.read_resource(str(resources[0].uri))
        prompts = await wb.list_prompts()
        if prompts:
            await wb.get_prompt(prompts[0].name)
    except Exception:  # noqa: BLE001 - optional extras of the scenario, not its subject
        pass


async def bounded(url: str, scenario: str) -> None:
    with anyio.fail_after(28):  # the harness gives a client 30 s
        await run(url, scenario)


def main() -> int:
    url = sys.argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    try:
        anyio.run(bounded, url, scenario)
    except BaseException as e:  # noqa: BLE001 - the harness reads the exit status; one line says why
        from adapters.mcp_targets import describe

        print(f"conformance client: {scenario}: {describe(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
