# Shared by scripts/run.sh and scripts/test.sh: idempotent installs of everything the build needs.
# Each step says what it is doing and skips itself when its tool is already there.
# shellcheck shell=bash

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Build output lives outside the clone so fresh clones (CI) reuse warm caches.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/oio/target}"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Incremental state only speeds up edit-compile loops; in these scripts it just fills the cache.
export CARGO_INCREMENTAL=0

CARGO_LEPTOS_VERSION="0.3.11"
WASM_OPT_VERSION="0.116.1"

say() { printf '\n==> %s\n' "$*"; }
skip() { printf '    %s\n' "$*"; }

APT_UPDATED=0
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    skip "apt: $* already installed"
    return
  fi
  say "apt: installing ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

ensure_node() {
  if command -v node >/dev/null && command -v npm >/dev/null; then
    skip "node $(node --version), npm $(npm --version) present"
  else
    ensure_apt nodejs npm
  fi
}

ensure_wasm_target() {
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    skip "rust target wasm32-unknown-unknown present"
  else
    say "rustup: adding target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_cargo_leptos() {
  if cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    skip "cargo-leptos $CARGO_LEPTOS_VERSION present"
    return
  fi
  # cargo-leptos' lock file needs a newer rustc than stable here; nightly only builds the tool.
  say "cargo-leptos $CARGO_LEPTOS_VERSION: installing with nightly, no_downloads (about 15 min once)"
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  cargo +nightly install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
}

ensure_wasm_bindgen() {
  local want
  want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
  if [ -z "$want" ]; then
    echo "cannot read the wasm-bindgen version from Cargo.lock" >&2
    exit 1
  fi
  if wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    skip "wasm-bindgen-cli $want present (matches Cargo.lock)"
    return
  fi
  say "wasm-bindgen-cli $want: installing (must equal the wasm-bindgen in Cargo.lock)"
  # Not --locked: its lock pins a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$want" --force
}

ensure_wasm_opt() {
  if wasm-opt --version 2>/dev/null | grep -q "version"; then
    skip "wasm-opt present ($(wasm-opt --version))"
    return
  fi
  say "wasm-opt $WASM_OPT_VERSION: installing (release WASM optimisation; Debian's binaryen is too old)"
  cargo install wasm-opt --version "$WASM_OPT_VERSION" --locked
}

ensure_npm_packages() {
  local stamp="node_modules/.oio-lock-stamp"
  local want
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    skip "npm packages match package-lock.json"
    return
  fi
  say "npm: installing pinned packages (Tailwind CLI, Playwright without a browser download, opencode-ai)"
  # `npm install`, not `npm ci`: npm 11 leaves the other platforms' optional opencode binaries out
  # of the lock file and then `npm ci` refuses it as out of sync. With the lock present, `install`
  # installs exactly the locked versions and leaves the lock unchanged.
  npm install --no-audit --no-fund
  echo "$want" > "$stamp"
}

ensure_build_tools() {
  ensure_node
  ensure_wasm_target
  ensure_cargo_leptos
  ensure_wasm_bindgen
  ensure_npm_packages
}
