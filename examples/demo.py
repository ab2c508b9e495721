"""Drive `workbench serve` end to end, as an MCP client would.

    .venv/bin/python examples/demo.py

Starts `workbench serve --transport http` on the example config, then with the
official `mcp` client: lists the tools, calls the demo server through the gateway,
runs Python twice in one sandbox session (state persists), streams progress from a
long tool, asks the code-executor agent to run a code block, and shuts the server
down with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
from mcp import Client

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "workbench.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"workbench serve exited with {proc.returncode}; see its output above")
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"workbench serve was not ready within {seconds:.0f} s")


def show(title: str, text: str) -> None:
    print(f"\n\033[1m{title}\033[0m\n{text.strip()}")


async def drive(url: str) -> None:
    async with Client(url) as client:
        tools = (await client.list_tools()).tools
        show(f"{len(tools)} tools over MCP ({client.protocol_version})", "\n".join(f"  {t.name}" for t in tools))

        r = await client.call_tool("demo__add", {"a": 2, "b": 40})
        show("demo__add through the gateway", str(r.structured_content))

        await client.call_tool("sandbox__run_python", {"code": "x = 41"})
        r = await client.call_tool("sandbox__run_python", {"code": "print(x + 1)"})
        show("sandbox__run_python, same session, state kept", r.content[0].text)

        async def progress(done: float, total: float | None, message: str | None) -> None:
            print(f"  progress {done:g}{f'/{total:g}' if total else ''} {message or ''}")

        show("demo__countdown with progress", "")
        r = await client.call_tool("demo__countdown", {"seconds": 2}, progress_callback=progress)
        print(f"  {r.content[0].text}")

        task = "Run this:\n```python\nimport platform\nprint('hello from', platform.system(), 6 * 7)\n```"
        r = await client.call_tool("executor", {"task": task}, progress_callback=progress)
        show("executor agent (a CodeExecutorAgent served as a tool)", r.content[0].text)


def main() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "workbench.cli", "serve", "--config", str(CONFIG),
           "--transport", "http", "--port", str(port)]
    print("$", " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        anyio.run(drive, f"http://127.0.0.1:{port}/mcp")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
            print(f"\nserver stopped on SIGTERM (exit {code})")
        except subprocess.TimeoutExpired:
            proc.kill()
            sys.exit("server did not stop within 20 s of SIGTERM")


if __name__ == "__main__":
    main()
