import json
from pathlib import Path

import pytest

from workbench.cli.config import ConfigError, load_config, parse_config


def test_example_config_loads() -> None:
    cfg = load_config(Path(__file__).parents[2] / "examples" / "workbench.toml")
    assert {"demo", "everything"} <= set(cfg.servers)
    assert cfg.servers["demo"].transport == "stdio"
    assert cfg.sandbox.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[servers.a]\ncommand = "x"\nargz = []\n', "w.toml:3: servers.a.argz: unknown key"),
        ('[servers.a]\ncommand = "x"\n\n[servers.b]\nurl = "http://h/mcp"\ntimeout = "slow"\n', "w.toml:6: servers.b.timeout"),
        ('[servers.a]\nargs = ["x"]\n', "w.toml:1: servers.a: give exactly one of 'command'"),
        ('[servers.a]\ncommand = "x"\nurl = "http://h"\n', "servers.a: give exactly one"),
        ('[servers.a]\nurl = "127.0.0.1:9/mcp"\n', "w.toml:1: servers.a: url must start with http:// or https://"),
        ('[servers.a]\ncommand = "x"\nmode = "2024"\n', "w.toml:3: servers.a.mode"),
        ('[sandbox]\nmemory = 5\n', "w.toml:2: sandbox.memory"),
        ('[agents.x]\nmodel = "nope"\n[models.m]\nmodel = "gpt"\n', "agents.x.model: no model 'nope'"),
        ('[teams.t]\nmembers = ["ghost"]\n', "teams.t.members: no agent or team 'ghost'"),
        ("[servers\n", "w.toml: not valid TOML"),
    ],
)
def test_errors_name_the_key_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, source="w.toml", environ={})
    assert message in str(e.value)


def test_env_expansion() -> None:
    cfg = parse_config(
        '[servers.a]\ncommand = "${BIN}"\nargs = ["--token", "${TOKEN:-none}"]\nenv = { K = "${K}" }\n',
        environ={"BIN": "/usr/bin/srv", "K": "secret"},
    )
    assert cfg.servers["a"].command == "/usr/bin/srv"
    assert cfg.servers["a"].args == ["--token", "none"]
    assert cfg.servers["a"].env == {"K": "secret"}
    with pytest.raises(ConfigError, match=r"^w\.toml: servers\.a\.env\.K: environment variable K is not set: export K="):
        parse_config('[servers.a]\ncommand = "x"\nenv = { K = "${K}" }\n', source="w.toml", environ={})


def test_claude_desktop_and_vscode_json(tmp_path: Path) -> None:
    claude = tmp_path / "claude_desktop_config.json"
    claude.write_text(json.dumps({"mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], "env": {"A": "1"}},
        "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"X": "y"}},
        "old": {"url": "http://127.0.0.1:9/sse"},
    }}))
    cfg = load_config(claude)
    assert cfg.servers["fs"].transport == "stdio" and cfg.servers["fs"].env == {"A": "1"}
    assert cfg.servers["remote"].transport == "http" and cfg.servers["remote"].headers == {"X": "y"}
    assert cfg.servers["old"].transport == "sse"
    assert cfg.base_dir == tmp_path

    vscode = tmp_path / "mcp.json"
    vscode.write_text(json.dumps({"servers": {"s": {"type": "stdio", "command": "srv"}}, "inputs": []}))
    assert load_config(vscode).servers["s"].command == "srv"

    bad = tmp_path / "bad.json"
    bad.write_text('{"mcpServers": {"a": {"command": "x",}}}')
    with pytest.raises(ConfigError, match="bad.json: not valid JSON.*line 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    for not_servers in ("[]", '"x"', '{"mcpServers": 3}'):  # valid JSON, wrong shape: an error, not a crash
        bad.write_text(not_servers)
        with pytest.raises(ConfigError, match="bad.json: expected an object under 'mcpServers'"):
            load_config(bad)
