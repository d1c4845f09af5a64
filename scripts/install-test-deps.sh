#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine; safe to run again (it checks
# before installing): the rustfmt and clippy components used by CI, redis-server, and
# what the browser tests need.
set -euo pipefail

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      rustup component add "${component}"
    fi
  done
fi

# redis-server, for the Redis backend's tests (they start and stop their own servers).
if ! command -v redis-server >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd="sudo"
  fi
  ${sudo_cmd} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${sudo_cmd} apt-get install -y -qq redis-server
fi
redis-server --version

# Browser tests (IndexedDB in headless Chromium through wasm-bindgen-test, and the
# web_notes page driven over WebDriver by a python3 script): the wasm target, Chromium
# and its WebDriver, and the test runner at exactly the version of
# the wasm-bindgen library in Cargo.lock (they must match).
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed 2>/dev/null | grep -qx "wasm32-unknown-unknown"; then
    rustup target add wasm32-unknown-unknown
  fi
fi

if ! command -v python3 >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 || ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver python3
fi

WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' \
  "$(dirname "$0")/../Cargo.lock")"
if [ -z "${WASM_BINDGEN_VERSION}" ]; then
  echo "install-test-deps: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -q " ${WASM_BINDGEN_VERSION}\$"; then
  # Not --locked: the registry index may lack one of the CLI's pinned dependencies.
  cargo install wasm-bindgen-cli --version "=${WASM_BINDGEN_VERSION}"
fi
