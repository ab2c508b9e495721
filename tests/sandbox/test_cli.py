"""`workbench sandbox …` through its Typer app, and scripts/ensure_docker.sh on a running engine."""

from __future__ import annotations

import subprocess

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from tests.conftest import ROOT

pytestmark = pytest.mark.docker
runner = CliRunner()


def test_build_if_missing_skips_an_existing_image() -> None:
    r = runner.invoke(app, ["build", "--if-missing"])
    assert r.exit_code == 0 and "already exists" in r.output


def test_run_bash_and_python_pass_output_and_exit_code_through() -> None:
    r = runner.invoke(app, ["run", "--lang", "bash", "id -u; uname -s"])
    assert r.exit_code == 0 and r.stdout.split() == ["1000", "Linux"]
    r = runner.invoke(app, ["run", "import sys; print('py'); sys.exit(3)"])
    assert r.exit_code == 3 and r.stdout == "py\n"
    r = runner.invoke(app, ["run", "--timeout", "1", "--lang", "bash", "sleep 5"])
    assert r.exit_code != 0 and "timed out" in r.output


def test_bad_input_is_a_clear_error() -> None:
    r = runner.invoke(app, ["run", "--lang", "ruby", "puts 1"])
    assert r.exit_code == 2 and "--lang must be python or bash" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["run", "--timeout", "0", "print(1)"])
    assert r.exit_code == 2 and "--timeout must be a positive number" in r.output
    r = runner.invoke(app, ["run", "--image", "mcp-workbench-sandbox:nope", "1"])
    assert r.exit_code == 1 and "workbench sandbox build" in r.output


def test_ls_and_prune_orphans() -> None:
    r = runner.invoke(app, ["ls"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["prune", "--orphans"])
    assert r.exit_code == 0 and r.output.startswith("removed ")


def test_ensure_docker_leaves_a_running_engine_alone() -> None:
    out = subprocess.run(["bash", str(ROOT / "scripts/ensure_docker.sh")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "already running; leaving it alone" in out.stderr
