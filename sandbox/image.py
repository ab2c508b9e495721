"""Building the sandbox image.

No container registry is reachable on the machines this project runs on, so the
default build is offline: a Debian root filesystem made with `debootstrap` from the
machine's own apt mirror, imported with `docker import`. Where a registry answers,
`sandbox/Dockerfile` gives the same image (same packages, user, labels, env).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from sandbox.errors import SandboxError
from sandbox.settings import DEFAULT_IMAGE, PROJECT_LABEL, SANDBOX_UID, WORKSPACE

PACKAGES = ["python3", "python3-venv", "python-is-python3", "bash", "coreutils", "procps", "findutils", "grep", "sed",
            "gawk", "tar", "gzip", "xz-utils", "bzip2", "file", "less", "ca-certificates", "iputils-ping", "netbase"]
"""What agent code expects to find; kept in step with sandbox/Dockerfile."""

IMAGE_ENV = {"HOME": WORKSPACE, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
             "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

DOCKERFILE = Path(__file__).with_name("Dockerfile")

Progress = Callable[[str], None]


class ImageBuildError(SandboxError):
    """The image could not be built; the message says which step failed and what to try."""


def apt_source(apt_dir: Path = Path("/etc/apt")) -> tuple[str, str]:
    """The (mirror URI, suite) of the machine's main Debian source, from deb822 `.sources`
    files or the classic `sources.list` — never a hard-coded host."""
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            pairs = (line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            fields = {k.strip().lower(): v.strip() for k, v in pairs}
            uris, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
            if "deb" in fields.get("types", "").split() and uris and suites and "security" not in uris[0]:
                return uris[0], suites[0]
    classic = apt_dir / "sources.list"
    if classic.exists():
        for line in classic.read_text().splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1), m.group(2)
    raise ImageBuildError("no Debian apt source found in /etc/apt/sources.list(.d); debootstrap needs a mirror")


def image_exists(client: docker.DockerClient, tag: str = DEFAULT_IMAGE) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mcp-workbench"


def _run(cmd: list[str], progress: Progress, step: str) -> None:
    """Run one build step, streaming its output lines to `progress`."""
    progress(f"{step}: {' '.join(cmd[:3])} …")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        progress(f"  {line.rstrip()}")
    if proc.wait() != 0:
        raise ImageBuildError(f"{step} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def _make_rootfs_tar(progress: Progress) -> Path:
    """A gzip'd Debian root filesystem with the sandbox user, cached by mirror+suite+packages
    so a rebuild (e.g. after `docker system prune`) skips debootstrap."""
    mirror, suite = apt_source()
    key = hashlib.sha256(f"{mirror} {suite} {' '.join(PACKAGES)} {SANDBOX_UID}".encode()).hexdigest()[:12]
    cached = _cache_dir() / f"sandbox-rootfs-{suite}-{key}.tar.gz"
    if cached.exists():
        progress(f"using cached root filesystem {cached}")
        return cached
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed: run `apt-get install -y debootstrap` "
                              "(or `bash scripts/ensure_docker.sh`, which installs it)")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root: run `sudo workbench sandbox build`")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mcp-workbench-rootfs-") as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(root), mirror],
             progress, f"debootstrap {suite} from {mirror}")
        # The non-root user is written directly: no chroot, no useradd, nothing runs as root inside.
        with open(root / "etc/passwd", "a") as f:
            f.write(f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{WORKSPACE}:/bin/bash\n")
        with open(root / "etc/group", "a") as f:
            f.write(f"sandbox:x:{SANDBOX_UID}:\n")
        (root / WORKSPACE.lstrip("/")).mkdir(mode=0o755, exist_ok=True)
        os.chown(root / WORKSPACE.lstrip("/"), SANDBOX_UID, SANDBOX_UID)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / junk, ignore_errors=True)
        partial = cached.with_suffix(".partial")
        _run(["tar", "--numeric-owner", "-C", str(root), "-czf", str(partial), "."], progress,
             "packing root filesystem")
        partial.rename(cached)
    for stale in cached.parent.glob("sandbox-rootfs-*.tar.gz"):
        if stale != cached:
            stale.unlink()
    return cached


def build_offline(tag: str = DEFAULT_IMAGE, progress: Progress = print) -> None:
    """debootstrap + `docker import`: needs root, debootstrap and an apt mirror; no registry."""
    tar = _make_rootfs_tar(progress)
    changes = [f"USER {SANDBOX_UID}:{SANDBOX_UID}", f"WORKDIR {WORKSPACE}", f'LABEL {PROJECT_LABEL}="image"',
               'CMD ["python3"]'] + [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
    cmd = ["docker", "import"] + [a for c in changes for a in ("--change", c)] + [str(tar), tag]
    client = docker.from_env()
    previous = client.images.get(tag).id if image_exists(client, tag) else None
    _run(cmd, progress, f"docker import as {tag}")
    if previous and previous != client.images.get(tag).id:
        try:  # the old build, now untagged; kept if a container still uses it
            client.images.remove(previous)
        except docker.errors.APIError:
            pass
    progress(f"built {tag}")


def build_dockerfile(tag: str = DEFAULT_IMAGE, progress: Progress = print) -> None:
    """The registry path: `docker build` of sandbox/Dockerfile (needs debian:bookworm-slim)."""
    _run(["docker", "build", "--progress=plain", "-t", tag, "-f", str(DOCKERFILE), str(DOCKERFILE.parent)],
         progress, f"docker build as {tag}")
    progress(f"built {tag}")


def registry_reachable(client: docker.DockerClient) -> bool:
    """True when the Dockerfile's base image is present or can be pulled."""
    try:
        client.images.get("debian:bookworm-slim")
        return True
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull("debian", tag="bookworm-slim")
        return True
    except docker.errors.APIError:
        return False
