"""FastMCP's proxy for bench_serve.py; runs in bench/.venv-fastmcp (made by bench/setup_peers.sh).

    bench/.venv-fastmcp/bin/python bench/_fastmcp_peer.py default|stateful PORT UPSTREAM_URL

default   `create_proxy(url)`: a fresh backend client per request, in the era the front client speaks
stateful  `FastMCPProxy(client_factory=StatefulProxyClient(url).new_stateful)`: one backend client
          per front connection, kept for its life (FastMCP's answer for stateful upstreams)
Both serve streamable HTTP at http://127.0.0.1:PORT/mcp, logging warnings only, as the upstream does.
"""

import sys

from fastmcp.server import create_proxy
from fastmcp.server.providers.proxy import FastMCPProxy, StatefulProxyClient


def main() -> None:
    kind, port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if kind == "default":
        proxy = create_proxy(upstream, name="fastmcp-proxy")
    elif kind == "stateful":
        proxy = FastMCPProxy(client_factory=StatefulProxyClient(upstream).new_stateful, name="fastmcp-stateful")
    else:
        raise SystemExit(f"unknown proxy kind {kind!r}: use default or stateful")
    proxy.run(transport="http", host="127.0.0.1", port=port, path="/mcp", log_level="WARNING", show_banner=False)


if __name__ == "__main__":
    main()
