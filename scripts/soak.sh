#!/usr/bin/env bash
# The long crash loop: every backend and durability setting, SECONDS_PER_CONFIG
# seconds each (default 180), one configuration at a time, then the table of
# docs/reliability.md. A failing configuration prints its failures and makes the script
# exit non-zero; the table is printed either way.
#
#   scripts/soak.sh            # 3 minutes per configuration
#   scripts/soak.sh 600        # 10 minutes per configuration
#   NETABASE_CRASH_SEED=42 scripts/soak.sh 60   # replay a run
set -uo pipefail
cd "$(dirname "$0")/.."

secs="${1:-180}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "crash loop: ${secs} s per configuration, $(nproc) cores, $(uname -sr)" >&2
NETABASE_CRASH_SECS="$secs" cargo test -p netabase_store --features sled \
  --test crash_loop -- --nocapture --test-threads=1 2>&1 | tee "$log" >&2
status=${PIPESTATUS[0]}

echo
echo "| backend | durability | seconds | cycles | killed before open | acknowledged commits | lost (beyond the bound) | lost within the no-fsync bound | oldest lost commit (acknowledged before the kill) | partial transactions | index mismatches | phantom commits | integrity failures (redb) | unopenable |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
grep -o 'crash-loop |.*' "$log" | sed -e 's/^crash-loop //' -e 's/ | seed [0-9]*$/ |/'
echo
grep -o 'crash-loop |.*' "$log" | sed -n 's/.*| seed \([0-9]*\)$/seed \1/p' | head -1
exit "$status"
