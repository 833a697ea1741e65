#!/usr/bin/env bash
# THE main job: the whole pipeline on the real local stack. Starts the
# stack, migrates, loads the price book, runs the rollup, sends simulated
# gateway and RAG traffic for a few dozen tenants (with duplicates and
# malformed messages), waits until ClickHouse has counted every distinct
# event, and prints the per-tenant month-to-date cost table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

: "${DEMO_TENANTS:=40}" "${DEMO_EVENTS:=200000}" "${DEMO_RATE:=20000}"
demo_dir="$STATE_DIR/demo"
mkdir -p "$demo_dir"

scripts/stack.sh up
log "building (release)"
cargo build --release --bins
bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"

"$bin/meterline" migrate
"$bin/meterline" topics create
"$bin/meterline" prices import prices/default.csv

log "starting the rollup (log: $demo_dir/rollup.log)"
"$bin/meterline-rollup" >"$demo_dir/rollup.log" 2>&1 &
rollup=$!
trap 'kill $rollup 2>/dev/null; wait $rollup 2>/dev/null || true' EXIT

month=$(date -u +%Y-%m)
before=$("$bin/meterline" usage --month "$month" --format json \
  | /usr/bin/python3 -c 'import json,sys; print(sum(r["events"] for r in json.load(sys.stdin)))')

log "simulated traffic: $DEMO_EVENTS events from $DEMO_TENANTS tenants at $DEMO_RATE/s, 5% duplicates, 1% malformed"
"$bin/meterline" loadgen --tenants "$DEMO_TENANTS" --events "$DEMO_EVENTS" --rate "$DEMO_RATE" \
  --duplicate-ratio 0.05 --malformed-ratio 0.01 --seed "$RANDOM" --truth "$demo_dir/truth.json"

want=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["distinct_events"] + int(sys.argv[2]))' \
  "$demo_dir/truth.json" "$before")
log "waiting until ClickHouse has all $want events of $month"
deadline=$((SECONDS + 180))
while :; do
  have=$("$bin/meterline" usage --month "$month" --format json \
    | /usr/bin/python3 -c 'import json,sys; print(sum(r["events"] for r in json.load(sys.stdin)))')
  [ "$have" -ge "$want" ] && break
  ((SECONDS < deadline)) || die "only $have of $want events after 180 s (see $demo_dir/rollup.log)"
  sleep 1
done
[ "$have" -eq "$want" ] || die "counted $have events, expected $want"

"$bin/meterline" usage --month "$month" --format table
"$bin/meterline" dlq summary --idle-secs 2
