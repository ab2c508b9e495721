"""Wiring Studio (`servers.studio`) to the application: the config it shows, the doctor checks
it runs, and `workbench studio` opening it in a browser once the server listens."""

from __future__ import annotations

import socket
import time
import webbrowser
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
from starlette.types import ASGIApp

from servers.auth import Verifier
from servers.http import StudioFactory
from servers.mcp_server import WorkbenchServer
from servers.studio import StudioContext, studio_app
from servers.studio.config_view import config_report
from workbench.cli.config import Config, load_config
from workbench.core import logger


def studio_factory(config: Config, path: Path,
                   runners: Mapping[str, Any] | None = None) -> StudioFactory:
    """What `create_app(studio=...)` takes: Studio for the server, knowing this config (and its
    agents and teams, for the Playground: `runners` may be filled until the server starts)."""
    from workbench.cli.doctor import doctor_checks

    loaded = config.model_dump(mode="json", exclude={"base_dir"})

    async def checks() -> list[dict[str, Any]]:
        return [asdict(check) for check in await doctor_checks(config)]

    def report() -> dict[str, Any]:
        return config_report(path, loaded, lambda: load_config(path))

    def build(server: WorkbenchServer, verifier: Verifier | None) -> ASGIApp:
        return studio_app(StudioContext(server, checks=checks, config_report=report, verifier=verifier,
                                        runners=runners if runners is not None else {}))

    return build


async def open_when_listening(host: str, port: int, *, timeout: float = 60.0) -> None:
    """Open Studio in the default browser as soon as the port accepts connections."""
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/ui"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host if host not in ("0.0.0.0", "") else "127.0.0.1", port), timeout=1):
                break
        except OSError:
            await anyio.sleep(0.2)
    else:
        logger.warning("studio: the server did not listen within %.0f s; open %s yourself", timeout, url)
        return
    logger.info("studio", extra={"url": url})
    if not await anyio.to_thread.run_sync(webbrowser.open, url):
        logger.info("no browser to open: visit %s", url)
