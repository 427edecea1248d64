#!/usr/bin/env bash
# The main job: builds (release) and serves the dashboard + API + scheduler on the embedded SQLite
# default (./data/oio.db). Extra arguments go to the server, e.g. `scripts/run.sh serve --listen 127.0.0.1:8080`.
source "$(dirname "$0")/lib.sh"

say "checking build tools"
ensure_build_tools
ensure_wasm_opt

say "building the server and the WASM frontend (release)"
cargo leptos build --release

say "starting the orchestrator (Ctrl-C to stop)"
export LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_OUTPUT_NAME=oio LEPTOS_ENV=PROD
exec "$CARGO_TARGET_DIR/release/server" "$@"
