"""`serve_workbench` in its own process, as `workbench serve` runs it: stdio in both eras, and
graceful SIGTERM — no completed result lost, overdue calls cancelled, sessions closed, the
workbench stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import mcp.types as mt
import pytest
from mcp import Client, StdioServerParameters
from serving import SCRIPT, free_port, http_client, script_env

pytestmark = pytest.mark.anyio


async def test_stdio_serves_both_eras_and_closes_the_session(mode: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    params = StdioServerParameters(command=sys.executable, args=[str(SCRIPT), "stdio"],
                                   env=script_env(SERVE_REPORT=str(report)))
    progress: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    async with Client(params, mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        assert "add" in {t.name for t in (await client.list_tools()).tools}
        assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {"total": 3}
        assert (await client.call_tool("slow", {"seconds": 0.1}, progress_callback=on_progress)).content[0].text == "slept 0.1"
        session = (await client.call_tool("whoami", {})).structured_content["session"]
    assert progress == [1, 2]
    with anyio.fail_after(10):
        while not report.exists():
            await anyio.sleep(0.05)
    seen = json.loads(report.read_text())
    assert session.startswith("stdio-") and seen["closed"] == [session] and seen["stopped"]


def _start_http(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    report = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "http", str(port), *extra],
                            env=script_env(SERVE_REPORT=str(report)), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc, f"http://127.0.0.1:{port}/mcp", report
        except httpx2.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


async def test_sigterm_under_load_loses_no_completed_result(tmp_path: Path) -> None:
    proc, url, report = _start_http(tmp_path, "--grace", "5")
    results: dict[str, mt.CallToolResult] = {}
    try:
        async with http_client(url, mode="legacy") as legacy, http_client(url) as modern:

            async def call(client: Client, tag: str, seconds: float) -> None:
                results[tag] = await client.call_tool("slow", {"seconds": seconds, "tag": tag})

            async with anyio.create_task_group() as tg:
                for i in range(12):
                    tg.start_soon(call, legacy if i % 2 else modern, f"t{i}", 0.5 + 0.1 * i)
                await anyio.sleep(0.3)  # every call is running now
                proc.send_signal(signal.SIGTERM)
                await anyio.sleep(0.2)
                late = await modern.call_tool("echo", {"text": "too late"})
            assert late.is_error and "shutting down" in late.content[0].text
        with anyio.fail_after(15):
            while proc.poll() is None:
                await anyio.sleep(0.05)
    finally:
        proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert sorted(results) == sorted(f"t{i}" for i in range(12))
    assert all(not r.is_error and r.content[0].text.startswith("slept") for r in results.values())
    seen = json.loads(report.read_text())
    assert sorted(seen["finished"]) == sorted(results) and seen["running"] == [] and seen["stopped"]
    assert len(seen["closed"]) == 2  # the legacy session and the stateless one
    logs = [json.loads(line) for line in proc.stderr.read().decode().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "shutting down" and entry.get("signal") == "SIGTERM" for entry in logs)
    assert sum(entry["msg"] == "tool call" for entry in logs) >= 12


async def test_calls_overrunning_the_grace_are_cancelled_with_an_error(tmp_path: Path) -> None:
    proc, url, report = _start_http(tmp_path, "--grace", "0.5")
    try:
        async with http_client(url) as client:
            async with anyio.create_task_group() as tg:
                result: list[mt.CallToolResult] = []

                async def long_call() -> None:
                    result.append(await client.call_tool("slow", {"seconds": 30, "tag": "long"}))

                tg.start_soon(long_call)
                await anyio.sleep(0.3)
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            while proc.poll() is None:
                await anyio.sleep(0.05)
        assert time.monotonic() - started < 6
    finally:
        proc.kill()
    assert result[0].is_error and "cancelled" in result[0].content[0].text
    seen = json.loads(report.read_text())
    assert seen["cancelled"] == ["long"] and seen["running"] == [] and seen["stopped"]


async def test_sigterm_stops_a_stdio_server_whose_client_keeps_stdin_open(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "stdio"], env=script_env(SERVE_REPORT=str(report)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
        proc.stdin.write((json.dumps(init) + "\n").encode())
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["result"]["serverInfo"]["name"] == "mcp-workbench"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert json.loads(report.read_text())["stopped"]
