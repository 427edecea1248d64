#!/usr/bin/env bash
# Server-side rendering under load: the orchestrator on a fresh SQLite file holding N stored
# sessions (created through the REST API, engine off), then `wrk` against the sessions page.
# Prints wrk's latency distribution and a one-line summary (p50 / p99 / requests per second).
# Figures only: nothing is asserted.
#
#   bash scripts/bench-ssr.sh [SESSIONS=10000] [CONNECTIONS=200] [DURATION=20s] [PATH=/sessions]
#   BENCH_PROFILE=release bash scripts/bench-ssr.sh …   (an optimised server binary; slower to build)
source "$(dirname "$0")/lib.sh"

SESSIONS="${1:-10000}"
CONNECTIONS="${2:-200}"
DURATION="${3:-20s}"
PAGE="${4:-/sessions}"

ensure_build_tools
ensure_apt wrk curl

PROFILE="${BENCH_PROFILE:-debug}"
say "build: site assets (cargo leptos build) and the $PROFILE server binary"
cargo leptos build
if [ "$PROFILE" = release ]; then
  cargo build --release -p server --bin server
fi

DATA="$(mktemp -d)"
LOG="$DATA/server.log"
export LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_OUTPUT_NAME=oio
OIO_DATA_DIR="$DATA" OIO_ENGINE__ENABLED=false OIO_LOG__FILTER=warn DATABASE_URL="" \
  "$CARGO_TARGET_DIR/$PROFILE/server" serve --listen 127.0.0.1:0 > "$DATA/server.out" 2> "$LOG" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
BASE=""
for _ in $(seq 1 100); do
  BASE="$(sed -n 's|^oio: dashboard on \(http://[^ ]*\)/$|\1|p' "$DATA/server.out")"
  [ -n "$BASE" ] && curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
[ -n "$BASE" ] || { cat "$LOG" >&2; echo "server never became ready" >&2; exit 1; }

say "seeding $SESSIONS sessions through POST /api/v1/sessions"
REPO="$DATA/repo"
git init -q "$REPO"
seq 1 "$SESSIONS" | xargs -P 8 -I{} curl -fsS -o /dev/null -X POST "$BASE/api/v1/sessions" \
  -H 'content-type: application/json' \
  -d "{\"title\":\"bench session {}\",\"prompt\":\"render me <b>{}</b>\",\"workspace\":\"$REPO\"}"
skip "stored: $(curl -fsS "$BASE/api/v1/sessions?limit=1" | head -c 120)…"

say "wrk: $CONNECTIONS connections, $DURATION, GET $PAGE ($PROFILE build)"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 30s "$BASE$PAGE" | tee "$DATA/wrk.txt"

p50="$(awk '$1 == "50%" { print $2 }' "$DATA/wrk.txt")"
p99="$(awk '$1 == "99%" { print $2 }' "$DATA/wrk.txt")"
rps="$(awk '/^Requests\/sec/ { print $2 }' "$DATA/wrk.txt")"
say "summary"
echo "ssr $PAGE ($PROFILE) with $SESSIONS sessions, $CONNECTIONS connections: p50 $p50, p99 $p99, $rps req/s"
