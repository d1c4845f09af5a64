#!/usr/bin/env bash
# Instruction counts of the model-rules puts (callgrind, the puts only): one table row
# per backend and write mode, one column per model, and the ratios the benchmark quotes.
#
#   bash crates/netabase_bench/scripts/rules_instructions.sh
#
# Builds the `rules_profile` binary in release mode first.
set -euo pipefail
cd "$(dirname "$0")/../../.."

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -p netabase_bench --bin rules_profile >&2
target="${CARGO_TARGET_DIR:-target}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

models=(plain indexed rules)
count() {
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
    '--toggle-collect=*rules_profile::workload*' \
    "$target/release/rules_profile" "$@" >/dev/null 2>"$out/err"
  grep -E 'Collected' "$out/err" | awk '{print $4}'
}

printf '| backend | writes | records |'
for m in "${models[@]}"; do printf ' %s |' "$m"; done
printf ' plain ÷ rules | indexed ÷ rules |\n|---|---|---:|'
for _ in "${models[@]}" 1 2; do printf -- '---:|'; done
printf '\n'
rows=("memory bulk 10000" "memory each 1000" "redb bulk 10000")
[ -z "${ROWS:-}" ] || IFS=',' read -r -a rows <<<"$ROWS"
for row in "${rows[@]}"; do
  set -- $row
  declare -A n=()
  for m in "${models[@]}"; do n[$m]=$(count "$1" "$m" "$2" "$3"); done
  printf '| %s | %s | %s |' "$1" "$2" "$3"
  for m in "${models[@]}"; do printf ' %s |' "$(awk -v c="${n[$m]}" 'BEGIN { printf "%.2f M", c / 1e6 }')"; done
  for m in plain indexed; do printf ' %s |' "$(awk -v a="${n[$m]}" -v b="${n[rules]}" 'BEGIN { printf "%.3f", a / b }')"; done
  printf '\n'
done
