#!/usr/bin/env bash
# Builds the web_notes page into examples/web_notes (index.html + pkg/): the crate for
# wasm32, then its JavaScript glue with wasm-bindgen (installed by
# scripts/install-test-deps.sh). Serve the directory with any static server:
#
#   scripts/build-web-notes.sh && python3 -m http.server -d examples/web_notes 8000
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --target wasm32-unknown-unknown -p web_notes --release
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
wasm-bindgen --target web --no-typescript --out-dir examples/web_notes/pkg \
  "${TARGET_DIR}/wasm32-unknown-unknown/release/web_notes.wasm"
echo "built examples/web_notes (index.html, pkg/)"
