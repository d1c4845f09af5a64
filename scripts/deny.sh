#!/usr/bin/env bash
# cargo-deny over the workspace (deny.toml): licences, bans (duplicate versions are
# warnings) and sources always; advisories when the RustSec database can be fetched
# (it lives on GitHub). Installs cargo-deny from crates.io when it is missing.
#
#   scripts/deny.sh                 # as CI runs it
#   DENY_ADVISORIES=1 scripts/deny.sh   # fail unless advisories could be checked too
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
  cargo install cargo-deny --locked
fi
cargo deny --version

# Licences, bans and sources need nothing but Cargo.lock and the registry.
cargo deny --all-features check licenses bans sources

# Advisories need the RustSec database (on GitHub). Fetch it first: when it cannot be
# fetched, say so loudly and skip that check; when it can, findings fail the run.
if cargo deny fetch db; then
  cargo deny --all-features check --disable-fetch advisories
  echo "cargo deny: advisories checked"
elif [ "${DENY_ADVISORIES:-0}" = "1" ]; then
  echo "cargo deny: the advisory database could not be fetched" >&2
  exit 1
else
  echo "cargo deny: WARNING: advisories NOT checked: the RustSec advisory database could not be fetched" >&2
fi
