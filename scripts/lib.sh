# Sourced by the scripts. The one place that defines the default of every
# METERLINE_* variable (the names the services read and docker-compose.yml
# sets), plus small helpers.
# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this

: "${METERLINE_HOME:=$HOME/.cache/meterline}"
: "${METERLINE_KAFKA_BROKERS:=127.0.0.1:9092}"
: "${METERLINE_CLICKHOUSE_URL:=http://127.0.0.1:8123}"
: "${METERLINE_CLICKHOUSE_DATABASE:=meterline}"
: "${METERLINE_CLICKHOUSE_USER:=default}"
: "${METERLINE_CLICKHOUSE_PASSWORD:=}"
: "${METERLINE_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/meterline}"
: "${METERLINE_USAGE_TOPIC:=meterline.usage.v1}"
: "${METERLINE_DLQ_TOPIC:=meterline.usage.dlq}"
: "${METERLINE_ROLLUP_GROUP:=meterline-rollup}"
: "${METERLINE_ROLLUP_LISTEN:=127.0.0.1:9464}"
: "${METERLINE_THROTTLE_TOPIC:=meterline.throttle.v1}"
: "${METERLINE_ALERTS_TOPIC:=meterline.alerts.v1}"
: "${METERLINE_BUDGET_LISTEN:=127.0.0.1:9465}"
: "${METERLINE_NOTIFY_GROUP:=meterline-notify}"
: "${METERLINE_NOTIFY_LISTEN:=127.0.0.1:9466}"
: "${METERLINE_GATEWAY_LISTEN:=127.0.0.1:8080}"
: "${METERLINE_RAG_LISTEN:=127.0.0.1:8081}"
# The demo's token-signing secret; a real deployment sets its own.
: "${METERLINE_JWT_SECRET:=meterline-local-demo-secret}"
: "${METERLINE_SMTP_URL:=smtp://127.0.0.1:2525}"
export METERLINE_HOME METERLINE_KAFKA_BROKERS METERLINE_CLICKHOUSE_URL METERLINE_CLICKHOUSE_DATABASE \
  METERLINE_CLICKHOUSE_USER METERLINE_CLICKHOUSE_PASSWORD METERLINE_DATABASE_URL METERLINE_USAGE_TOPIC \
  METERLINE_DLQ_TOPIC METERLINE_ROLLUP_GROUP METERLINE_ROLLUP_LISTEN METERLINE_THROTTLE_TOPIC \
  METERLINE_ALERTS_TOPIC METERLINE_BUDGET_LISTEN METERLINE_NOTIFY_GROUP METERLINE_NOTIFY_LISTEN METERLINE_GATEWAY_LISTEN METERLINE_RAG_LISTEN \
  METERLINE_JWT_SECRET METERLINE_SMTP_URL

# Installed tools (Tansu) and per-service state, logs and pid files.
TOOLS_DIR="$METERLINE_HOME/tools"
STATE_DIR="$METERLINE_HOME/state"
TANSU_VERSION=0.6.0
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Debian's interpreter: `python3` on PATH may be another one (pyenv) without
# Debian's python3-aiosmtpd.
SYSTEM_PYTHON=/usr/bin/python3

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: does something accept connections there?
# shellcheck disable=SC2016 # $0 and $1 belong to the inner shell
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds; fails after SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# host_of / port_of URL-or-host:port (first entry of a comma-separated list)
host_of() { local a=${1%%,*}; a=${a#*://}; a=${a%%/*}; a=${a##*@}; echo "${a%:*}"; }
port_of() { local a=${1%%,*}; a=${a#*://}; a=${a%%/*}; echo "${a##*:}"; }

# apt_install PACKAGE...: `apt-get update` once per script run, then install.
apt_updated=
apt_install() {
  command -v apt-get >/dev/null || die "$* missing and no apt-get to install it"
  local logfile="$METERLINE_HOME/apt.log"
  mkdir -p "$METERLINE_HOME"
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    apt-get update >>"$logfile" 2>&1 || die "apt-get update failed (see $logfile)"
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" </dev/null >>"$logfile" 2>&1 \
    || die "apt-get install $* failed (see $logfile)"
}
