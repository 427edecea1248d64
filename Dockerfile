# syntax=docker/dockerfile:1.7
# The orchestrator (server binary + dashboard site: WASM, JS glue, CSS) built with cargo-leptos in
# release mode, then copied into a slim, non-root runtime image.
#
#   docker build -t oio:latest .
#
# The build mirrors scripts/lib.sh + scripts/run.sh: cargo-leptos with `no_downloads` (so it never
# fetches tools at build time), wasm-bindgen-cli at exactly the version in Cargo.lock, wasm-opt,
# and Tailwind from the npm lock (@tailwindcss/cli).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

############################ build tools (cached until their versions change)
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS tools
ARG CARGO_LEPTOS_VERSION=0.3.11
ARG WASM_OPT_VERSION=0.116.1
ENV CARGO_HOME=/usr/local/cargo
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm pkg-config \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-unknown-unknown
# cargo-leptos' own lock file needs a newer rustc than some stables; nightly only builds the tool.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    rustup toolchain install nightly --profile minimal \
 && cargo +nightly install cargo-leptos --version "${CARGO_LEPTOS_VERSION}" --locked --features no_downloads \
 && cargo install wasm-opt --version "${WASM_OPT_VERSION}" --locked
# wasm-bindgen-cli must equal the wasm-bindgen crate in Cargo.lock.
COPY Cargo.lock /tmp/Cargo.lock
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' /tmp/Cargo.lock)" \
 && test -n "$want" \
 && cargo install wasm-bindgen-cli --version "$want"

############################ build
FROM tools AS build
WORKDIR /src
# npm tools first (Tailwind CLI; Playwright without a browser), cached on the lock file.
COPY package.json package-lock.json ./
RUN PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund
ENV PATH=/src/node_modules/.bin:$PATH
COPY . .
# Build output lives in a cache mount (warm rebuilds); copy what the runtime needs out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/cache/target \
    CARGO_TARGET_DIR=/cache/target CARGO_INCREMENTAL=0 cargo leptos build --release \
 && mkdir -p /out \
 && cp /cache/target/release/server /out/server \
 && cp -r target/site /out/site

############################ runtime
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# git: every session works in a git worktree (the worktree adapter shells out to git).
# curl: the HEALTHCHECK. ca-certificates: TLS to PostgreSQL/Redis/OpenCode if configured.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 oio \
 && useradd --system --uid 10001 --gid oio --home-dir /var/lib/oio --create-home --shell /usr/sbin/nologin oio \
 && git config --system --add safe.directory '*' \
 && mkdir -p /srv/repos /srv/oio/worktrees \
 && chown -R oio:oio /srv/repos /srv/oio
COPY --from=build /out/server /usr/local/bin/oio-server
COPY --from=build /out/site /app/site
ENV LEPTOS_SITE_ROOT=/app/site \
    LEPTOS_SITE_PKG_DIR=pkg \
    LEPTOS_OUTPUT_NAME=oio \
    LEPTOS_ENV=PROD \
    OIO_LISTEN=0.0.0.0:3000 \
    OIO_DATA_DIR=/var/lib/oio \
    OIO_LOG__FORMAT=json
USER oio:oio
WORKDIR /var/lib/oio
EXPOSE 3000
# SIGTERM drains: stop accepting, stop claiming, hand leases back (up to 10 s); give it more.
STOPSIGNAL SIGTERM
# /readyz: the process answers AND storage is reachable (503 otherwise). /healthz is liveness only.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:3000/readyz >/dev/null || exit 1
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/oio-server"]
CMD ["serve"]
