#!/usr/bin/env bash
# Instruction counts of every workload (callgrind, the workload function only), for the
# contenders given (default: netabase_redb raw_redb). Counts do not move between runs
# of the same binary, unlike times on a shared machine.
#
#   bash crates/netabase_bench/scripts/instructions.sh [records] [contender ...]
#   WORKLOADS="iterate remove_bulk" bash crates/netabase_bench/scripts/instructions.sh
#
# Builds the `profile` binary in release mode first; prints one table row per workload.
set -euo pipefail
cd "$(dirname "$0")/../../.."

records="${1:-10000}"
shift || true
contenders=("$@")
[ ${#contenders[@]} -gt 0 ] || contenders=(netabase_redb raw_redb)

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -p netabase_bench --bin profile >&2
target="${CARGO_TARGET_DIR:-target}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# workload id (as `profile` takes it) and the contender method that runs it
workloads=(
  "insert_bulk insert_bulk"
  "insert_each_txn insert_each"
  "insert_bulk_5_indexes insert_bulk_wide"
  "get_one_txn get_one_txn"
  "get_each_txn get_each_txn"
  "secondary_eq query_eq"
  "secondary_range query_range"
  "iterate iterate"
  "remove_bulk remove_bulk"
  "remove_bulk_5_indexes remove_bulk_wide"
)

printf '| workload |'
for c in "${contenders[@]}"; do printf ' %s |' "$c"; done
printf '\n|---|'
for _ in "${contenders[@]}"; do printf -- '---:|'; done
printf '\n'
for entry in "${workloads[@]}"; do
  read -r id function <<<"$entry"
  # WORKLOADS="iterate remove_bulk" limits the table to those rows.
  if [ -n "${WORKLOADS:-}" ] && [[ " $WORKLOADS " != *" $id "* ]]; then continue; fi
  printf '| %s |' "$id"
  for c in "${contenders[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
      "--toggle-collect=*Contender>::${function}" \
      "$target/release/profile" "$c" "$id" "$records" 1 >/dev/null 2>"$out/log"
    count=$(grep -E '^summary:' "$out/cg.out" | awk '{print $2}')
    printf ' %s |' "$count"
  done
  printf '\n'
done
