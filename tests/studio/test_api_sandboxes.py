"""The Sandboxes API over real HTTP with real Docker sandboxes: a caller sees and touches only
its identity's sessions (another identity's id is unknown to it, whatever it tries), files are
listed, downloaded as attachments and uploaded within the sandbox's transfer limit, and reset
and stop work."""

from __future__ import annotations

import json
from typing import Any

import pytest
from studio_harness import StudioHttp, studio_http

from sandbox import SandboxSettings, SandboxWorkbench
from workbench import CompositeWorkbench

pytestmark = [pytest.mark.anyio, pytest.mark.docker]
FILE_LIMIT = 4096


def sandboxes_or_skip() -> SandboxWorkbench:
    from sandbox.container import docker_client
    from sandbox.errors import EngineUnavailableError
    from sandbox.image import image_exists

    try:
        client = docker_client()
    except EngineUnavailableError as e:
        pytest.skip(f"no Docker engine: {e}")
    if not image_exists(client):
        pytest.skip("sandbox image missing: run `workbench sandbox build`")
    return SandboxWorkbench(SandboxSettings(pool_size=0, file_limit=FILE_LIMIT))


async def call(studio: StudioHttp, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = await studio.http.post(f"/ui/api/tools/{name}/call", headers=studio.auth(),
                                      json={"arguments": arguments})
    last = response.text.strip().split("\n\n")[-1]
    result: dict[str, Any] = json.loads(last.split("data: ", 1)[1])["result"]
    assert not result["isError"], result
    return result


async def test_sessions_files_reset_and_stop_of_your_own_identity() -> None:
    sandbox = sandboxes_or_skip()
    async with studio_http(CompositeWorkbench({"sandbox": sandbox})) as studio:
        auth = studio.auth()
        await call(studio, "sandbox__write_file", {"path": "out/report.txt", "content": "made in the box"})
        listed = (await studio.http.get("/ui/api/sandboxes", headers=auth)).json()
        assert listed["available"] is True
        [mine] = listed["sandboxes"]
        session = mine["session"]
        assert mine["state"] == "idle" and mine["yours"] is True
        assert mine["memory"] is None or mine["memory"]["limit"] > mine["memory"]["used"] > 0
        base = f"/ui/api/sandboxes/{session}"

        root = (await studio.http.get(f"{base}/files", headers=auth)).json()
        assert {"path": "out", "type": "dir", "size": root["entries"][0]["size"]} in root["entries"]
        inner = (await studio.http.get(f"{base}/files", params={"path": "out"}, headers=auth)).json()
        assert [e["path"] for e in inner["entries"]] == ["report.txt"]

        download = await studio.http.get(f"{base}/file", params={"path": "out/report.txt"}, headers=auth)
        assert download.content == b"made in the box"
        assert download.headers["content-type"] == "application/octet-stream"  # never rendered as a page
        assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''report.txt"

        uploaded = await studio.http.put(f"{base}/file", params={"path": "in/data.bin"}, content=b"\x00\x01binary",
                                         headers=auth)
        assert uploaded.json() == {"path": "/workspace/in/data.bin", "size": 8}
        read = await call(studio, "sandbox__run_python", {"code": "print(open('in/data.bin','rb').read())"})
        assert "\\x00\\x01binary" in read["content"][0]["text"]

        too_big = await studio.http.put(f"{base}/file", params={"path": "big"}, content=b"x" * (FILE_LIMIT + 1),
                                        headers=auth)
        assert too_big.status_code == 413

        async def chunks() -> Any:  # no Content-Length: counted as it arrives, refused past the limit
            for _ in range(8):
                yield b"x" * 1024

        assert (await studio.http.put(f"{base}/file", params={"path": "big"}, content=chunks(),
                                      headers=auth)).status_code == 413
        missing = await studio.http.get(f"{base}/file", params={"path": "nope.txt"}, headers=auth)
        assert missing.status_code == 400 and "nope.txt" in missing.json()["error_description"]
        assert (await studio.http.get(f"{base}/files", params={"path": "x" * 5000}, headers=auth)).status_code == 400

        assert (await studio.http.post(f"{base}/reset", json={"clear_files": "yes"}, headers=auth)).status_code == 400
        reset = await studio.http.post(f"{base}/reset", json={"clear_files": True}, headers=auth)
        assert reset.json()["cleared_files"] is True
        assert (await studio.http.get(f"{base}/files", headers=auth)).json()["entries"] == []

        assert (await studio.http.delete(base, headers=auth)).json()["stopped"] is True
        assert (await studio.http.get("/ui/api/sandboxes", headers=auth)).json()["sandboxes"] == []
        assert (await studio.http.get(f"{base}/files", headers=auth)).status_code == 404


async def test_another_identitys_sandbox_is_unknown_to_you() -> None:
    sandbox = sandboxes_or_skip()
    async with studio_http(CompositeWorkbench({"sandbox": sandbox})) as studio:
        theirs = await sandbox.session("http-their-session", identity="token-someoneelse000")
        await theirs.write_file("private.txt", b"not yours")
        auth = studio.auth()
        assert (await studio.http.get("/ui/api/sandboxes", headers=auth)).json()["sandboxes"] == []
        base = "/ui/api/sandboxes/http-their-session"
        attempts = [
            studio.http.get(f"{base}/files", headers=auth),
            studio.http.get(f"{base}/file", params={"path": "private.txt"}, headers=auth),
            studio.http.put(f"{base}/file", params={"path": "planted.txt"}, content=b"x", headers=auth),
            studio.http.post(f"{base}/reset", json={"clear_files": True}, headers=auth),
            studio.http.delete(base, headers=auth),
            studio.http.get("/ui/api/sandboxes/..%2Fhttp-their-session/files", headers=auth),
        ]
        for attempt in attempts:
            response = await attempt
            assert response.status_code == 404, response.text
            assert "not yours" not in response.text
        # Untouched: still there, file and all.
        assert "http-their-session" in sandbox.live_sessions()
        assert await theirs.read_file("private.txt") == b"not yours"
        assert [e.path for e in await theirs.list_files()] == ["private.txt"]


async def test_a_server_without_a_sandbox_says_so() -> None:
    from workbench import StaticWorkbench

    def noop() -> str:
        """Nothing."""
        return ""

    async with studio_http(StaticWorkbench([noop])) as studio:
        listed = (await studio.http.get("/ui/api/sandboxes", headers=studio.auth())).json()
        assert listed == {"available": False, "sandboxes": []}
        files = await studio.http.get("/ui/api/sandboxes/x/files", headers=studio.auth())
        assert files.status_code == 404 and "[sandbox] enabled" in files.json()["error_description"]
