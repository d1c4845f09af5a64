#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine; safe to run again (it checks
# before installing). Today: the rustfmt and clippy components used by CI.
set -euo pipefail

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      rustup component add "${component}"
    fi
  done
fi
