#!/usr/bin/env bash
# The whole test suite: format and lint gates, unit + property + integration tests (SQLite and
# PostgreSQL, the real OpenCode server against a scripted fake LLM), the wasm32 build of the domain
# crate, then the end-to-end suite: the real server built by cargo-leptos, driven by Playwright in
# Debian's Chromium.
source "$(dirname "$0")/lib.sh"

say "checking build and test tools"
ensure_build_tools
ensure_apt chromium

say "checking services: PostgreSQL at 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "PostgreSQL is down: starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  export OIO_TEST_POSTGRES_URL="${OIO_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  skip "PostgreSQL ready; tests create and drop their own databases"
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is unreachable at 127.0.0.1:5432 and CI=true: refusing to skip its tests" >&2
  exit 1
else
  skip "PostgreSQL unreachable: its tests will report themselves skipped (never under CI=true)"
fi

say "checking services: Redis at 127.0.0.1:6379"
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up && command -v redis-server >/dev/null; then
  say "Redis is down: starting it"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
fi
if redis_up; then
  export OIO_TEST_REDIS_URL="${OIO_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
  skip "Redis ready; tests use their own key prefixes"
elif [ "${CI:-}" = "true" ]; then
  echo "Redis is unreachable at 127.0.0.1:6379 and CI=true: refusing to skip its tests" >&2
  exit 1
else
  skip "Redis unreachable: its tests will report themselves skipped (never under CI=true)"
fi

# Every crate that builds natively (frontend is the wasm32 hydrate entry, checked below).
NATIVE_CRATES="-p domain -p app -p oio-application -p oio-adapters -p oio-web -p server -p testkit"

LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT

say "cargo fmt --check"
cargo fmt --all -- --check

say "clippy: domain, app (ssr), the server crates and testkit, all targets"
cargo clippy $NATIVE_CRATES --all-targets -- -D warnings

say "clippy: frontend and app (hydrate) for wasm32"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

say "build: domain for wasm32-unknown-unknown (the UI shares these types)"
cargo build -p domain --target wasm32-unknown-unknown

say "cargo test: domain, app, the server crates, testkit (unit, property, integration, storage contract, real OpenCode)"
cargo test $NATIVE_CRATES 2>&1 | tee "$LOG_DIR/cargo-test.log"

say "cargo leptos build: server binary + hydrated WASM + Tailwind CSS"
cargo leptos build

say "end-to-end: the fake LLM and one real OpenCode server (testkit's e2e-fleet)"
cargo build -p testkit --bin e2e-fleet
E2E_DATA="$(mktemp -d)"
"$CARGO_TARGET_DIR/debug/e2e-fleet" > "$LOG_DIR/fleet.out" 2> "$LOG_DIR/fleet.err" &
FLEET_PID=$!
SERVER_PID=""
# TERM, not KILL: the fleet stops OpenCode's whole process group on its way out.
trap 'kill "$SERVER_PID" 2>/dev/null || true; kill -TERM "$FLEET_PID" 2>/dev/null || true; wait "$FLEET_PID" 2>/dev/null || true; rm -rf "$LOG_DIR" "$E2E_DATA"' EXIT
for _ in $(seq 1 450); do
  grep -q '^e2e-fleet: ready$' "$LOG_DIR/fleet.out" && break
  kill -0 "$FLEET_PID" 2>/dev/null || { cat "$LOG_DIR/fleet.err" >&2; echo "e2e-fleet died" >&2; exit 1; }
  sleep 0.2
done
grep -q '^e2e-fleet: ready$' "$LOG_DIR/fleet.out" || { cat "$LOG_DIR/fleet.err" >&2; echo "e2e-fleet never became ready" >&2; exit 1; }
OPENCODE_URL="$(sed -n 's/^e2e-fleet: opencode \([^ ]*\) password .*$/\1/p' "$LOG_DIR/fleet.out")"
OPENCODE_PASSWORD="$(sed -n 's/^e2e-fleet: opencode [^ ]* password \(.*\)$/\1/p' "$LOG_DIR/fleet.out")"
E2E_REPO="$(sed -n 's/^e2e-fleet: repo \(.*\)$/\1/p' "$LOG_DIR/fleet.out")"
skip "OpenCode at $OPENCODE_URL, repository $E2E_REPO"
cat > "$E2E_DATA/oio.toml" <<TOML
[[opencode.servers]]
url = "$OPENCODE_URL"
password = "$OPENCODE_PASSWORD"
capacity = 4

# The budget spec's [budget] session reports 10 M tokens (e2e-fleet); the others stay far below.
[guardrails.session]
max_tokens = 1000000
TOML

say "end-to-end: an operator user for the browser and an admin API token for scripts (server user add / token create)"
export E2E_USER=e2e-operator
E2E_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
export E2E_PASSWORD
echo "$E2E_PASSWORD" | OIO_DATA_DIR="$E2E_DATA" DATABASE_URL="" \
  "$CARGO_TARGET_DIR/debug/server" user add "$E2E_USER" --role operator --password-stdin >/dev/null
E2E_TOKEN="$(OIO_DATA_DIR="$E2E_DATA" DATABASE_URL="" "$CARGO_TARGET_DIR/debug/server" token create --name e2e --role admin --json \
  | sed -n 's/^ *"token": "\(oio_[0-9a-f_]*\)",*$/\1/p')"
[ -n "$E2E_TOKEN" ] || { echo "could not create the e2e API token" >&2; exit 1; }
export E2E_TOKEN

say "end-to-end: starting the orchestrator on a free port with a fresh SQLite file"
export LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_OUTPUT_NAME=oio
OIO_CONFIG="$E2E_DATA/oio.toml" OIO_DATA_DIR="$E2E_DATA" OIO_ENGINE__TASK_TICK_MS=300 DATABASE_URL="" \
  "$CARGO_TARGET_DIR/debug/server" serve --listen 127.0.0.1:0 \
  > "$LOG_DIR/server.out" 2> "$LOG_DIR/server.err" &
SERVER_PID=$!
BASE_URL=""
for _ in $(seq 1 100); do
  BASE_URL="$(sed -n 's|^oio: dashboard on \(http://[^ ]*\)/$|\1|p' "$LOG_DIR/server.out")"
  [ -n "$BASE_URL" ] && curl -fsS "$BASE_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG_DIR/server.err" >&2; echo "server died" >&2; exit 1; }
  sleep 0.2
done
[ -n "$BASE_URL" ] || { cat "$LOG_DIR/server.err" >&2; echo "server never became ready" >&2; exit 1; }
skip "server ready at $BASE_URL"

say "end-to-end: Playwright in Debian Chromium (screenshots in end2end/artifacts)"
set +e
BASE_URL="$BASE_URL" E2E_REPO="$E2E_REPO" npx playwright test --config end2end/playwright.config.ts 2>&1 | tee "$LOG_DIR/e2e.log"
E2E_STATUS=${PIPESTATUS[0]}
set -e
if [ "$E2E_STATUS" -ne 0 ]; then
  echo "--- server log (last 80 lines) ---" >&2
  tail -n 80 "$LOG_DIR/server.err" >&2
  exit "$E2E_STATUS"
fi
kill "$SERVER_PID" 2>/dev/null || true

# One closing line over every runner above, summed from their own reports.
rust_passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$LOG_DIR/cargo-test.log" | awk '{ s += $1 } END { print s + 0 }')
e2e_passed=$(sed -n 's/^ *\([0-9]*\) passed.*/\1/p' "$LOG_DIR/e2e.log" | tail -1)
say "summary"
echo "rust tests: ${rust_passed:-0} passed; end-to-end: ${e2e_passed:-0} passed"
echo "all: $(( ${rust_passed:-0} + ${e2e_passed:-0} )) passed, 0 failed"
