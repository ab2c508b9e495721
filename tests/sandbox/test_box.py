"""DockerSandbox: state, files, limits reported as results, cancellation, closing."""

from __future__ import annotations

import time

import anyio
import pytest

from sandbox import DockerSandbox, SandboxError, SandboxSettings
from sandbox.container import docker_client

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


async def test_python_state_persists_like_a_notebook(box: DockerSandbox) -> None:
    await box.run("python", "x = 41\nimport json")
    r = await box.run("python", "print(x + 1)")
    assert (r.stdout, r.exit_code, r.ok) == ("42\n", 0, True)
    r = await box.run("python", "json.dumps({'k': x})")  # trailing expression is shown
    assert r.stdout == "'{\"k\": 41}'\n"


async def test_cells_live_in_a_real_main_module(box: DockerSandbox) -> None:
    await box.run("python", "import pickle\nclass Point:\n    def __init__(self, x):\n        self.x = x")
    r = await box.run("python", "print(pickle.loads(pickle.dumps(Point(3))).x, __name__, 'ctl_in' in globals())")
    assert r.stdout == "3 __main__ False\n", r.stderr


async def test_python_exception_and_exit_codes(box: DockerSandbox) -> None:
    r = await box.run("python", "def f():\n    return 1 / 0\nf()")
    assert r.exit_code == 1 and not r.ok
    assert "ZeroDivisionError" in r.stderr and "return 1 / 0" in r.stderr and "supervisor" not in r.stderr
    assert (await box.run("python", "import sys; sys.exit(3)")).exit_code == 3
    assert (await box.run("python", "print(x)")).stdout == "41\n"  # an exception does not lose state


async def test_bash_separates_streams_and_runs_unprivileged(box: DockerSandbox) -> None:
    r = await box.run("bash", "echo out; echo err >&2; id -u; pwd; exit 7")
    assert r.stdout == "out\n1000\n/workspace\n"
    assert r.stderr == "err\n"
    assert r.exit_code == 7


async def test_non_utf8_output_comes_back_safely(box: DockerSandbox) -> None:
    r = await box.run("bash", r"printf 'ok \xff\xfe end\n'")
    assert r.exit_code == 0 and r.stdout.startswith("ok ") and "\ufffd" in r.stdout and r.stdout.endswith(" end\n")


async def test_files_round_trip_and_persist_across_runs(box: DockerSandbox) -> None:
    blob = bytes(range(256)) * 100
    where = await box.write_file("data/blob.bin", blob)
    assert where == "/workspace/data/blob.bin"
    assert await box.read_file("data/blob.bin") == blob
    r = await box.run("bash", "wc -c < data/blob.bin; echo made > data/made.txt")
    assert r.stdout.strip() == str(len(blob))
    assert await box.read_file("/workspace/data/made.txt") == b"made\n"
    entries = {e.path: e for e in await box.list_files(recursive=True)}
    assert entries["data"].type == "dir" and entries["data/blob.bin"].size == len(blob)
    assert entries["data/made.txt"].type == "file"
    assert (await box.run("python", "print(open('data/made.txt').read().strip())")).stdout == "made\n"


async def test_file_errors_are_clear(box: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="No such file"):
        await box.read_file("nope.txt")
    with pytest.raises(SandboxError, match="Read-only file system|Permission denied"):
        await box.write_file("/etc/evil", b"x")
    assert (await box.run("bash", "echo still")).stdout == "still\n"


async def test_output_is_capped_and_marked_truncated() -> None:
    async with DockerSandbox(SandboxSettings(output_limit=1000)) as b:
        r = await b.run("python", "print('a' * 200_000)")
        assert r.truncated and len(r.stdout) == 1000 and r.stdout_bytes == 200_001
        assert any("truncated" in n and "1000" in n for n in r.notes)
        r = await b.run("bash", "head -c 5000 /dev/zero | tr '\\0' e >&2")  # stderr alone over the limit
        assert r.truncated and r.stderr == "e" * 1000 and r.stderr_bytes == 5000 and r.stdout_bytes == 0
        r = await b.run("bash", "echo short")
        assert not r.truncated and r.stdout == "short\n"


async def test_timeout_kills_the_tree_and_says_so(box: DockerSandbox) -> None:
    start = time.monotonic()
    r = await box.run("bash", "sleep 60 & sleep 60; echo never", timeout=1)
    assert time.monotonic() - start < 5
    assert r.timed_out and not r.ok and "never" not in r.stdout
    assert any("timed out after 1 s" in n for n in r.notes)
    ps = await box.run("bash", "ps -eo comm")
    assert "sleep" not in ps.stdout


async def test_python_timeout_restarts_the_interpreter(box: DockerSandbox) -> None:
    await box.run("python", "kept = 1")
    r = await box.run("python", "while True:\n    pass", timeout=1)
    assert r.timed_out and any("variables are lost" in n for n in r.notes)
    r = await box.run("python", "print('kept' in globals())")
    assert r.stdout == "False\n"


async def test_cancelling_a_run_kills_its_processes(box: DockerSandbox) -> None:
    def running() -> str:
        top = docker_client().api.top(box.container_id)
        return " ".join(" ".join(p) for p in top["Processes"] or [])

    async with anyio.create_task_group() as tg:
        tg.start_soon(box.run, "bash", "sleep 77")
        with anyio.fail_after(5):  # cancel only once the run really is under way in the container
            while "sleep 77" not in await anyio.to_thread.run_sync(running):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    start = time.monotonic()
    r = await box.run("bash", "ps -eo args")
    # The supervisor stops the run at once, not when its own timeout (10 s here) would have.
    assert time.monotonic() - start < 5
    assert "sleep 77" not in r.stdout and r.exit_code == 0


async def test_reset_gives_a_fresh_interpreter_and_optionally_an_empty_workspace(box: DockerSandbox) -> None:
    await box.run("python", "y = 5")
    await box.write_file("keep.txt", "k")
    await box.reset()
    assert "NameError" in (await box.run("python", "y")).stderr
    assert await box.read_file("keep.txt") == b"k"
    await box.reset(clear_files=True)
    assert await box.list_files() == []


async def test_container_killed_from_outside_is_reported_and_replaced() -> None:
    async with DockerSandbox() as b:
        old = b.container_id
        assert old is not None
        await anyio.to_thread.run_sync(lambda: docker_client().api.kill(old))
        r = await b.run("python", "print(1)")
        assert r.exit_code is None and any("fresh container replaced it" in n for n in r.notes)
        assert b.container_id != old
        assert (await b.run("python", "print(2)")).stdout == "2\n"
        again = b.container_id
        await anyio.to_thread.run_sync(lambda: docker_client().api.kill(again))
        with pytest.raises(SandboxError, match="fresh container replaced it"):
            await b.write_file("f.txt", b"x")  # file operations say so too ...
        assert await b.list_files() == []  # ... and the next one works


async def test_close_is_fast_and_removes_the_container() -> None:
    b = await DockerSandbox().start()
    cid = b.container_id
    await b.run("bash", "sleep 100 &")
    start = time.monotonic()
    await b.close()
    assert time.monotonic() - start < 2
    assert not [c for c in docker_client().api.containers(all=True) if c["Id"] == cid]
    with pytest.raises(SandboxError, match="closed"):
        await b.run("python", "1")


async def test_user_code_sees_a_clean_environment(box: DockerSandbox) -> None:
    assert (await box.run("bash", "env | grep -c WORKBENCH_")).stdout == "0\n"
    r = await box.run("python", "import os; print(sorted(k for k in os.environ if 'WORKBENCH' in k)); print(os.getcwd())")
    assert r.stdout == "[]\n/workspace\n"


async def test_closing_under_a_running_request_ends_it_cleanly() -> None:
    b = await DockerSandbox().start()
    results: list[BaseException] = []

    async def run() -> None:
        try:
            await b.run("bash", "sleep 30")
        except SandboxError as e:
            results.append(e)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(0.3)
        await b.close()
    assert len(results) == 1 and "closed" in str(results[0])
