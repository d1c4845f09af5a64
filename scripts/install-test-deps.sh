#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine; safe to run again (it checks
# before installing): the rustfmt and clippy components used by CI, and redis-server.
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
