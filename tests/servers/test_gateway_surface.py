"""The gateway's whole surface for real clients, beyond tools: completion, resources and their
subscriptions, log levels, list changes — with the prefix on, so every name and URI crosses the
gateway rewritten (`up__greet`, `up+notes://readme`) and back. Two real clients at once show
that one's subscriptions and log level never reach the other."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import mcp.types as mt
import pytest
from serving import free_port, http_client, serving

from adapters.mcp import McpWorkbench
from workbench import CompositeWorkbench

UPSTREAM = Path(__file__).parent / "gateway_upstream.py"
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@contextmanager
def upstream_process(port: int) -> Iterator[subprocess.Popen[bytes]]:
    import socket
    import time

    proc = subprocess.Popen([sys.executable, str(UPSTREAM), str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"upstream did not start on port {port}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


class Inbox:
    """A client's notifications, by kind, with a way to wait for one."""

    def __init__(self) -> None:
        self.updated: list[str] = []
        self.logs: list[mt.LoggingMessageNotificationParams] = []
        self.kinds: list[str] = []
        self._arrived = anyio.Event()

    async def on_message(self, message: object) -> None:
        if isinstance(message, mt.ResourceUpdatedNotification):
            self.updated.append(message.params.uri)
        self.kinds.append(type(message).__name__)
        self._arrived.set()

    async def on_log(self, params: mt.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def wait_for(self, predicate: object, timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            while not predicate():  # type: ignore[operator]
                self._arrived = anyio.Event()
                await self._arrived.wait()


def text(result: mt.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, mt.TextContent)
    return block.text


async def test_completion_resources_and_subscriptions_cross_the_prefix_both_ways() -> None:
    port = free_port()
    with upstream_process(port):
        gateway = CompositeWorkbench({"up": McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode="legacy")})
        async with serving(gateway) as gw:
            a, b = Inbox(), Inbox()
            async with http_client(gw.url, mode="legacy", message_handler=a.on_message) as ca, \
                    http_client(gw.url, mode="legacy", message_handler=b.on_message) as cb:
                # Completion: the prompt's name and the template's URI go upstream unprefixed.
                done = await ca.complete(mt.PromptReference(name="up__greet"), {"name": "name", "value": "al"})
                assert done.completion.values == ["alice", "alfred"]
                template = "up+notes://item/{item_id}"
                assert template in {t.uri_template for t in (await ca.list_resource_templates()).resource_templates}
                done = await ca.complete(mt.ResourceTemplateReference(uri=template), {"name": "item_id", "value": "a"})
                assert done.completion.values == ["a1", "a2"]

                # Resources: listed, read and templated under the prefix.
                assert "up+notes://readme" in {r.uri for r in (await ca.list_resources()).resources}
                read = await ca.read_resource("up+notes://readme")
                assert read.contents[0].uri == "up+notes://readme" and read.contents[0].text == "the notes"
                assert (await ca.read_resource("up+notes://item/7")).contents[0].text == "note 7"

                # Subscriptions: A to the readme, B to an item; each hears only its own.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    await ca.subscribe_resource("up+notes://readme")
                    await cb.subscribe_resource("up+notes://item/b1")
                    await cb.subscribe_resource("up+notes://readme")
                    await cb.unsubscribe_resource("up+notes://readme")
                # Two gateway clients, one upstream subscription each URI (the upstream's session is shared).
                assert text(await ca.call_tool("up__subscribers", {"uri": "notes://readme"})) == "1"
                await ca.call_tool("up__touch", {"uri": "notes://readme"})
                await cb.call_tool("up__touch", {"uri": "notes://item/b1"})
                await a.wait_for(lambda: a.updated)
                await b.wait_for(lambda: b.updated)
                assert a.updated == ["up+notes://readme"]
                assert b.updated == ["up+notes://item/b1"]  # B unsubscribed from the readme: not told
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    await ca.unsubscribe_resource("up+notes://readme")
                assert text(await ca.call_tool("up__subscribers", {"uri": "notes://readme"})) == "0"

                # List changes reach both clients.
                await ca.call_tool("up__grow", {})
                for inbox in (a, b):
                    await inbox.wait_for(lambda i=inbox: {"PromptListChangedNotification",
                                                         "ResourceListChangedNotification"} <= set(i.kinds))
                assert "up__fresh" in {p.name for p in (await cb.list_prompts()).prompts}


async def test_each_client_gets_the_log_level_it_set() -> None:
    port = free_port()
    with upstream_process(port):
        gateway = CompositeWorkbench({"up": McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode="legacy")})
        async with serving(gateway) as gw:
            a, b = Inbox(), Inbox()
            async with http_client(gw.url, mode="legacy", logging_callback=a.on_log) as ca, \
                    http_client(gw.url, mode="legacy", logging_callback=b.on_log) as cb:
                await ca.set_logging_level("warning")
                await cb.set_logging_level("debug")
                # The shared upstream session logs at the most verbose level any client asked for...
                assert text(await ca.call_tool("up__my_level", {})) == "debug"
                await ca.call_tool("up__chatty", {})
                await cb.call_tool("up__chatty", {})
                # ...and each client hears only what it asked for, only of its own calls.
                assert [log.level for log in a.logs] == ["warning"]
                assert [log.level for log in b.logs] == ["debug", "info", "warning"]


async def test_a_modern_client_listens_to_a_resource_of_a_legacy_upstream() -> None:
    port = free_port()
    with upstream_process(port):
        gateway = CompositeWorkbench({"up": McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode="legacy")})
        async with serving(gateway) as gw, http_client(gw.url, mode="2026-07-28") as modern:
            async with modern.listen(resource_subscriptions=["up+notes://readme"]) as subscription:
                # The listen stream subscribed upstream for as long as it lasts.
                assert text(await modern.call_tool("up__subscribers", {"uri": "notes://readme"})) == "1"
                await modern.call_tool("up__touch", {"uri": "notes://readme"})
                with anyio.fail_after(10):
                    event = await subscription.__anext__()
                assert getattr(event, "uri", None) == "up+notes://readme"
            with anyio.fail_after(10):
                while text(await modern.call_tool("up__subscribers", {"uri": "notes://readme"})) != "0":
                    await anyio.sleep(0.05)


async def test_an_upstream_that_comes_back_is_resubscribed_and_its_subscribers_told() -> None:
    port = free_port()
    inbox = Inbox()
    upstream = McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode="legacy", max_backoff=0.2, connect_timeout=5)
    with upstream_process(port) as first:
        async with serving(CompositeWorkbench({"up": upstream})) as gw, \
                http_client(gw.url, mode="legacy", message_handler=inbox.on_message) as client:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.subscribe_resource("up+notes://readme")
            first.kill()
            first.wait(10)
            with upstream_process(port):
                # The next call reconnects; the new upstream session is subscribed again and the
                # subscriber told the resource may have changed while it was gone.
                with anyio.fail_after(20):
                    while (await client.call_tool("up__subscribers", {"uri": "notes://readme"})).is_error:
                        await anyio.sleep(0.1)
                assert text(await client.call_tool("up__subscribers", {"uri": "notes://readme"})) == "1"
                await inbox.wait_for(lambda: inbox.updated)
                assert inbox.updated == ["up+notes://readme"]
                await client.call_tool("up__touch", {"uri": "notes://readme"})
                await inbox.wait_for(lambda: len(inbox.updated) == 2)


@pytest.mark.npm
async def test_the_inspector_reads_prefixed_resources_and_prompts_through_the_gateway() -> None:
    from test_inspector import inspector

    port = free_port()
    with upstream_process(port):
        gateway = CompositeWorkbench({"up": McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", mode="legacy")})
        async with serving(gateway) as gw:

            def ask(*args: str) -> dict:  # type: ignore[type-arg]
                return inspector(gw.url, "--transport", "http", *args)

            listed = await anyio.to_thread.run_sync(lambda: ask("--method", "resources/list"))
            assert "up+notes://readme" in {r["uri"] for r in listed["resources"]}
            read = await anyio.to_thread.run_sync(lambda: ask("--method", "resources/read", "--uri",
                                                              "up+notes://item/9"))
            assert read["contents"][0]["text"] == "note 9" and read["contents"][0]["uri"] == "up+notes://item/9"
            prompt = await anyio.to_thread.run_sync(lambda: ask("--method", "prompts/get", "--prompt-name", "up__greet",
                                                                "--prompt-args", "name=Ann"))
            assert "Hello Ann" in json.dumps(prompt)
