"""`workbench sandbox build | run | ls | prune`."""

from __future__ import annotations

import sys
from typing import Annotated, Literal, NoReturn

import anyio
import typer

from sandbox.box import DockerSandbox
from sandbox.container import docker_client, project_containers, remove_project_containers
from sandbox.errors import SandboxError
from sandbox.image import build_dockerfile, build_offline, image_exists, registry_reachable
from sandbox.settings import DEFAULT_IMAGE, OWNER_LABEL, SandboxSettings

app = typer.Typer(no_args_is_help=True, help="The Docker sandbox: image, one-off runs, the project's containers.")


def _fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr; exit 1 for a failure, 2 for bad usage (as `workbench` does)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def build(
    tag: Annotated[str, typer.Option(help="Image tag to build.")] = DEFAULT_IMAGE,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing when the image already exists.")] = False,
    dockerfile: Annotated[
        bool, typer.Option("--dockerfile", help="Build from sandbox/Dockerfile (needs a registry).")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Force the debootstrap build, even with a registry.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show steps only, not every line of output.")] = False,
) -> None:
    """Build the sandbox image: offline with debootstrap + `docker import`, or from the
    Dockerfile when a registry is reachable (or --dockerfile)."""
    try:
        client = docker_client()
        if if_missing and image_exists(client, tag):
            typer.echo(f"{tag} already exists; nothing to do")
            return
        use_dockerfile = dockerfile or (not offline and registry_reachable(client))
        progress = (lambda line: None if line.startswith("  ") else typer.echo(line)) if quiet else typer.echo
        typer.echo(f"building {tag} " + ("from sandbox/Dockerfile" if use_dockerfile else "offline (debootstrap)"))
        (build_dockerfile if use_dockerfile else build_offline)(tag, progress)
    except SandboxError as e:  # ImageBuildError included
        _fail(str(e))


@app.command()
def run(
    code: Annotated[str, typer.Argument(help="The code to run; '-' reads it from stdin.")],
    lang: Annotated[str, typer.Option("--lang", "-l", help="python or bash.")] = "python",
    timeout: Annotated[float, typer.Option(help="Wall-clock seconds.")] = 30.0,
    image: Annotated[str, typer.Option(help="Sandbox image.")] = DEFAULT_IMAGE,
    runtime: Annotated[str | None, typer.Option(help="Container runtime, e.g. runsc (gVisor).")] = None,
) -> None:
    """Run code once in a fresh hardened sandbox; its stdout/stderr and exit code are passed through."""
    if lang not in ("python", "bash"):
        _fail(f"--lang must be python or bash, not {lang!r}", 2)
    if timeout <= 0:  # else the run is killed before it starts and reported as "timed out"
        _fail(f"--timeout must be a positive number of seconds, not {timeout:g}", 2)
    source = sys.stdin.read() if code == "-" else code
    language: Literal["python", "bash"] = "python" if lang == "python" else "bash"

    async def once() -> int:
        async with DockerSandbox(SandboxSettings(image=image, runtime=runtime, timeout=timeout)) as box:
            r = await box.run(language, source)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        for note in r.notes:
            typer.secho(f"[{note}]", fg=typer.colors.YELLOW, err=True)
        return r.exit_code if r.exit_code is not None else 1

    try:
        exit_code = anyio.run(once)
    except SandboxError as e:
        _fail(str(e))
    raise typer.Exit(exit_code if 0 <= exit_code < 256 else 128 + abs(exit_code))


@app.command("ls")
def list_containers() -> None:
    """The project's sandbox containers (and only those)."""
    try:
        containers = project_containers(docker_client())
    except SandboxError as e:
        _fail(str(e))
    if not containers:
        typer.echo("no sandbox containers")
        return
    typer.echo(f"{'CONTAINER':<14}{'STATE':<10}{'OWNER':<28}STATUS")
    for c in containers:
        typer.echo(f"{c['Id'][:12]:<14}{c['State']:<10}{c['Labels'].get(OWNER_LABEL, '?'):<28}{c['Status']}")


@app.command()
def prune(
    orphans: Annotated[bool, typer.Option("--orphans", help="Only those whose creating process is gone.")] = False,
) -> None:
    """Remove the project's sandbox containers (selected by the project's label; nothing else is touched)."""
    try:
        removed = remove_project_containers(docker_client(), orphans_only=orphans)
    except SandboxError as e:
        _fail(str(e))
    typer.echo(f"removed {len(removed)} sandbox container(s)" + "".join(f"\n  {cid[:12]}" for cid in removed))
