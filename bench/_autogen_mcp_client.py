"""Run by bench_mcp_client.py inside bench/.venv-autogen-mcp (AutoGen needs `mcp<2`).

Connects AutoGen's McpWorkbench to the server named in argv[1] (JSON), prints "ready",
then for each line N read from stdin times N `echo` calls and prints their latencies
(ms) as one JSON line — so the parent can interleave these blocks with its own clients.
"""

import asyncio
import json
import sys
import time


async def main() -> None:
    from autogen_ext.tools.mcp import McpWorkbench, StdioServerParams, StreamableHttpServerParams

    spec = json.loads(sys.argv[1])
    if spec["transport"] == "stdio":
        params = StdioServerParams(command=spec["command"], args=spec["args"], read_timeout_seconds=30)
    else:
        params = StreamableHttpServerParams(url=spec["url"])
    loop = asyncio.get_running_loop()
    async with McpWorkbench(server_params=params) as wb:
        await wb.call_tool("echo", {"message": "hi"})
        print("ready", flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            samples = []
            for _ in range(int(line)):
                started = time.perf_counter()
                result = await wb.call_tool("echo", {"message": "hi"})
                samples.append((time.perf_counter() - started) * 1000)
                assert not result.is_error, result
            print(json.dumps(samples), flush=True)


asyncio.run(main())
