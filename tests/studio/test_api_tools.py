"""The Tools API over real HTTP: the catalog as clients see it (the `expose` allowlist applies),
grouped by source with health; a call streamed as SSE (progress, then the MCP result); bad
bodies refused; hanging up cancels the call; the per-client concurrency limit, released
however a call ends; draining; resources read for resource links."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp.types as mt
import pytest
from studio_harness import StudioHttp, studio_http

from workbench import CallContext, CompositeWorkbench, StaticWorkbench, ToolResult
from workbench.core import Health, ResourceNotFoundError

pytestmark = pytest.mark.anyio


class Probe:
    """Tools that report what happened to them."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.cancelled = anyio.Event()
        self.release = anyio.Event()

    async def slow(self, ctx: CallContext) -> str:
        """Report progress, then wait until released."""
        await ctx.report_progress(1, 2, "half way")
        self.started.set()
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        return "released"

    def hidden(self) -> str:
        """Not exposed."""
        return "secret"

    def fail(self) -> ToolResult:
        """Always an error result."""
        return ToolResult.error("it broke, as asked")


class Resources(StaticWorkbench):
    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        if uri != "demo://readme":
            raise ResourceNotFoundError(uri)
        return mt.ReadResourceResult(contents=[mt.TextResourceContents(uri=uri, text="read me", mime_type="text/plain")])


def workbench(probe: Probe) -> CompositeWorkbench:
    return CompositeWorkbench({"fn": Resources([probe.slow, probe.hidden, probe.fail], name="fn")})


def events(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


async def call(studio: StudioHttp, name: str, arguments: Any = None) -> Any:
    body = {"arguments": arguments if arguments is not None else {}}
    return await studio.http.post(f"/ui/api/tools/{name}/call", headers=studio.auth(), json=body)


async def test_the_catalog_is_what_clients_see_grouped_by_source() -> None:
    async with studio_http(workbench(Probe()), expose=["fn__slow", "fn__fail"]) as studio:
        data = (await studio.http.get("/ui/api/tools", headers=studio.auth())).json()
        assert [(t["name"], t["source"]) for t in data["tools"]] == [("fn__slow", "fn"), ("fn__fail", "fn")]
        assert data["sources"] == {"fn": {"state": "up", "detail": "3 tools"}} or data["sources"]["fn"]["state"] == "up"
        assert data["tools"][0]["inputSchema"]["type"] == "object"
        # Not exposed: not callable through Studio either.
        refused = events((await call(studio, "fn__hidden")).text)
        assert refused[-1][0] == "error" and "unknown tool" in refused[-1][1]["message"]


async def test_a_call_streams_progress_then_the_mcp_result() -> None:
    probe = Probe()
    probe.release.set()
    async with studio_http(workbench(probe)) as studio:
        response = await call(studio, "fn__slow")
        assert response.headers["content-type"].startswith("text/event-stream")
        got = events(response.text)
        assert got[0] == ("progress", {"progress": 1, "total": 2, "message": "half way"})
        kind, data = got[-1]
        assert kind == "result"
        assert data["result"]["content"] == [{"type": "text", "text": "released"}]
        assert data["result"]["isError"] is False
        failed = events((await call(studio, "fn__fail")).text)[-1][1]["result"]
        assert failed["isError"] is True and failed["content"][0]["text"] == "it broke, as asked"


@pytest.mark.parametrize(("body", "status", "error"), [
    (b"[1, 2]", 400, "bad_json"),
    (b"{not json", 400, "bad_json"),
    (b'{"arguments": [1]}', 400, "bad_arguments"),
    (b'{"arguments": "x"}', 400, "bad_arguments"),
])
async def test_bad_bodies_are_refused_with_what_to_do(body: bytes, status: int, error: str) -> None:
    async with studio_http(workbench(Probe())) as studio:
        response = await studio.http.post("/ui/api/tools/fn__fail/call", content=body,
                                          headers={**studio.auth(), "Content-Type": "application/json"})
        assert response.status_code == status
        assert response.json()["error"] == error
        assert response.json()["error_description"]


async def test_an_oversized_body_is_refused_before_it_is_read() -> None:
    async with studio_http(workbench(Probe()), max_request_bytes=1024) as studio:
        big = {"arguments": {"x": "y" * 2000}}
        response = await studio.http.post("/ui/api/tools/fn__fail/call", json=big, headers=studio.auth())
        assert response.status_code == 413

        async def chunks() -> Any:  # no Content-Length: counted as it arrives
            for _ in range(4):
                yield b"x" * 512

        response = await studio.http.post("/ui/api/tools/fn__fail/call", content=chunks(), headers=studio.auth())
        assert response.status_code == 413


async def test_hanging_up_cancels_the_call_and_frees_its_slot() -> None:
    probe = Probe()
    async with studio_http(workbench(probe), max_concurrent_calls_per_client=1) as studio:
        hang_up = anyio.Event()
        async with anyio.create_task_group() as tg:
            async def first() -> None:
                async with studio.http.stream("POST", "/ui/api/tools/fn__slow/call", headers=studio.auth(),
                                              json={"arguments": {}}):
                    await hang_up.wait()  # leaving the block closes the connection mid-stream

            tg.start_soon(first)
            with anyio.fail_after(10):
                await probe.started.wait()
                # While it runs, a second call from the same client is over the limit.
                second = await call(studio, "fn__fail")
                assert second.status_code == 429
                assert "calls from this browser are running" in second.json()["error_description"]
                hang_up.set()
                await probe.cancelled.wait()  # the hang-up reached the tool
        with anyio.fail_after(5):
            while True:  # the slot comes back once the stream is torn down
                again = await call(studio, "fn__fail")
                if again.status_code == 200:
                    break
                await anyio.sleep(0.05)
        assert events(again.text)[-1][0] == "result"


async def test_a_draining_server_takes_no_new_calls() -> None:
    async with studio_http(workbench(Probe())) as studio:
        studio.server.draining = True
        response = await call(studio, "fn__fail")
        assert response.status_code == 503
        assert "shutting down" in response.json()["error_description"]


async def test_resources_are_read_for_resource_links() -> None:
    async with studio_http(workbench(Probe())) as studio:
        # Served under its source's prefix (as a resource link in a result names it), read back through it.
        read = await studio.http.get("/ui/api/resource", params={"uri": "fn+demo://readme"}, headers=studio.auth())
        assert read.json()["contents"][0]["text"] == "read me"
        missing = await studio.http.get("/ui/api/resource", params={"uri": "demo://nope"}, headers=studio.auth())
        assert missing.status_code == 404
        long = await studio.http.get("/ui/api/resource", params={"uri": "x" * 5000}, headers=studio.auth())
        assert long.status_code == 400


class Down(StaticWorkbench):
    """A source that cannot list: its health says why."""

    async def list_tools(self) -> list[mt.Tool]:
        raise ConnectionError("upstream refused the connection")

    def health(self) -> Health:
        return Health("down", "upstream refused the connection")


async def test_a_down_source_is_listed_with_why_and_the_others_still_serve() -> None:
    up = StaticWorkbench([Probe().fail], name="up")
    async with studio_http(CompositeWorkbench({"up": up, "broken": Down([], name="broken")})) as studio:
        data = (await studio.http.get("/ui/api/tools", headers=studio.auth())).json()
        assert data["sources"]["broken"] == {"state": "down", "detail": "upstream refused the connection"}
        assert data["sources"]["up"]["state"] == "up"
        assert [t["name"] for t in data["tools"]] == ["up__fail"]
