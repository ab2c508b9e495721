"""Hostile code: each case is contained, says what stopped it, and the next normal run works."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox import DockerSandbox, SandboxSettings

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


@pytest.fixture(scope="module")
async def hostile() -> AsyncIterator[DockerSandbox]:
    async with DockerSandbox(SandboxSettings(memory="256m", pids=64, timeout=5, output_limit=4096)) as b:
        yield b


async def assert_still_usable(b: DockerSandbox) -> None:
    r = await b.run("python", "print(6 * 7)")
    assert (r.stdout, r.exit_code) == ("42\n", 0), r
    assert (await b.run("bash", "echo ok")).stdout == "ok\n"
    # Live processes only: a zombie whose parent was killed last is collected by the next sweep.
    ps = (await b.run("bash", "ps -e -o stat= | grep -vc '^Z'")).stdout
    assert int(ps) <= 5, "processes were left behind"  # supervisor, worker, bash, ps, grep


async def test_fork_bomb_bash(hostile: DockerSandbox) -> None:
    r = await hostile.run("bash", ":(){ :|:& };:; sleep 1")  # the sleep gives the bomb time to hit the pids limit
    assert "fork" in r.stderr and "Resource temporarily unavailable" in r.stderr
    assert any("process limit (pids) was hit" in n for n in r.notes)
    await assert_still_usable(hostile)


async def test_fork_bomb_python(hostile: DockerSandbox) -> None:
    r = await hostile.run("python", "import os\nwhile True:\n    os.fork()")
    assert not r.ok and ("BlockingIOError" in r.stderr or r.timed_out)
    await assert_still_usable(hostile)


async def test_memory_bomb_is_oom_killed_and_said_so(hostile: DockerSandbox) -> None:
    r = await hostile.run("python", "hog = []\nwhile True:\n    hog.append(b'x' * 10**7)")
    assert r.oom_killed and not r.ok
    assert any("memory limit" in n for n in r.notes) and any("variables are lost" in n for n in r.notes)
    await assert_still_usable(hostile)


async def test_endless_loop_times_out(hostile: DockerSandbox) -> None:
    r = await hostile.run("bash", "while :; do :; done", timeout=1.5)
    assert r.timed_out and any("timed out" in n for n in r.notes)
    await assert_still_usable(hostile)


async def test_a_gigabyte_of_output_is_read_and_dropped(hostile: DockerSandbox) -> None:
    r = await hostile.run("bash", "head -c 1G /dev/zero | tr '\\0' a", timeout=30)
    assert r.truncated and r.stdout_bytes == 1 << 30 and len(r.stdout) == 4096 and set(r.stdout) == {"a"}
    await assert_still_usable(hostile)


async def test_network_connection_attempt_fails(hostile: DockerSandbox) -> None:
    r = await hostile.run("python", "import urllib.request\nurllib.request.urlopen('http://deb.debian.org', timeout=3)")
    assert r.exit_code == 1 and "URLError" in r.stderr
    r = await hostile.run("bash", "exec 3<>/dev/tcp/172.17.0.1/2375 && echo connected")
    assert "connected" not in r.stdout and r.exit_code != 0
    await assert_still_usable(hostile)


async def test_writing_outside_the_workspace_fails(hostile: DockerSandbox) -> None:
    r = await hostile.run("bash", "for p in /etc/passwd /usr/bin/x /root/x /x /proc/sys/kernel/hostname; do "
                                   "echo pwn >> $p && echo WROTE $p; done; cat /etc/passwd | grep -c pwn")
    assert "WROTE" not in r.stdout and r.stdout.strip().endswith("0")
    await assert_still_usable(hostile)


async def test_background_process_does_not_outlive_its_run(hostile: DockerSandbox) -> None:
    r = await hostile.run("bash", "sleep 1000 & setsid sleep 1001 & nohup sleep 1002 >/dev/null 2>&1 & echo started")
    assert r.stdout == "started\n"
    await hostile.run("python", "import subprocess\nsubprocess.Popen(['sleep', '1003'], start_new_session=True)")
    ps = (await hostile.run("bash", "ps -eo args")).stdout
    assert not [line for line in ps.splitlines() if line.startswith("sleep")], ps
    await assert_still_usable(hostile)


async def test_killing_its_own_interpreter(hostile: DockerSandbox) -> None:
    r = await hostile.run("python", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert r.exit_code == -9 and any("interpreter exited" in n for n in r.notes)
    await assert_still_usable(hostile)


async def test_signalling_the_supervisor_does_nothing(hostile: DockerSandbox) -> None:
    before = hostile.container_id
    await hostile.run("python", "doomed = 1")
    r = await hostile.run("bash", "for s in KILL TERM INT HUP QUIT USR1 ABRT; do kill -$s 1; done; kill -9 -1; echo alive")
    assert r.stdout == "alive\n" and hostile.container_id == before
    assert any("killed the Python interpreter" in n for n in r.notes)  # said by the run that did it
    await assert_still_usable(hostile)
