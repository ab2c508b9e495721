"""Hardened Docker sandboxes for agent-written code, served as workbench tools.

    async with DockerSandbox() as box:
        await box.run("python", "x = 41")
        print((await box.run("python", "print(x + 1)")).stdout)   # 42
"""

from sandbox.box import DockerSandbox, FileEntry, RunResult
from sandbox.errors import EngineUnavailableError, ImageMissingError, SandboxCrashedError, SandboxError
from sandbox.settings import SandboxSettings
from sandbox.workbench import SandboxWorkbench

__all__ = [
    "DockerSandbox", "EngineUnavailableError", "FileEntry", "ImageMissingError", "RunResult",
    "SandboxCrashedError", "SandboxError", "SandboxSettings", "SandboxWorkbench",
]
