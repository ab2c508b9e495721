"""The supervisor's channel is sealed from user code, under runc and under gVisor.

Each attack is one that worked before the seal (issue 8): opening PID 1's stdin/stdout through
/proc, ptrace-attaching to it, signalling it, stealing or forging frames. Each must be refused,
and the session must answer normally afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox import DockerSandbox, SandboxSettings
from sandbox.container import docker_client

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

ATTACKS = r'''
import ctypes, glob, os, signal
fds = ["/proc/1/fd/0", "/proc/1/fd/1", "/proc/1/fd/2"] + glob.glob("/proc/1/task/*/fd/*") \
    + ["/proc/1/task/%s/fd/%s" % (t, n) for t in ("1", "2", "3") for n in (0, 1)]
for path in fds:
    for mode in ("rb", "ab"):
        try:
            open(path, mode).close()
            print("OPENED", path, mode)
        except OSError:
            pass
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, 1, 0, 0) == 0:  # PTRACE_ATTACH
    print("PTRACED")
for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGUSR1, signal.SIGKILL):
    try:
        os.kill(1, sig)
        print("SIGNALLED", sig)
    except OSError:
        pass
print("checked", len(fds))
'''


@pytest.fixture(scope="module", params=["runc", "runsc"])
async def box(request: pytest.FixtureRequest) -> AsyncIterator[DockerSandbox]:
    runtime = None if request.param == "runc" else request.param
    if runtime and runtime not in docker_client().info().get("Runtimes", {}):
        pytest.skip("gVisor's runsc is not registered: run `bash scripts/ensure_docker.sh`")
    async with DockerSandbox(SandboxSettings(runtime=runtime, memory="256m", timeout=10)) as b:
        yield b


async def assert_answers(box: DockerSandbox) -> None:
    r = await box.run("python", "print(6 * 7)")
    assert (r.stdout, r.exit_code, r.notes) == ("42\n", 0, []), r


async def test_python_cannot_open_trace_or_signal_the_supervisor(box: DockerSandbox) -> None:
    r = await box.run("python", ATTACKS)
    assert r.exit_code == 0, r
    assert "OPENED" not in r.stdout and "PTRACED" not in r.stdout and "SIGNALLED" not in r.stdout, r.stdout
    assert "checked" in r.stdout
    await assert_answers(box)


async def test_bash_cannot_write_forged_frames_or_steal_requests(box: DockerSandbox) -> None:
    # Before the seal: the printf forged a reply the host returned for the next call, and the
    # background cat stole the host's next request, wedging the session.
    r = await box.run("bash", r"printf '\x00\x00\x00\x0b{\"id\": 99}' > /proc/1/fd/1; "
                              "cat /proc/1/fd/0 > /dev/null & sleep 0.2; echo done")
    assert "Permission denied" in r.stderr and r.stdout == "done\n", r
    await assert_answers(box)
    await assert_answers(box)


async def test_user_code_runs_unprivileged_apart_from_the_supervisor(box: DockerSandbox) -> None:
    r = await box.run("bash", "id -u; stat -c %u /proc/1 2>/dev/null || echo unreadable; "
                              "grep -E '^(CapEff|CapPrm|CapBnd|CapAmb)' /proc/self/status")
    lines = r.stdout.split("\n")
    assert lines[0] == "1000"
    assert all(int(line.split()[-1], 16) == 0 for line in lines[2:] if line), r.stdout


async def test_a_file_written_by_the_host_belongs_to_the_user(box: DockerSandbox) -> None:
    await box.write_file("sub/mine.txt", "x")
    r = await box.run("python", "import os; st = os.stat('sub/mine.txt'); print(st.st_uid, os.stat('sub').st_uid)\n"
                                "open('sub/mine.txt', 'a').write('y'); print(open('sub/mine.txt').read())")
    assert r.stdout == "1000 1000\nxy\n", r


async def test_the_host_refuses_root_as_the_user_code_runs_as() -> None:
    from sandbox.errors import SandboxError

    with pytest.raises(SandboxError, match="non-root"):
        async with DockerSandbox(SandboxSettings(user="0:0")):
            pass


@pytest.mark.parametrize("path", ["/proc/1/fd/1", "/proc/1/fd/0", "/proc/self/fd/1", "to-channel"])
async def test_the_supervisors_own_file_operations_cannot_reach_the_channel(box: DockerSandbox, path: str) -> None:
    """read_file/write_file run in the supervisor (as the user's euid): pointing them at the
    channel — directly or through a symlink in the workspace — is refused, not written."""
    from sandbox.errors import SandboxError

    await box.run("bash", "rm -f to-channel; ln -s /proc/1/fd/1 to-channel")
    with pytest.raises(SandboxError):
        await box.write_file(path, '{"id": 99}')
    with pytest.raises(SandboxError):
        await box.read_file(path)
    await assert_answers(box)


async def test_the_seal_holds_after_file_operations(box: DockerSandbox) -> None:
    """Each euid switch for a file operation resets the kernel's dumpable flag: it is set back."""
    await box.write_file("after.txt", "x")
    await box.read_file("after.txt")
    r = await box.run("python", ATTACKS)
    assert "OPENED" not in r.stdout and "PTRACED" not in r.stdout and "SIGNALLED" not in r.stdout, r.stdout
    await assert_answers(box)
