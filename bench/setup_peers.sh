#!/usr/bin/env bash
# The peers of bench_serve.py, each in its own venv under bench/ (gitignored: bench/.venv-*),
# from pip only and pinned, so their dependencies (mcp 1.x for mcp-proxy) never touch .venv:
#   bench/.venv-fastmcp     fastmcp (its proxy: create_proxy and StatefulProxyClient)
#   bench/.venv-mcp-proxy   mcp-proxy (sparfenyuk's; a stdio bridge, chained to proxy HTTP → HTTP)
#   bench/.venv-pyspy       py-spy, for profile_serve.py
# Idempotent: a venv whose marker names the same pin is left alone.  Usage: bash bench/setup_peers.sh
set -euo pipefail
cd "$(dirname "$0")"

peer() {  # peer VENV PIN
    local venv=$1 pin=$2
    if [[ -x $venv/bin/python && "$(cat "$venv/.pinned" 2>/dev/null)" == "$pin" ]]; then
        return 0
    fi
    echo "setting up $venv ($pin)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin"
    echo "$pin" > "$venv/.pinned"
}

peer .venv-fastmcp "fastmcp==4.2.3"
peer .venv-mcp-proxy "mcp-proxy==0.13.0"
peer .venv-pyspy "py-spy==0.4.3"
