"""Every hardening switch: on by default (seen from the engine and from inside), off on request."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from sandbox import DockerSandbox, SandboxSettings
from sandbox.container import OWNER, docker_client
from sandbox.settings import OWNER_LABEL, PROJECT_LABEL

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


async def inspect(box: DockerSandbox) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(docker_client().api.inspect_container, box.container_id)


async def test_engine_side_limits(box: DockerSandbox) -> None:
    info = await inspect(box)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == ["KILL", "SETGID", "SETPCAP", "SETUID"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == 512 << 20 and host["MemorySwap"] == host["Memory"]
    assert host["PidsLimit"] == 256
    assert host["NanoCpus"] == 1_000_000_000
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {"nofile": 1024, "fsize": 256 << 20}
    assert set(host["Tmpfs"]) == {"/workspace", "/tmp"} and "size=268435456" in host["Tmpfs"]["/workspace"]
    assert host["Privileged"] is False
    assert host["LogConfig"]["Type"] == "none"  # replies carry all output: none of it may pile up on the host's disk
    assert info["Config"]["User"] == "0:0"  # the supervisor; user code runs as 1000 (next test)
    assert info["Config"]["Labels"][PROJECT_LABEL] == "session" and info["Config"]["Labels"][OWNER_LABEL] == OWNER


async def test_inside_no_capabilities_no_new_privileges_not_root(box: DockerSandbox) -> None:
    status = (await box.run("bash", "grep -E '^(Uid|CapEff|CapBnd|CapPrm|NoNewPrivs)' /proc/self/status")).stdout
    fields = dict(line.split(":\t") for line in status.strip().splitlines())
    assert fields["Uid"].split()[0] == "1000"
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"


async def test_inside_no_network(box: DockerSandbox) -> None:
    r = await box.run("bash", "ls /sys/class/net")
    assert r.stdout.split() == ["lo"]
    r = await box.run("python", "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)")
    assert r.exit_code == 1 and ("unreachable" in r.stderr or "OSError" in r.stderr)


async def test_inside_read_only_root_and_size_capped_tmpfs(box: DockerSandbox) -> None:
    r = await box.run("bash", "touch /usr/x 2>&1; touch /x 2>&1; touch /workspace/ok /tmp/ok && echo writable")
    assert r.stdout.count("Read-only file system") == 2 and "writable" in r.stdout
    sizes = (await box.run("bash", "df -B1 --output=target,size /workspace /tmp | tail -n +2")).stdout.split()
    assert dict(zip(sizes[::2], map(int, sizes[1::2]), strict=True)) == {"/workspace": 256 << 20, "/tmp": 64 << 20}


async def test_inside_ulimits_and_cgroup_limits(box: DockerSandbox) -> None:
    r = await box.run("bash", "ulimit -n; ulimit -f")
    assert r.stdout.split() == ["1024", str((256 << 20) // 1024)]
    r = await box.run("bash", "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null")
    assert r.stdout.split()[0] == "256"


async def test_a_file_bigger_than_the_limit_is_cut(box: DockerSandbox) -> None:
    r = await box.run("bash", "head -c 300M /dev/zero > big; stat -c %s big; rm big")
    assert int(r.stdout.split()[-1]) == 256 << 20 and "File size limit exceeded" in r.stderr
    assert (await box.run("bash", "echo ok")).stdout == "ok\n"


async def test_each_switch_can_be_turned_off() -> None:
    loose = SandboxSettings(network=True, read_only=False, drop_capabilities=False, no_new_privileges=False,
                            pids=None, cpus=None, nofile=None, fsize=None, memory="1g")
    async with DockerSandbox(loose) as b:
        host = (await inspect(b))["HostConfig"]
        assert host["NetworkMode"] in ("bridge", "default") and host["ReadonlyRootfs"] is False
        assert not host["CapDrop"] and not host["SecurityOpt"] and not host["Ulimits"]
        assert host["PidsLimit"] in (None, 0, -1) and host["NanoCpus"] == 0 and host["Memory"] == 1 << 30
        assert (await b.run("bash", "touch /var/tmp/x && echo wrote")).stdout == "wrote\n"
        assert "eth0" in (await b.run("bash", "ls /sys/class/net")).stdout
