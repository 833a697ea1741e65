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
echo "Budget alerts (topic $METERLINE_ALERTS_TOPIC):"
for t in "$acme" "$globex" "$initech"; do meterline alerts --tenant "$t" --idle-secs 1; done
echo
echo "Budget status:"
meterline budgets status
