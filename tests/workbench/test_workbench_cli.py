"""The `workbench` command as a user runs it: a real process, a real MCP server behind it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def workbench(*args: str, cwd: Path = ROOT, stdin: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WORKBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=60, input=stdin,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "workbench.toml"
    path.write_text(
        f"""
[servers.demo]
command = "${{WORKBENCH_PYTHON}}"
args = ["{ROOT / 'examples/servers/demo_server.py'}"]

[servers.broken]
command = "{sys.executable}"
args = ["-c", "import sys; sys.exit('cannot start: missing API key')"]

# An agent makes the workbench nest the sources in a composite, as the example config does.
[agents.exec]
kind = "code_executor"
"""
    )
    return path


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_tools_lists_every_source_and_warns_about_dead_ones(config: Path) -> None:
    proc = workbench("tools", "--config", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    names = {t["name"] for t in json.loads(proc.stdout)}
    assert {"demo__add", "demo__echo", "demo__countdown"} <= names
    assert "broken" in proc.stderr and "down" in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "broken" in line]) == 1  # said once, not per retry
    assert_no_traceback(proc)


def test_call_success_error_and_usage_exit_codes(config: Path) -> None:
    ok = workbench("call", "demo__add", '{"a": 2, "b": 40}', "--config", str(config))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"total": 42.0}

    as_json = workbench("call", "demo__add", '{"a": 1, "b": 1}', "--config", str(config), "--json")
    assert json.loads(as_json.stdout)["structuredContent"] == {"total": 2.0}

    tool_error = workbench("call", "demo__add", '{"a": "two"}', "--config", str(config))
    assert tool_error.returncode == 1
    assert "a" in tool_error.stdout.lower()

    down = workbench("call", "broken__anything", "{}", "--config", str(config))
    assert down.returncode == 1 and "source 'broken' is down" in down.stdout, (down.stdout, down.stderr)

    for args, needle in [
        (("call", "demo__ad", "{}"), "did you mean demo__add"),
        (("call", "demo__add", "{not json"), "not valid JSON"),
        (("call", "demo__add", "[1, 2]"), "must be a JSON object"),
        (("call", "demo__add", "{}", "--timeout", "0"), "--timeout must be a positive number"),
    ]:
        proc = workbench(*args, "--config", str(config))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert needle in proc.stderr
        assert_no_traceback(proc)


def test_help_names_the_config_fallbacks() -> None:
    # Help text goes through rich markup: a "[env: …]" note would silently vanish.
    proc = workbench("tools", "--help")
    assert "WORKBENCH_CONFIG" in proc.stdout and "./workbench.toml" in proc.stdout


def test_call_reads_arguments_from_stdin(config: Path) -> None:
    proc = workbench("call", "demo__echo", "-", "--config", str(config), stdin='{"message": "from stdin"}')
    assert proc.returncode == 0 and proc.stdout.strip() == "from stdin"


def test_config_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[servers.x]\ncommand = "a"\ntimout = 3\n')
    proc = workbench("tools", "--config", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:3: servers.x.timout: unknown key" in proc.stderr
    missing = workbench("tools", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    from_env = subprocess.run([*WORKBENCH, "tools"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "WORKBENCH_CONFIG": str(tmp_path / "gone.toml")})
    assert from_env.returncode == 2 and "gone.toml does not exist" in from_env.stderr
    assert "comes from $WORKBENCH_CONFIG" in from_env.stderr
    assert_no_traceback(proc)
    assert_no_traceback(missing)


def test_tools_table_prints_descriptions_literally(tmp_path: Path) -> None:
    # Descriptions come from servers: brackets are text, not rich markup, and hard wraps are joined.
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f"""
[servers.demo]
command = "${{WORKBENCH_PYTHON}}"
args = ["{ROOT / 'examples/servers/demo_server.py'}"]
descriptions = {{ add = "Adds [b]x[/b] [/]\\nand more.\\n\\nSecond paragraph.", echo = "  " }}

[sandbox]
enabled = false
"""
    )
    proc = workbench("tools", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert "Adds [b]x[/b] [/] and more." in proc.stdout and "Second paragraph" not in proc.stdout
    assert_no_traceback(proc)


def test_run_agent_without_model_says_what_to_set(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        '[models.m]\nmodel = "x"\napi_key_env = "WB_CLI_TEST_NO_KEY"\n\n'
        '[agents.helper]\nmodel = "m"\n\n[teams.crew]\nmembers = ["helper"]\n\n[sandbox]\nenabled = false\n'
    )
    for name in ("helper", "crew"):
        proc = workbench("run", name, "hello", "--config", str(cfg))
        assert proc.returncode == 2, proc.stderr
        assert "export WB_CLI_TEST_NO_KEY=" in proc.stderr and "[models.m]" in proc.stderr
        assert proc.stdout == ""  # refused before the run started
        assert_no_traceback(proc)


def test_serve_refuses_unsafe_settings_as_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text('[serve]\nauth_token_env = "WB_CLI_TEST_NO_TOKEN"\n\n[sandbox]\nenabled = false\n')
    proc = workbench("serve", "--config", str(cfg), "--transport", "http", "--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2, proc.stderr
    assert "refusing to serve on 0.0.0.0 without authentication" in proc.stderr
    assert_no_traceback(proc)
    proc = workbench("serve", "--config", str(cfg), "--transport", "http", "--port", "70000")
    assert proc.returncode == 2 and "serve.port must be between 0 and 65535" in proc.stderr, proc.stderr
    assert_no_traceback(proc)


def test_doctor_warns_but_does_not_fail_for_a_model_without_key(tmp_path: Path) -> None:
    # The example config runs without a model (its agents switch off): doctor must not fail it for that.
    cfg = tmp_path / "w.toml"
    cfg.write_text('[models.m]\nmodel = "x"\napi_key_env = "WB_CLI_TEST_NO_KEY"\n\n[sandbox]\nenabled = false\n')
    proc = workbench("doctor", "--config", str(cfg))
    model_line = next(line for line in proc.stdout.splitlines() if "model m" in line)
    assert model_line.lstrip().startswith("!") and "export WB_CLI_TEST_NO_KEY=" in model_line
    assert proc.returncode == (1 if "✗" in proc.stdout else 0), proc.stdout  # only real failures fail
    assert_no_traceback(proc)


@pytest.mark.docker
def test_doctor_shows_the_sandbox_caps_and_fails_a_budget_too_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.container import docker_client
    from sandbox.errors import EngineUnavailableError

    try:
        docker_client()
    except EngineUnavailableError as e:
        pytest.skip(f"no Docker engine: {e}")
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps the table at 80 columns without a terminal
    cfg = tmp_path / "w.toml"
    cfg.write_text('[sandbox]\nmemory = "64m"\nmemory_budget = "200m"\n\n[serve]\nmax_sandboxes_per_identity = 2\n')
    proc = workbench("doctor", "--config", str(cfg))
    caps_line = next(line for line in proc.stdout.splitlines() if "sandbox caps" in line)
    assert caps_line.lstrip().startswith("✓"), proc.stdout
    assert re.search(r"3 sandboxes \(the 200 MiB memory budget at 64 MiB each\), 2 per identity; \d+ live now",
                     caps_line), caps_line
    assert_no_traceback(proc)

    cfg.write_text('[sandbox]\nmemory = "512m"\nmemory_budget = "100m"\n')  # cannot hold one box
    proc = workbench("doctor", "--config", str(cfg))
    caps_line = next(line for line in proc.stdout.splitlines() if "sandbox caps" in line)
    assert caps_line.lstrip().startswith("✗") and "sandbox.memory_budget (100 MiB)" in caps_line, proc.stdout
    assert proc.returncode == 1
    assert_no_traceback(proc)


def test_tools_counts_one_tool_in_the_singular(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[servers.demo]\ncommand = "${{WORKBENCH_PYTHON}}"\n'
                   f'args = ["{ROOT / "examples/servers/demo_server.py"}"]\ninclude = ["add"]\n')
    proc = workbench("tools", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "1 tool", proc.stderr


def test_an_agent_tools_glob_matching_nothing_is_a_warning_and_a_doctor_error(tmp_path: Path) -> None:
    # The example's coder, copied into a config without [sandbox]: its model would get no sandbox tools.
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[servers.demo]\ncommand = "${{WORKBENCH_PYTHON}}"\n'
                   f'args = ["{ROOT / "examples/servers/demo_server.py"}"]\n\n'
                   '[agents.exec]\nkind = "code_executor"\ntools = ["sandbox__*", "demo__*"]\n')
    proc = workbench("tools", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "sandbox__*" in line]
    assert len(warnings) == 1, proc.stderr
    assert "agents.exec.tools: 'sandbox__*' matches no tool of the configured sources (demo)" in warnings[0]
    assert "demo__*" not in proc.stderr  # a glob that matches is not reported
    assert_no_traceback(proc)

    doctor = workbench("doctor", "--config", str(cfg), env={"COLUMNS": "300"})
    line = next(line for line in doctor.stdout.splitlines() if "agent tools" in line)
    assert line.lstrip().startswith("✗") and "'sandbox__*' matches no tool" in line, doctor.stdout
    assert doctor.returncode == 1
    assert_no_traceback(doctor)


def test_serve_on_a_port_in_use_exits_2_with_one_line(tmp_path: Path) -> None:
    import socket

    cfg = tmp_path / "w.toml"
    cfg.write_text("[sandbox]\nenabled = false\n")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = workbench("serve", "--config", str(cfg), "--transport", "http", "--port", str(port))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"cannot serve on 127.0.0.1:{port}: another process listens there" in lines[0]


def test_an_agent_without_model_is_reported_once_with_how_to_turn_it_on(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text('[models.m]\nmodel = "x"\napi_key_env = "WB_CLI_TEST_NO_KEY"\n\n'
                   '[agents.helper]\nmodel = "m"\n\n[sandbox]\nenabled = false\n')
    proc = workbench("tools", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    off = [line for line in proc.stderr.splitlines() if "helper is off" in line]
    assert len(off) == 1, proc.stderr
    assert "export WB_CLI_TEST_NO_KEY=" in off[0] and "base_url under [models.m]" in off[0], off[0]
