"""Errors the sandbox raises on purpose; each message says what happened and what to do."""

from __future__ import annotations

from workbench.core import WorkbenchError

ENSURE_DOCKER = "bash scripts/ensure_docker.sh"
BUILD_COMMAND = "workbench sandbox build"


class SandboxError(WorkbenchError):
    """Base of the sandbox's errors."""


class EngineUnavailableError(SandboxError):
    """No Docker engine answers."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the Docker engine is not reachable ({detail}); start it with `{ENSURE_DOCKER}` "
                         "(or point DOCKER_HOST at a running engine)")

    @classmethod
    def from_os_error(cls, e: OSError) -> EngineUnavailableError:
        return cls(e.strerror or str(e))


class ImageMissingError(SandboxError):
    def __init__(self, image: str) -> None:
        super().__init__(f"the sandbox image {image!r} does not exist; build it with `{BUILD_COMMAND}`")


class SandboxCrashedError(SandboxError):
    """The container or its supervisor went away mid-request."""

    oom_killed: bool = False
    """Whether the engine saw the container killed for its memory limit."""


class SandboxProtocolError(SandboxCrashedError):
    """A frame from the container broke the protocol (too big, not JSON, wrong shape, unasked
    for): the container is treated as compromised and replaced."""


class SandboxCapacityError(SandboxError):
    """A cap on sandboxes (in total, by memory, or per identity) is reached."""


class SandboxClosedError(SandboxError):
    def __init__(self) -> None:
        super().__init__("this sandbox is closed; open a new DockerSandbox")
