"""Hostile sandboxes and hostile numbers, through the real server and a real MCP client.

The seal keeps user code off the supervisor's channel (tests/sandbox/test_seal.py). Here we
break the seal on purpose — the host's root writes to the container's PID 1 stdout through the
host's /proc, as a subverted supervisor would — and check the second wall: the server refuses
the frames, replaces the container, says so, keeps its memory, and serves the next call."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest
from serving import http_client, sandbox_workbench_or_skip, serving

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


@pytest.fixture
def sandbox_workbench():  # type: ignore[no-untyped-def]
    return sandbox_workbench_or_skip(pool_size=0, timeout=10, memory="256m")


@contextmanager
def forging(container_id: str, python: str) -> Iterator[None]:
    """Run `python` on the host with `fd` open on the container's PID 1 stdout — what the seal
    denies user code (the host's root may: it has CAP_SYS_PTRACE over every process)."""
    from sandbox.container import docker_client

    if os.geteuid() != 0:
        pytest.skip("forging frames needs the host's root (to open the container's /proc/PID/fd/1)")
    pid = docker_client().api.inspect_container(container_id)["State"]["Pid"]
    code = f"import os\nfd = os.open('/proc/{pid}/fd/1', os.O_WRONLY)\n" + python
    forger = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        forger.kill()
        forger.wait()


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


GIGABYTE_FRAME = """
import struct
os.write(fd, struct.pack('>I', 2**31) + b'x' * 1000)
chunk = b'y' * (1 << 20)
for _ in range(256):
    os.write(fd, chunk)
"""
UNASKED_REPLY = """
import json, struct
body = json.dumps({'id': 999999, 'stdout': 'forged', 'stderr': '', 'exit_code': 0}).encode()
os.write(fd, struct.pack('>I', len(body)) + body)
"""


@pytest.mark.parametrize("attack", [GIGABYTE_FRAME, UNASKED_REPLY], ids=["2GB-frame", "unasked-reply"])
async def test_a_frame_that_breaks_the_protocol_replaces_the_sandbox_and_costs_no_memory(
    sandbox_workbench, attack: str  # type: ignore[no-untyped-def]
) -> None:
    box = sandbox_workbench
    async with serving(box) as served, http_client(served.url, mode="legacy") as client:
        first = await client.call_tool("run_python", {"code": "x = 41; print('ready')"})
        assert not first.is_error, first.content
        (session,) = box._sessions
        victim = box._sessions[session].container_id
        assert victim is not None
        before = rss_mib()
        with forging(victim, attack):
            await anyio.sleep(1)  # let the forger write what it can into the channel
            with anyio.fail_after(15):
                hit = await client.call_tool("run_python", {"code": "print(x + 1)"})
        text = hit.content[0].text
        assert hit.is_error and "broke its protocol" in text and "variables and files are lost" in text, text
        assert "forged" not in text
        assert box._sessions[session].container_id != victim  # replaced
        grew = rss_mib() - before
        assert grew < 64, f"the server grew by {grew:.0f} MiB on what the container sent"

        again = await client.call_tool("run_python", {"code": "print(6 * 7)"})
        assert not again.is_error and again.content[0].text == "42", again.content


@pytest.mark.parametrize("timeout", ["nan", "inf", -1])
async def test_a_non_finite_or_negative_timeout_is_a_validation_error_over_mcp(
    sandbox_workbench, timeout: object  # type: ignore[no-untyped-def]
) -> None:
    async with serving(sandbox_workbench) as served, http_client(served.url) as client:
        r = await client.call_tool("run_bash", {"code": "sleep 100 & echo started", "timeout": timeout})
        assert r.is_error and "timeout" in r.content[0].text and "started" not in r.content[0].text
        assert sandbox_workbench.live == 0
        ok = await client.call_tool("run_bash", {"code": "echo fine"})
        assert ok.content[0].text == "fine"


async def test_sandbox_code_cannot_reach_the_supervisor_through_the_server(sandbox_workbench) -> None:  # type: ignore[no-untyped-def]
    """The seal, from a real MCP client: a forged frame and a stolen request were the attack; both
    are refused and the session keeps its variables."""
    async with serving(sandbox_workbench) as served, http_client(served.url) as client:
        await client.call_tool("run_python", {"code": "kept = 41"})
        attack = await client.call_tool("run_bash", {"code": (
            r"printf '\x00\x00\x00\x0b{\"id\": 99}' > /proc/1/fd/1; cat /proc/1/fd/0 > /dev/null & "
            "kill -STOP 1; sleep 0.2; echo done")})
        text = attack.content[0].text
        assert "Permission denied" in text and "Operation not permitted" in text and text.startswith("done"), text
        after = await client.call_tool("run_python", {"code": "print(kept + 1)"})
        assert (after.is_error, after.content[0].text) == (False, "42")


@pytest.mark.parametrize(
    ("token", "caps", "message"),
    [("caps-token", {"max_sandboxes": 2, "max_per_identity": 1}, "per-identity cap"),
     (None, {"max_sandboxes": 1}, "no sandbox is free")],
    ids=["per-identity", "global"],
)
async def test_the_sandbox_caps_hold_through_the_server(token: str | None, caps: dict[str, int], message: str) -> None:
    """From real clients, each naming its own session: a second sandbox past a cap is refused at
    once with a message naming the cap, and the holder keeps working."""
    from servers import ServeSettings

    auth = {"Authorization": f"Bearer {token}"} if token else {}
    box = sandbox_workbench_or_skip(pool_size=0, timeout=10, memory="128m", reclaim_after=600, **caps)
    async with serving(box, ServeSettings(transport="http", auth_token=token)) as served:
        async with http_client(served.url, mode="auto", headers={**auth, "Workbench-Session": "a"}) as a:
            assert (await a.call_tool("run_bash", {"code": "echo a"})).content[0].text == "a"
            async with http_client(served.url, mode="auto", headers={**auth, "Workbench-Session": "b"}) as b:
                with anyio.fail_after(5):  # refused at once, never queued
                    refused = await b.call_tool("run_bash", {"code": "echo b"})
            assert refused.is_error and message in refused.content[0].text, refused.content
            assert box.live == 1
            assert (await a.call_tool("run_bash", {"code": "echo still"})).content[0].text == "still"
