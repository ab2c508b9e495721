"""Hardened sandbox containers: creating them, finding the project's own, removing orphans.

The `docker` SDK is synchronous, so every engine call here runs on a worker thread; the
per-run traffic never touches it (see `channel.py`).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import docker
import docker.errors
import docker.types
import requests.exceptions

from sandbox.channel import SupervisorChannel
from sandbox.errors import ENSURE_DOCKER, EngineUnavailableError, ImageMissingError, SandboxError
from sandbox.protocol import max_reply_bytes
from sandbox.settings import OWNER_LABEL, PROJECT_LABEL, WORKSPACE, SandboxSettings, parse_bytes

logger = logging.getLogger("workbench.sandbox")

SUPERVISOR_SOURCE = Path(__file__).with_name("supervisor.py").read_text()
WORKER_SOURCE = Path(__file__).with_name("worker.py").read_text()
OWNER = f"{socket.gethostname()}:{os.getpid()}"
SUPERVISOR_CAPS = ["KILL", "SETGID", "SETUID", "SETPCAP"]
"""All the supervisor starts with: it keeps the first three (run user code under its uid, kill
what it leaves) and spends SETPCAP at once to empty the bounding set every child inherits."""


@functools.cache
def docker_client() -> docker.DockerClient:
    """One shared client (its HTTP pool sized for a burst of concurrent session starts)."""
    try:
        client = docker.from_env(max_pool_size=32, timeout=60)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        docker_client.cache_clear()
        raise EngineUnavailableError(_why_unreachable(e)) from None


_UNREACHABLE_BECAUSE = {
    errno.ENOENT: "no socket at",
    errno.ECONNREFUSED: "connection refused at",
    errno.EACCES: "permission denied (join the `docker` group?) at",
    errno.EPERM: "permission denied (join the `docker` group?) at",
}


def _why_unreachable(error: Exception) -> str:
    """'no socket at unix:///var/run/docker.sock', not a nested requests repr."""
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    cause = _os_error_in(error)
    if cause is not None and cause.errno in _UNREACHABLE_BECAUSE:
        return f"{_UNREACHABLE_BECAUSE[cause.errno]} {where}"
    return f"{where}: {str(error)[:200]}"


def _os_error_in(error: BaseException) -> OSError | None:
    """The socket's own `OSError` under docker's and requests' wrappers, which chain it
    through `__cause__`/`__context__` (urllib3 also through `.reason` and `args`)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        e = pending.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:  # requests' errors are OSErrors too, without errno
            return e
        linked = (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
        pending.extend(x for x in linked if isinstance(x, BaseException))
    return None


def host_config(client: docker.DockerClient, s: SandboxSettings) -> docker.types.HostConfig:
    """The container's limits. Every hardening switch maps to one line here."""
    tmpfs_opts = "rw,exec,nosuid,nodev"
    tmpfs = {
        WORKSPACE: f"{tmpfs_opts},size={parse_bytes(s.workspace_size)},mode=0755,uid=1000,gid=1000",
        "/tmp": f"{tmpfs_opts},size={parse_bytes(s.tmp_size)},mode=1777",
    }
    ulimits = []
    if s.nofile:
        ulimits.append(docker.types.Ulimit(name="nofile", soft=s.nofile, hard=s.nofile))
    if s.fsize:
        ulimits.append(docker.types.Ulimit(name="fsize", soft=parse_bytes(s.fsize), hard=parse_bytes(s.fsize)))
    memory = parse_bytes(s.memory) if s.memory else None
    return client.api.create_host_config(
        network_mode="bridge" if s.network else "none",
        cap_drop=["ALL"] if s.drop_capabilities else None,
        cap_add=SUPERVISOR_CAPS if s.drop_capabilities else None,
        security_opt=["no-new-privileges:true"] if s.no_new_privileges else None,
        read_only=s.read_only,
        tmpfs=tmpfs,
        pids_limit=s.pids,
        mem_limit=memory,
        memswap_limit=memory,  # swap equal to memory: no swapping past the limit
        nano_cpus=int(s.cpus * 1e9) if s.cpus else None,
        ulimits=ulimits or None,
        runtime=s.runtime,
        # No log driver: the attach stream carries every reply (all output, every file read), and
        # json-file would keep it all on the host's disk, unbounded (44 MiB/s from one session).
        log_config=docker.types.LogConfig(type="none"),
        auto_remove=True,  # when the supervisor exits (its host went away), the engine cleans up
    )


def _engine_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call, turning the engine's failures into errors that say what to do."""
    try:
        return fn(*args, **kwargs)
    except docker.errors.ImageNotFound as e:
        raise ImageMissingError(str(e.explanation)) from None
    except docker.errors.APIError as e:
        text = str(e.explanation or e)
        if _is_unknown_runtime(text):
            raise SandboxError(f"the engine has no container runtime by that name ({text}); register gVisor's "
                               f"`runsc` with `{ENSURE_DOCKER}` or set runtime to None") from None
        raise SandboxError(f"the Docker engine refused: {text}") from None
    except requests.exceptions.ConnectionError as e:
        raise EngineUnavailableError(_why_unreachable(e)) from None


def _is_unknown_runtime(explanation: str) -> bool:
    """The engine does not know the requested `runtime` (e.g. gVisor's `runsc` not registered).
    Docker reports that as a plain `APIError` (400 "Unknown runtime specified …"; older engines
    word it otherwise), the status it gives any bad argument, so only the text tells it apart."""
    return "runtime" in explanation and ("unknown" in explanation.lower() or "not" in explanation)


def user_ids(user: str) -> tuple[int, int]:
    """`uid:gid` of user code, checked: numeric, and never root (root would share the supervisor's uid)."""
    uid, _, gid = user.partition(":")
    if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0:
        raise SandboxError(f"sandbox user must be a numeric non-root 'uid:gid', not {user!r}")
    return int(uid), int(gid)


def _create_and_start(s: SandboxSettings) -> str:
    client = docker_client()
    uid, gid = user_ids(s.user)
    config = client.api.create_container_config(
        s.image,
        command=["python3", "-S", "-c", "import os; exec(os.environ.pop('WORKBENCH_SUPERVISOR'))"],
        user="0:0",  # the supervisor only: it runs user code as `s.user` (see supervisor.seal)
        working_dir=WORKSPACE,
        environment={"HOME": WORKSPACE, "WORKBENCH_SUPERVISOR": SUPERVISOR_SOURCE, "WORKBENCH_WORKER": WORKER_SOURCE,
                     "WORKBENCH_USER": f"{uid}:{gid}"},
        stdin_open=True,
        labels={PROJECT_LABEL: "session", OWNER_LABEL: OWNER, **s.labels},
        host_config=host_config(client, s),
    )
    config["StdinOnce"] = True  # our attach closing (the host process died) ends the container
    try:
        created = _engine_call(client.api.create_container_from_config, config)
    except ImageMissingError:
        raise ImageMissingError(s.image) from None
    try:
        _engine_call(client.api.start, created["Id"])
    except BaseException:
        remove_container(created["Id"])
        raise
    return str(created["Id"])


def remove_container(container_id: str) -> None:
    """SIGKILL and remove at once: sandboxes get no SIGTERM grace period."""
    try:
        docker_client().api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        # With force=True the engine's only conflict (409) is "removal … is already in progress".
        if e.status_code != HTTPStatus.CONFLICT:
            logger.warning("could not remove sandbox container %s: %s", container_id[:12], e)
            return
        try:  # auto_remove raced us: wait for the engine to finish, so "closed" means gone
            docker_client().api.wait(container_id, timeout=10, condition="removed")
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass


@dataclass
class SandboxContainer:
    """A running, hardened container and the open channel to its supervisor."""

    id: str
    channel: SupervisorChannel
    settings: SandboxSettings

    @classmethod
    async def start(cls, settings: SandboxSettings) -> SandboxContainer:
        with anyio.CancelScope(shield=True):  # a container created must be one we know of, to remove it
            container_id = await anyio.to_thread.run_sync(_create_and_start, settings)
        try:
            await anyio.lowlevel.checkpoint()  # a cancel that arrived meanwhile lands here, then cleanup
            api_version = docker_client().api.api_version
            channel = await SupervisorChannel.attach(container_id, api_version)
            hello = await channel.request("ping", 30, max_reply_bytes("ping", 0, 0))
            if not hello["sealed"]:
                raise SandboxError("the sandbox supervisor could not reach its sealed state (root with only KILL, "
                                   "SETUID and SETGID, an empty bounding set, no_new_privs, non-dumpable), so code "
                                   "in the container could reach its control channel; refusing the container "
                                   f"(runtime {settings.runtime or 'default'})")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(remove_container, container_id)
            raise
        return cls(container_id, channel, settings)

    async def remove(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.channel.aclose()
            await anyio.to_thread.run_sync(remove_container, self.id)

    def oom_killed(self) -> bool:
        """Whether the engine saw the container's main process OOM-killed (it is gone then)."""
        try:
            return bool(docker_client().api.inspect_container(self.id)["State"].get("OOMKilled"))
        except docker.errors.APIError:
            return False


async def engine_memory() -> int:
    """Bytes of memory the Docker engine's machine has (what the default sandbox budget halves)."""
    info = await anyio.to_thread.run_sync(lambda: _engine_call(docker_client().info))
    return int(info["MemTotal"])


def project_containers(client: docker.DockerClient, owner: str | None = None) -> list[dict[str, Any]]:
    """The project's containers (by label only — never anyone else's), optionally of one owner."""
    # `=session`, not just the key: containers inherit the image's own `=image` label.
    labels = [f"{PROJECT_LABEL}=session"] + ([f"{OWNER_LABEL}={owner}"] if owner else [])
    found: list[dict[str, Any]] = client.api.containers(all=True, filters={"label": labels})  # untyped in the stubs
    return found


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's (or unreadable): not ours to judge
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_project_containers(
    client: docker.DockerClient, *, orphans_only: bool, owner: str | None = None
) -> list[str]:
    """Remove the project's containers; with `orphans_only`, just those whose creating
    process on this machine is gone (left by a crash). Returns the removed ids."""
    removed = []
    for c in project_containers(client, owner):
        if orphans_only and _owner_alive(c["Labels"].get(OWNER_LABEL, "")):
            continue
        remove_container(c["Id"])
        removed.append(c["Id"])
    return removed


async def reap_orphans() -> list[str]:
    """The reaper: remove containers a crashed process of this project left behind."""
    return await anyio.to_thread.run_sync(
        lambda: remove_project_containers(docker_client(), orphans_only=True))
