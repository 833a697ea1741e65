# Shared by the scripts: defaults for every METERLINE_* variable (the same
# names the services read and docker-compose.yml sets), and small helpers.
# shellcheck shell=bash

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
: "${METERLINE_SMTP_URL:=smtp://127.0.0.1:2525}"
export METERLINE_HOME METERLINE_KAFKA_BROKERS METERLINE_CLICKHOUSE_URL METERLINE_CLICKHOUSE_DATABASE \
  METERLINE_CLICKHOUSE_USER METERLINE_CLICKHOUSE_PASSWORD METERLINE_DATABASE_URL METERLINE_USAGE_TOPIC \
  METERLINE_DLQ_TOPIC METERLINE_ROLLUP_GROUP METERLINE_ROLLUP_LISTEN METERLINE_SMTP_URL

TOOLS_DIR="$METERLINE_HOME/tools"
STATE_DIR="$METERLINE_HOME/state"
TANSU_VERSION=0.6.0
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: is something listening?
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# host and port of a host:port or URL
host_of() { local a=${1#*://}; a=${a%%/*}; a=${a##*@}; echo "${a%:*}"; }
port_of() { local a=${1#*://}; a=${a%%/*}; echo "${a##*:}"; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}
