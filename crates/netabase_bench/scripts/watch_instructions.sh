#!/usr/bin/env bash
# Instruction counts of the writer with and without a change subscription (callgrind,
# the writes only): one table row per backend and write mode.
#
#   bash crates/netabase_bench/scripts/watch_instructions.sh
#
# Builds the `watch_profile` binary in release mode first.
set -euo pipefail
cd "$(dirname "$0")/../../.."

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -p netabase_bench --bin watch_profile >&2
target="${CARGO_TARGET_DIR:-target}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

listeners=(none idle idle_secondary draining)
count() {
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
    '--toggle-collect=*watch_profile::workload*' \
    "$target/release/watch_profile" "$@" >/dev/null 2>"$out/err"
  grep -E 'Collected' "$out/err" | awk '{print $4}'
}

printf '| backend | writes | records |'
for l in "${listeners[@]}"; do printf ' %s |' "$l"; done
for l in "${listeners[@]:1}"; do printf ' %s ÷ none |' "$l"; done
printf '\n|---|---|---:|'
for _ in "${listeners[@]}" "${listeners[@]:1}"; do printf -- '---:|'; done
printf '\n'
for row in "redb each 1000" "memory each 1000" "redb bulk 10000" "memory bulk 10000"; do
  set -- $row
  declare -A n=()
  for l in "${listeners[@]}"; do n[$l]=$(count "$1" "$l" "$2" "$3"); done
  printf '| %s | %s | %s |' "$1" "$2" "$3"
  for l in "${listeners[@]}"; do printf ' %s |' "$(awk -v c="${n[$l]}" 'BEGIN { printf "%.2f M", c / 1e6 }')"; done
  for l in "${listeners[@]:1}"; do printf ' %s |' "$(awk -v a="${n[$l]}" -v b="${n[none]}" 'BEGIN { printf "%.3f", a / b }')"; done
  printf '\n'
done
