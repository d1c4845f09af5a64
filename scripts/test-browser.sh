#!/usr/bin/env bash
# The browser half of the test suite: netabase_store built for wasm32 with only the
# IndexedDB backend (checked to pull in no redb, sled or libp2p), and its asynchronous
# conformance suite run on IndexedDB in headless Chromium through wasm-bindgen-test.
# Needs what scripts/install-test-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=wasm32-unknown-unknown
FEATURES=(-p netabase_store --no-default-features --features indexeddb)

# The browser build must not depend on the native engines or the P2P stack.
TREE="$(cargo tree --target "${TARGET}" "${FEATURES[@]}" -e normal --prefix none)"
if grep -E '^(redb|sled|libp2p)[ -]' <<<"${TREE}"; then
  echo "test-browser: the ${TARGET} build of netabase_store depends on the crates above" >&2
  exit 1
fi
echo "test-browser: the ${TARGET} build has no redb, sled or libp2p"

# Each Chromium run leaves files behind: keep them in a scratch directory.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "${SCRATCH}"' EXIT
export TMPDIR="${SCRATCH}" XDG_CONFIG_HOME="${SCRATCH}/config" XDG_CACHE_HOME="${SCRATCH}/cache"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"

# Doctests do not run on wasm; the browser test files are named explicitly (the other
# test files are native-only).
cargo test --target "${TARGET}" "${FEATURES[@]}" --test async_conformance_indexeddb "$@"

# The web_notes page, driven over WebDriver in headless Chromium: add, filter, reload,
# delete; refreshes docs/web-notes.png.
bash scripts/build-web-notes.sh
python3 scripts/test-web-notes.py
