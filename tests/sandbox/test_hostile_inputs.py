"""Inputs that used to hang, crash or leak a sandbox (issue 8): special files, bad numbers,
threads left running, a forged reply from the Python worker. Each is refused or reported, fast,
and the session answers normally afterwards."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import anyio
import pytest

from sandbox import DockerSandbox, SandboxSettings, SandboxWorkbench
from sandbox.errors import SandboxError
from sandbox.protocol import max_reply_bytes
from workbench.core import CallContext

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


@pytest.fixture(scope="module")
async def box() -> AsyncIterator[DockerSandbox]:
    async with DockerSandbox(SandboxSettings(memory="256m", timeout=10, file_limit=1 << 20)) as b:
        yield b


async def assert_answers(box: DockerSandbox) -> None:
    r = await box.run("python", "print(6 * 7)")
    assert (r.stdout, r.exit_code) == ("42\n", 0), r


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom", "fifo", "to-zero", "."])
async def test_read_file_refuses_what_is_not_a_regular_file(box: DockerSandbox, path: str) -> None:
    await box.run("bash", "rm -f fifo to-zero; mkfifo fifo; ln -s /dev/zero to-zero")
    with anyio.fail_after(5), pytest.raises(SandboxError, match="not a regular file|Is a directory"):
        await box.read_file(path)
    await assert_answers(box)


async def test_write_file_into_a_fifo_neither_blocks_nor_writes(box: DockerSandbox) -> None:
    await box.run("bash", "rm -f fifo; mkfifo fifo")
    with anyio.fail_after(5), pytest.raises(SandboxError):
        await box.write_file("fifo", "x")
    await assert_answers(box)


async def test_read_file_never_reads_past_the_limit(box: DockerSandbox) -> None:
    await box.run("bash", "head -c 2M /dev/zero > big")
    with anyio.fail_after(5), pytest.raises(SandboxError, match="transfer limit"):
        await box.read_file("big")
    await box.run("bash", "head -c 1000 /dev/zero > small")
    assert await box.read_file("small") == b"\0" * 1000


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -1.0])
async def test_a_run_with_a_non_finite_or_negative_timeout_is_refused(box: DockerSandbox, timeout: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        await box.run("bash", "sleep 100", timeout=timeout)


async def test_the_supervisor_refuses_bad_numbers_and_starts_nothing(box: DockerSandbox) -> None:
    """Past the host's checks (a caller of the channel itself): the supervisor validates too, and a
    refused run leaves no process behind (the NaN used to crash its loop with `sleep` running)."""
    assert box._container is not None
    channel = box._container.channel
    bound = max_reply_bytes("run", 1000, 1000)
    for bad in ({"timeout": math.nan, "limit": 100}, {"timeout": 1, "limit": -1}, {"timeout": "1", "limit": 100}):
        reply = await channel.request("run", 10, bound, lang="bash", code="sleep 100", **bad)
        assert "error" in reply and "ValueError" in reply["error"], reply
    assert "sleep" not in (await box.run("bash", "ps -eo args")).stdout


async def test_threads_left_running_are_reported_and_reset_stops_them(box: DockerSandbox) -> None:
    r = await box.run("python", "import threading, time\n"
                                "threading.Thread(target=time.sleep, args=(300,), name='sleeper', daemon=True).start()")
    assert r.exit_code == 0 and any("1 thread(s)" in n and "sleeper" in n and "reset" in n for n in r.notes), r
    r = await box.run("python", "print(threading.active_count())")
    assert r.stdout == "2\n"  # threads keep running between runs, as documented
    await box.reset()
    r = await box.run("python", "import threading; print(threading.active_count())")
    assert (r.stdout, r.notes) == ("1\n", [])


async def test_a_forged_reply_from_the_python_worker_replaces_only_the_interpreter(box: DockerSandbox) -> None:
    """Code in the worker can write to the worker's reply pipe (the supervisor reads it): a
    forged frame announcing a megabyte is refused, the interpreter replaced, the session kept."""
    await box.write_file("kept.txt", "still here")
    r = await box.run("python", "import os, struct, sys\nsecret = 1\n"
                                "os.write(int(sys.argv[2]), struct.pack('>I', 1 << 20) + b'x' * 4096)\n"
                                "import time; time.sleep(2)")
    assert r.exit_code is None and any("out of protocol" in n for n in r.notes), r
    r = await box.run("python", "print('secret' in globals(), open('kept.txt').read())")
    assert r.stdout == "False still here\n", r


async def test_a_forged_exit_code_of_the_wrong_type_is_not_believed(box: DockerSandbox) -> None:
    r = await box.run("python", "import json, os, struct, sys\n"
                                "body = json.dumps({'exit_code': 'zero', 'threads': []}).encode()\n"
                                "os.write(int(sys.argv[2]), struct.pack('>I', len(body)) + body)\n"
                                "import time; time.sleep(2)")
    assert r.exit_code is None and any("out of protocol" in n for n in r.notes), r
    await assert_answers(box)


@pytest.mark.parametrize("timeout", ["nan", "inf", -1, "-0.5"])
async def test_the_run_tools_refuse_non_finite_or_negative_timeouts(timeout: object) -> None:
    async with SandboxWorkbench(SandboxSettings(pool_size=0, memory="128m")) as wb:
        spec = next(t for t in await wb.list_tools() if t.name == "run_bash")
        schema = spec.input_schema["properties"]["timeout"]
        assert any(option.get("minimum") == 0 for option in schema.get("anyOf", [schema])), schema
        r = await wb.call_tool("run_bash", {"code": "sleep 100 & echo started", "timeout": timeout},
                               CallContext(session_id="nan"))
        assert r.is_error and "started" not in r.text and "timeout" in r.text, r.text
        assert wb.live == 0  # refused before any sandbox was started for it
