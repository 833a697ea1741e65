#!/usr/bin/env bash
# THE main job: the whole pipeline on the real local stack. Starts the stack,
# builds, migrates, creates the topics, imports the price book, runs the
# rollup, sends simulated gateway and RAG traffic for a few dozen tenants
# (with duplicates and malformed messages), waits until ClickHouse has
# counted exactly the distinct events sent, and prints the month-to-date
# usage and cost per tenant. Then budgets bite: the budget service, the
# reference gateway and the RAG service start, three tenants get small
# budgets (block, degrade, alert only), and requests go through the gateway
# over HTTP until the blocked tenant gets 429s; its alerts reach a webhook
# receiver and a mailbox through the notifier; the alerts, deliveries and
# budget status are printed.
#
# Sizes: DEMO_TENANTS (40), DEMO_EVENTS (200000), DEMO_RATE (20000 events/s),
# DEMO_SEED (7), DEMO_TIMEOUT (120 s to wait for the count).
#
# The demo works in its own slice of the stack (ClickHouse database
# meterline_demo, topics meterline.demo.*, group meterline-demo-rollup) and
# empties its ClickHouse database first, so the count it checks is this
# run's and nothing else's. Override with DEMO_CLICKHOUSE_DATABASE etc.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

: "${DEMO_TENANTS:=40}" "${DEMO_EVENTS:=200000}" "${DEMO_RATE:=20000}" "${DEMO_SEED:=7}" "${DEMO_TIMEOUT:=120}"
: "${DEMO_CLICKHOUSE_DATABASE:=meterline_demo}" "${DEMO_USAGE_TOPIC:=meterline.demo.usage.v1}"
: "${DEMO_DLQ_TOPIC:=meterline.demo.usage.dlq}" "${DEMO_ROLLUP_GROUP:=meterline-demo-rollup}"
: "${DEMO_THROTTLE_TOPIC:=meterline.demo.throttle.v1}" "${DEMO_ALERTS_TOPIC:=meterline.demo.alerts.v1}"
export METERLINE_CLICKHOUSE_DATABASE=$DEMO_CLICKHOUSE_DATABASE METERLINE_USAGE_TOPIC=$DEMO_USAGE_TOPIC \
  METERLINE_DLQ_TOPIC=$DEMO_DLQ_TOPIC METERLINE_ROLLUP_GROUP=$DEMO_ROLLUP_GROUP \
  METERLINE_THROTTLE_TOPIC=$DEMO_THROTTLE_TOPIC METERLINE_ALERTS_TOPIC=$DEMO_ALERTS_TOPIC
demo_dir="$STATE_DIR/demo"
truth="$demo_dir/truth.json"
rollup_log="$demo_dir/rollup.log"
mkdir -p "$demo_dir"

scripts/stack.sh up
log "building (release)"
cargo build --release --bins
bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"
meterline() { "$bin/meterline" "$@"; }

log "resetting ClickHouse database $METERLINE_CLICKHOUSE_DATABASE, migrating, creating topics, importing prices"
# Credentials go as ClickHouse's headers, read by curl from its standard
# input, so they appear in no URL and in no process list.
printf 'header = "X-ClickHouse-User: %s"\nheader = "X-ClickHouse-Key: %s"\n' \
  "$METERLINE_CLICKHOUSE_USER" "$METERLINE_CLICKHOUSE_PASSWORD" |
  curl -fsS -K - "$METERLINE_CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS \`$METERLINE_CLICKHOUSE_DATABASE\`" >/dev/null \
  || die "could not drop ClickHouse database $METERLINE_CLICKHOUSE_DATABASE at $METERLINE_CLICKHOUSE_URL"
meterline migrate
meterline topics create
meterline prices import prices/default.csv

listen=$METERLINE_ROLLUP_LISTEN
log "starting meterline-rollup (metrics on http://$listen/metrics, log: $rollup_log)"
"$bin/meterline-rollup" >"$rollup_log" 2>&1 </dev/null &
rollup=$!
started=("$rollup")
stop_started() {
  local p
  for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${started[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_started EXIT
rollup_alive() {
  kill -0 "$rollup" 2>/dev/null && return
  tail -n 20 "$rollup_log" >&2
  die "meterline-rollup exited (log: $rollup_log; is $listen already in use? set METERLINE_ROLLUP_LISTEN)"
}
deadline=$((SECONDS + 30))
until curl -fsS -m 2 "http://$listen/health" >/dev/null 2>&1; do
  rollup_alive
  ((SECONDS < deadline)) || die "meterline-rollup is not healthy after 30 s (log: $rollup_log)"
  sleep 0.2
done

# start NAME HEALTH_URL: runs $bin/NAME in the background, logging to
# $demo_dir/NAME.log, and waits until it is healthy.
start() {
  local name=$1 url=$2 log="$demo_dir/$1.log" pid deadline
  log "starting $name (log: $log)"
  "$bin/$name" >"$log" 2>&1 </dev/null &
  pid=$!
  started+=("$pid")
  deadline=$((SECONDS + 30))
  until curl -fsS -m 2 "$url" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$name exited (log: $log)"; }
    ((SECONDS < deadline)) || die "$name is not healthy after 30 s (log: $log)"
    sleep 0.2
  done
}
# The budget service counts the same traffic as the rollup, as it arrives.
start meterline-budget "http://$METERLINE_BUDGET_LISTEN/health"

log "sending $DEMO_EVENTS events from $DEMO_TENANTS tenants at $DEMO_RATE/s (5% duplicates, 1% malformed, seed $DEMO_SEED)"
meterline loadgen --tenants "$DEMO_TENANTS" --events "$DEMO_EVENTS" --rate "$DEMO_RATE" \
  --duplicate-ratio 0.05 --malformed-ratio 0.01 --seed "$DEMO_SEED" --truth "$truth"

month=$(date -u +%Y-%m)
want=$("$SYSTEM_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["distinct_events"])' "$truth")
counted() {
  meterline usage --month "$month" --format json \
    | "$SYSTEM_PYTHON" -c 'import json, sys; print(sum(int(r["events"]) for r in json.load(sys.stdin)))'
}
log "waiting until ClickHouse has counted the $want distinct events (up to $DEMO_TIMEOUT s)"
deadline=$((SECONDS + DEMO_TIMEOUT))
while :; do
  have=$(counted) || die "meterline usage failed"
  [ "$have" -eq "$want" ] && break
  [ "$have" -lt "$want" ] || die "counted $have events, more than the $want distinct events sent"
  rollup_alive
  ((SECONDS < deadline)) || die "counted $have of $want events after $DEMO_TIMEOUT s (log: $rollup_log)"
  sleep 1
done
log "counted $have events: every distinct event exactly once"

echo
echo "Usage and cost for $month (ClickHouse database $METERLINE_CLICKHOUSE_DATABASE):"
meterline usage --month "$month" --format table
echo
echo "Dead letters in $METERLINE_DLQ_TOPIC (every demo run since the broker started;" \
  "this run sent $("$SYSTEM_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["malformed_sent"])' "$truth") malformed):"
meterline dlq summary --idle-secs 2

source scripts/demo_budgets.sh

echo
echo "Query it again: METERLINE_CLICKHOUSE_DATABASE=$METERLINE_CLICKHOUSE_DATABASE $bin/meterline usage --month $month"
echo "                $bin/meterline budgets status; $bin/meterline alerts"
