#!/usr/bin/env bash
# Runs the whole test suite: every crate, every feature (all backends, the P2P node),
# unit, integration, UI (trybuild) and doc tests. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

cargo test --workspace --all-features --no-fail-fast "$@"

# The browser suite: IndexedDB in headless Chromium.
bash scripts/test-browser.sh
