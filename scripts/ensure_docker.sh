#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock, and that the sandbox image can
# be built. Idempotent: an engine that already answers is left alone (never restarted).
# When this script starts the engine itself (Debian, root, no systemd), it first registers
# gVisor's `runsc` as a runtime (with --network=none) in /etc/docker/daemon.json.
#   ENSURE_DOCKER_WAIT  seconds to wait for a started engine (default 60)
#   DOCKER_HOST         unix:///other.sock starts a separate engine there (own data root,
#                       config and log, no bridge), e.g. to try gVisor beside a running engine
set -euo pipefail

SOCK="${DOCKER_HOST:-unix:///var/run/docker.sock}"
SOCK="${SOCK#unix://}"
if [ "$SOCK" = /var/run/docker.sock ]; then
  CONFIG=/etc/docker/daemon.json LOG=/var/log/dockerd.log EXTRA=()
else
  name="$(basename "$SOCK" .sock)"
  CONFIG="/etc/docker/$name.json" LOG="/var/log/$name.log"
  # Its own bridge: `--bridge=none` would make dockerd delete the main engine's docker0.
  BRIDGE="wb${name//[^a-z0-9]/}"; BRIDGE="${BRIDGE:0:14}0"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge && ip addr add 172.31.254.1/24 dev "$BRIDGE" && ip link set "$BRIDGE" up
  fi
  EXTRA=(-H "unix://$SOCK" --data-root "/var/lib/$name" --exec-root "/var/run/$name" --pidfile "/var/run/$name.pid"
         --config-file "$CONFIG" --bridge="$BRIDGE" --iptables=false --ip-masq=false)
fi
export DOCKER_HOST="unix://$SOCK"

log() { echo "ensure_docker: $*" >&2; }
engine_up() { docker info >/dev/null 2>&1; }

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "need root on Debian/Ubuntu to install: $*"; return 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# debootstrap builds the offline sandbox image (`workbench sandbox build`).
command -v debootstrap >/dev/null || apt_install debootstrap || log "debootstrap missing: the offline image build will fail"

if engine_up; then
  log "engine already running; leaving it alone"
  docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' 2>/dev/null | grep -qw runsc \
    || log "note: runsc (gVisor) is not registered with the running engine; gVisor tests will be skipped"
  exit 0
fi

command -v dockerd >/dev/null || apt_install docker.io
command -v runsc >/dev/null || apt_install runsc || log "runsc unavailable: continuing without gVisor"

# Register runsc (before the engine starts: it reads daemon.json only at start).
mkdir -p /etc/docker
[ -s "$CONFIG" ] || echo '{}' >"$CONFIG"
if command -v runsc >/dev/null; then
  python3 - "$(command -v runsc)" "$CONFIG" <<'PY'
import json, os, sys
path = sys.argv[2]
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
config.setdefault("runtimes", {})["runsc"] = {"path": sys.argv[1], "runtimeArgs": ["--network=none"]}
json.dump(config, open(path, "w"), indent=2)
PY
  log "registered runsc in $CONFIG"
fi

log "starting dockerd on $SOCK (log: $LOG)"
nohup dockerd "${EXTRA[@]}" >>"$LOG" 2>&1 &
deadline=$((SECONDS + ${ENSURE_DOCKER_WAIT:-60}))
until engine_up; do
  if [ $SECONDS -ge $deadline ]; then
    log "dockerd did not answer within ${ENSURE_DOCKER_WAIT:-60}s; last log lines:"; tail -n 20 "$LOG" >&2
    exit 1
  fi
  sleep 0.5
done
log "engine up: $(docker info --format '{{.ServerVersion}} runtimes: {{range $k, $v := .Runtimes}}{{$k}} {{end}}')"
