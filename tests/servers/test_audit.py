"""The audit log: one JSON line per tool call through the real server — who, which session, which
tool, how it ended, how long, how many bytes in and out — and never an argument value, a result
or a token, even when they are secrets."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from serve_toolkit import ServeBench
from serving import http_client, serving

import servers.audit as audit
from servers import ServeSettings
from servers.audit import MAX_LOGGED_NAME, AuditConfig
from servers.policy import PolicyConfig, PolicyRule
from servers.rate_limit import LimitsConfig

pytestmark = pytest.mark.anyio

ALICE_TOKEN = "alice-" + "a" * 26
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
SECRET = "hunter2-do-not-log-7f3a9c"


@pytest.fixture
def audit_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "audit" / "audit.log"
    yield path
    handler = audit._file_handlers.pop(path.resolve(), None)
    if handler is not None:
        audit.audit_logger.removeHandler(handler)
        handler.close()


def settings(path: Path, **extra: Any) -> ServeSettings:
    return ServeSettings(
        transport="http", tokens={"alice": ALICE_TOKEN}, audit=AuditConfig(file=str(path)),
        policy=PolicyConfig(rules=[PolicyRule(identities=["alice"], tools=["*"], deny_tools=["add"])]),
        **extra,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def wait_for_lines(path: Path, count: int) -> list[dict[str, Any]]:
    with anyio.fail_after(10):
        while not path.exists() or len(found := lines(path)) < count:
            await anyio.sleep(0.02)
    return found


async def test_one_line_per_call_with_outcome_and_sizes_never_values(
        audit_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bench = ServeBench()
    async with serving(bench, settings(audit_file, limits=LimitsConfig(calls_per_minute=4))) as served, \
            http_client(served.url, mode="legacy", headers=ALICE) as alice:
        ok = await alice.call_tool("echo", {"text": SECRET})
        assert ok.content[0].text == SECRET
        await alice.call_tool("fail", {"reason": SECRET})
        await alice.call_tool("add", {"a": 1, "b": 2})  # denied by the policy
        with anyio.move_on_after(1):  # the client gives up: the call is cancelled
            await alice.call_tool("slow", {"seconds": 30, "tag": SECRET})
        found = await wait_for_lines(audit_file, 4)
        await alice.call_tool("echo", {"text": "x"})  # the 5th call this minute: over the rate
        found = await wait_for_lines(audit_file, 5)

    outcomes = [(e["tool"], e["outcome"]) for e in found]
    assert outcomes == [("echo", "ok"), ("fail", "error"), ("add", "refused:policy"), ("slow", "cancelled"),
                        ("echo", "refused:rate")]
    first = found[0]
    assert first["logger"] == "workbench.audit" and first["identity"] == "alice"
    assert first["session"].startswith("http-")
    assert first["argument_bytes"] == len(json.dumps({"text": SECRET}, separators=(",", ":")).encode())
    assert first["result_bytes"] > len(SECRET)
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert "result_bytes" not in found[3]  # a cancelled call has no result
    raw = audit_file.read_text()
    assert SECRET not in raw and ALICE_TOKEN not in raw
    # nor in the rest of the server's own log (the SDK's debug lines carry payloads by design)
    ours = [r for r in caplog.records if r.name.startswith("workbench")]
    assert any(r.name == "workbench.audit" for r in ours)
    assert not [r for r in ours if SECRET in r.getMessage() or SECRET in json.dumps(vars(r), default=str)]
    assert stat.S_IMODE(os.stat(audit_file).st_mode) == 0o600


async def test_the_file_rotates_and_a_huge_tool_name_is_cut(audit_file: Path) -> None:
    path_settings = settings(audit_file)
    path_settings.audit = AuditConfig(file=str(audit_file), max_bytes=4096, backups=2)
    async with serving(ServeBench(), path_settings) as served, \
            http_client(served.url, mode="legacy", headers=ALICE) as alice:
        for _ in range(30):
            await alice.call_tool("echo", {"text": "y" * 50})
        long_name = "x" * 100_000
        with pytest.raises(MCPError):  # unknown tool: a protocol error, still audited
            await alice.call_tool(long_name, {})
        last = (await wait_for_lines(audit_file, 1))[-1]
        assert last["tool"] == "x" * MAX_LOGGED_NAME + "…" and last["outcome"] == "error"
    rotated = sorted(p.name for p in audit_file.parent.iterdir())
    assert rotated == ["audit.log", "audit.log.1", "audit.log.2"]
    everything = "".join((audit_file.parent / name).read_text() for name in rotated)
    assert long_name not in everything
    assert all(len(e["tool"]) <= MAX_LOGGED_NAME + 1 for name in rotated for e in lines(audit_file.parent / name))


async def test_a_background_run_says_which_tool_and_which_job(audit_file: Path) -> None:
    async with serving(ServeBench(), settings(audit_file, background=["slow"])) as served, \
            http_client(served.url, mode="legacy", headers=ALICE) as alice:
        started = await alice.call_tool("jobs__start", {"tool": "slow", "arguments": {"seconds": 0.05, "tag": SECRET}})
        job = started.structured_content["job_id"]
        entry = (await wait_for_lines(audit_file, 1))[0]
    assert (entry["tool"], entry["job_tool"], entry["job"], entry["outcome"]) == ("jobs__start", "slow", job, "ok")
    assert SECRET not in audit_file.read_text()


async def test_switched_off_it_records_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from servers.audit import Audited

    caplog.set_level(logging.INFO, logger="workbench.audit")
    bench = ServeBench()
    await Audited(bench, AuditConfig(enabled=False)).call_tool("echo", {"text": "x"})
    assert not [r for r in caplog.records if r.name == "workbench.audit"]
    await Audited(bench).call_tool("echo", {"text": "x"})
    assert [r.name for r in caplog.records if r.name == "workbench.audit"] == ["workbench.audit"]


async def test_the_line_is_the_record_logging_would_make_and_a_custom_record_factory_still_makes_it(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit's record comes from a template (cheaper than `makeRecord`): every attribute a handler
    or formatter may read is there, as `makeRecord` sets it; with a record factory installed (a
    library adding fields to every record), the factory makes it."""
    from servers.audit import Audited

    caplog.set_level(logging.INFO, logger="workbench.audit")
    await Audited(ServeBench()).call_tool("echo", {"text": "x"})
    [line] = [r for r in caplog.records if r.name == "workbench.audit"]
    made = logging.getLogger("workbench.audit").makeRecord("workbench.audit", logging.INFO, audit.__file__, 0,
                                                           "tool call", (), None, "call_tool", {"tool": "echo"})
    assert set(vars(made)) - {"tool"} <= set(vars(line))
    for key in ("name", "levelname", "pathname", "module", "funcName", "process", "processName", "thread",
                "threadName", "msg"):
        assert getattr(line, key) == getattr(made, key), key
    assert abs(line.created - made.created) < 60 and line.getMessage() == "tool call" and line.tool == "echo"

    default = logging.getLogRecordFactory()

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = default(*args, **kwargs)
        record.tag = "factory"
        return record

    monkeypatch.setattr(logging, "_logRecordFactory", tagged)
    await Audited(ServeBench()).call_tool("echo", {"text": "x"})
    assert [getattr(r, "tag", None) for r in caplog.records if r.name == "workbench.audit"] == [None, "factory"]
