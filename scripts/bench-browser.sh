#!/usr/bin/env bash
# The browser benchmark: netabase's asynchronous API on IndexedDB against raw IndexedDB
# (web-sys, the same layout), in headless Chromium, release build. Prints a table of
# medians and ratios (docs/benchmarks.md, "IndexedDB in the browser"). Not part of the
# test suite. Needs what scripts/install-test-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH="$(mktemp -d)"
trap 'rm -rf "${SCRATCH}"' EXIT
export TMPDIR="${SCRATCH}" XDG_CONFIG_HOME="${SCRATCH}/config" XDG_CACHE_HOME="${SCRATCH}/cache"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
# The whole benchmark is one test of a few minutes.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-1200}"

chromium --version 2>/dev/null || true
cargo test --release --target wasm32-unknown-unknown -p netabase_store \
  --no-default-features --features indexeddb --test bench_indexeddb -- --nocapture "$@"
