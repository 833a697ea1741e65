# Sourced by demo.sh after the rollup part: budgets that bite, over HTTP.
# Uses demo.sh's $bin, $demo_dir, meterline(), start() and die(); the budget
# service is already running (started before the load, to keep up with it).
# shellcheck shell=bash

: "${DEMO_ROUNDS:=40}"
start meterline-gateway "http://$METERLINE_GATEWAY_LISTEN/health"
start meterline-rag "http://$METERLINE_RAG_LISTEN/health"

# Fresh tenant names each run: spend is month-to-date, so last run's
# tenants would start this one already over budget.
run=$(date -u +%H%M%S)
acme="acme-$run" globex="globex-$run" initech="initech-$run"
log "budgets: $acme 0.02 USD (block), $globex 0.02 USD (degrade to gpt-4o-mini), $initech 0.01 USD (alerts only)"
meterline budgets set --tenant "$acme" --monthly 0.02 --currency USD --action block
meterline budgets set --tenant "$globex" --monthly 0.02 --currency USD --action degrade:gpt-4o-mini
meterline budgets set --tenant "$initech" --monthly 0.01 --currency USD --action none

# Alerts reach people: a webhook receiver on this machine and an email
# address for the blocked tenant, delivered by the notifier through the
# local SMTP server (which prints what it accepts to its log).
hook_port=$("$SYSTEM_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
hooks="$demo_dir/webhooks.jsonl"
: >"$hooks"
"$SYSTEM_PYTHON" scripts/webhook_receiver.py serve "$hook_port" "$hooks" &
started+=("$!")
meterline channels add-webhook --tenant "$acme" --url "http://127.0.0.1:$hook_port/meterline" >"$demo_dir/channel.txt"
meterline channels add-email --tenant "$acme" --to "ops@acme.example" >/dev/null
log "alert channels for $acme: a webhook (secret in $demo_dir/channel.txt) and ops@acme.example"
smtp_log="$STATE_DIR/smtp/smtp.log"
smtp_lines_before=$(wc -l <"$smtp_log" 2>/dev/null || echo 0)
# The receiver is on loopback, which the notifier refuses unless allowed.
export METERLINE_WEBHOOK_ALLOW_NETS=127.0.0.1/32
start meterline-notify "http://$METERLINE_NOTIFY_LISTEN/health"

token() { "$bin/meterline-gateway" mint-token "$1" 3600; }
declare -A tokens=([$acme]=$(token "$acme") [$globex]=$(token "$globex") [$initech]=$(token "$initech"))
prompt=$(printf 'Draft a short status update for the platform team about this week. %.0s' {1..20})
chat() {
  curl -sS -m 10 -o "$demo_dir/last.json" -w '%{http_code}' "http://$METERLINE_GATEWAY_LISTEN/v1/chat/completions" \
    -H "authorization: Bearer ${tokens[$1]}" -H 'content-type: application/json' \
    --data-binary "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"$prompt\"}]}"
}
served_model() { "$SYSTEM_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("model","-"))' "$demo_dir/last.json"; }
rag() {
  curl -sS -m 10 -o /dev/null -w '%{http_code}' "http://$METERLINE_RAG_LISTEN/v1/$2" \
    -H "authorization: Bearer ${tokens[$1]}" -H 'content-type: application/json' --data-binary "$3"
}

echo
echo "Requests through the gateway (chat, gpt-4o) and the RAG service (embeddings + search):"
printf '%-6s %-26s %-26s %-26s\n' round "$acme (block)" "$globex (degrade)" "$initech (alerts)"
blocked=
for round in $(seq 1 "$DEMO_ROUNDS"); do
  line=()
  for t in "$acme" "$globex" "$initech"; do
    code=$(chat "$t")
    case $code in
      200) line+=("200 $(served_model)") ;;
      429) line+=("429 budget exceeded"); [ "$t" = "$acme" ] && blocked=${blocked:-$round} ;;
      *) line+=("$code ?") ;;
    esac
  done
  rag "$initech" embeddings '{"model":"text-embedding-3-small","input":"quarterly report"}' >/dev/null
  rag "$initech" search '{"query":"quarterly report","top_k":3}' >/dev/null
  printf '%-6s %-26s %-26s %-26s\n' "$round" "${line[@]}"
  # A few rounds past the block, to show it holds.
  [ -n "$blocked" ] && ((round >= blocked + 3)) && break
  sleep 0.2
done
[ -n "$blocked" ] || die "$acme was never blocked in $DEMO_ROUNDS rounds (log: $demo_dir/meterline-budget.log)"

echo
log "raising $acme's budget to 1 USD: the gateway serves it again within a second"
meterline budgets set --tenant "$acme" --monthly 1 --currency USD --action block >/dev/null
sleep 1
echo "$acme after the raise: HTTP $(chat "$acme")"
sleep 1
echo
log "waiting (up to 15 s) for $acme's alerts to reach its webhook and its mailbox"
deadline=$((SECONDS + 15))
until grep -q '"threshold_percent": 100' "$hooks" 2>/dev/null && tail -n +"$((smtp_lines_before + 1))" "$smtp_log" 2>/dev/null | grep -q "^Subject: .*$acme: 100%"; do
  ((SECONDS < deadline)) || { echo "(not all arrived; see meterline deliveries --tenant $acme)"; break; }
  sleep 0.5
done
echo "Webhooks received for $acme (Standard Webhooks, signed; file $hooks):"
"$SYSTEM_PYTHON" scripts/webhook_receiver.py show "$hooks"
echo "Email to ops@acme.example, as the SMTP server logged it ($smtp_log):"
tail -n +"$((smtp_lines_before + 1))" "$smtp_log" | grep -E "^Subject: \[Meterline\] $acme" | sed 's/^/  /'
echo "  The first one's plain-text part begins:"
tail -n +"$((smtp_lines_before + 1))" "$smtp_log" | awk '/^Content-Type: text\/plain/ {p=1; next} p && NF && !/^Content-Transfer/ {print "  " $0; if (++n == 4) exit}'
echo
echo "Deliveries for $acme:"
meterline deliveries --tenant "$acme"
echo
echo "Budget alerts (topic $METERLINE_ALERTS_TOPIC):"
for t in "$acme" "$globex" "$initech"; do meterline alerts --tenant "$t" --idle-secs 1; done
echo
echo "Budget status:"
meterline budgets status
