"""Serve the test workbench with `serve_workbench`, as `workbench serve` would.

    python serve_script.py stdio|http [PORT] [--expose GLOB]... [--grace S] [--token T] [--background GLOB]

On return it writes what the workbench saw (closed sessions, finished and cancelled
calls, whether it was stopped) as JSON to $SERVE_REPORT, if set.
"""

from __future__ import annotations

import argparse
import json
import os

import anyio
from serve_toolkit import ServeBench

from servers import ServeSettings, serve_workbench


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("port", nargs="?", type=int, default=8765)
    parser.add_argument("--expose", action="append")
    parser.add_argument("--background", action="append", default=[])
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--token")
    args = parser.parse_args()
    settings = ServeSettings(
        transport=args.transport, port=args.port, expose=args.expose or ["*"], shutdown_grace=args.grace,
        auth_token=args.token, background=args.background,
    )
    bench = ServeBench()
    async with bench:
        await serve_workbench(bench, settings)
    if os.environ.get("SERVE_REPORT"):
        with open(os.environ["SERVE_REPORT"], "w") as f:
            json.dump({"closed": bench.closed_sessions, "finished": bench.finished, "cancelled": bench.cancelled,
                       "running": sorted(bench.running), "stopped": bench.stopped}, f)


if __name__ == "__main__":
    anyio.run(main)
