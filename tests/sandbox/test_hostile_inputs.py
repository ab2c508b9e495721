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


async def test_a_worker_that_stops_reading_cannot_wedge_the_supervisor(box: DockerSandbox) -> None:
    """A cell forges a well-formed reply and keeps running: the next run's code (over a pipe's
    64 KiB) cannot be written. That write is under the run's deadline, not a blocking one."""
    r = await box.run("python", "import json, os, struct, sys, threading, time\n"
                                "body = json.dumps({'exit_code': 0, 'threads': []}).encode()\n"
                                "os.write(int(sys.argv[2]), struct.pack('>I', len(body)) + body)\n"
                                "time.sleep(60)", timeout=5)
    with anyio.fail_after(6):  # before: the run's timeout plus the host's 10 s grace, then a new container
        r = await box.run("python", "x = 1\n" + "#" * (200 << 10), timeout=1)
    assert r.timed_out or r.exit_code is None, r
    await assert_answers(box)


async def test_names_that_are_not_utf8_come_back_as_valid_text(box: DockerSandbox) -> None:
    await box.run("bash", "rm -rf names; mkdir names; touch names/$'caf\\xe9.txt' names/$'\\xf0\\x9f\\x98\\x80'")
    entries = await box.list_files("names")
    assert sorted(e.path for e in entries) == ["caf\\xe9.txt", "\U0001f600"]
    r = await box.run("python", "import threading, time\n"
                                "threading.Thread(target=time.sleep, args=(60,), name='\\ud800', daemon=True).start()")
    for text in [e.path for e in entries] + r.notes:
        text.encode("utf-8")  # a lone surrogate would raise here, and in the server's JSON to the client
    await box.reset()


async def test_a_path_longer_than_path_max_is_refused_on_the_host(box: DockerSandbox) -> None:
    await box.run("python", "kept = 1")
    with pytest.raises(SandboxError, match="longer than 4096 bytes"):
        await box.write_file("é" * 11000, "x")
    r = await box.run("python", "print(kept)")
    assert r.stdout == "1\n", r  # the sandbox was not replaced


async def test_a_listing_of_wide_names_stays_within_its_frame_bound(box: DockerSandbox) -> None:
    """Names of 4-byte characters cost 12 bytes each in the reply's JSON: the supervisor counts
    what the frame costs, so the listing is truncated instead of breaking the protocol."""
    await box.run("python", "import os\nfor i in range(200):\n    os.makedirs('wide/%d' % i + '/' + '\\U0001f600' * 60, exist_ok=True)\n"
                            "kept = 1")
    entries = await box.list_files("wide", recursive=True)
    assert entries and (await box.run("python", "print(kept)")).stdout == "1\n"
