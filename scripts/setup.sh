#!/usr/bin/env bash
# Everything mcp-workbench needs on a fresh machine, idempotent (a second run only checks):
# Python venv + the package, the npm peers, a Docker engine, the sandbox image.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
say "installing mcp-workbench into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

if ! command -v npm >/dev/null; then
    say "installing Node.js and npm (Debian packages)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi
if [ ! -d node_modules/@modelcontextprotocol/server-everything ] || [ ! -d node_modules/@modelcontextprotocol/inspector ] \
        || [ ! -d node_modules/@modelcontextprotocol/conformance ] || [ ! -x node_modules/node/bin/node ]; then
    say "installing the npm MCP peers, the conformance suite and its Node 22"
    npm ci --no-audit --no-fund --loglevel=error
fi

if [ ! -x /usr/bin/chromium ]; then
    say "installing Chromium (Debian packages) for Studio's browser tests"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

say "making sure a Docker engine runs"
bash scripts/ensure_docker.sh

say "making sure the sandbox image exists"
.venv/bin/workbench sandbox build --if-missing
