#!/usr/bin/env bash
# The local stack: Postgres, ClickHouse, a Kafka-protocol broker (Tansu) and
# an SMTP server. `up` installs what is missing and starts what is not
# already answering (idempotent); `down` stops only what `up` started;
# `status` tells what answers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$TOOLS_DIR" "$STATE_DIR"

# started NAME PID: record a process this script owns.
started() { echo "$2" >"$STATE_DIR/$1.pid"; }

pg_host=$(host_of "$METERLINE_DATABASE_URL"); pg_port=$(port_of "$METERLINE_DATABASE_URL")
ch_host=$(host_of "$METERLINE_CLICKHOUSE_URL"); ch_port=$(port_of "$METERLINE_CLICKHOUSE_URL")
kafka_host=${METERLINE_KAFKA_BROKERS%%,*}; kafka_port=${kafka_host##*:}; kafka_host=${kafka_host%:*}
smtp_host=$(host_of "$METERLINE_SMTP_URL"); smtp_port=$(port_of "$METERLINE_SMTP_URL")

postgres_up() {
  if pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql postgresql-client; fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting Postgres $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for postgres 30 pg_isready -q -h "$pg_host" -p "$pg_port" \
    || die "Postgres does not answer on $pg_host:$pg_port (see /var/log/postgresql/)"
  started postgres "cluster:$version"
}

clickhouse_up() {
  if curl -fsS "http://$ch_host:$ch_port/ping" >/dev/null 2>&1; then return; fi
  command -v clickhouse-server >/dev/null || apt_install clickhouse-server clickhouse-client
  local dir="$STATE_DIR/clickhouse"
  # log/ must exist before --daemon, or the server exits 0 and starts nothing.
  mkdir -p "$dir/log" "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  sed -e "s#@DIR@#$dir#g" -e "s#@HTTP_PORT@#$ch_port#g" -e "s#@HOST@#$ch_host#g" \
    "$REPO_ROOT/scripts/clickhouse/config.xml" >"$dir/config.xml"
  sed -e "s#@DIR@#$dir#g" "$REPO_ROOT/scripts/clickhouse/users.xml" >"$dir/users.xml"
  log "starting ClickHouse on $ch_host:$ch_port"
  clickhouse-server --config-file="$dir/config.xml" --daemon --pid-file="$dir/clickhouse.pid" \
    || die "clickhouse-server failed to start (see $dir/log/)"
  wait_for clickhouse 60 curl -fsS "http://$ch_host:$ch_port/ping" \
    || die "ClickHouse does not answer on $ch_host:$ch_port (see $dir/log/error.log)"
  started clickhouse "$(cat "$dir/clickhouse.pid")"
}

tansu_bin="$TOOLS_DIR/bin/tansu"
kafka_up() {
  if port_open "$kafka_host" "$kafka_port"; then return; fi
  if [ ! -x "$tansu_bin" ]; then
    log "building the Kafka-protocol broker Tansu $TANSU_VERSION into $TOOLS_DIR (about 15 minutes, once)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore --root "$TOOLS_DIR" \
      >"$STATE_DIR/tansu-install.log" 2>&1 || die "installing Tansu failed (see $STATE_DIR/tansu-install.log)"
  fi
  log "starting Tansu on $kafka_host:$kafka_port (memory storage)"
  nohup "$tansu_bin" broker \
    --listener-url "tcp://$kafka_host:$kafka_port" \
    --advertised-listener-url "tcp://$kafka_host:$kafka_port" \
    --storage-engine memory://tansu/ >"$STATE_DIR/tansu.log" 2>&1 &
  started tansu $!
  wait_for kafka 30 port_open "$kafka_host" "$kafka_port" || die "Tansu does not answer (see $STATE_DIR/tansu.log)"
}

# Debian's aiosmtpd; `python3` on PATH may be another interpreter without it.
smtp_up() {
  if port_open "$smtp_host" "$smtp_port"; then return; fi
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || apt_install python3-aiosmtpd
  log "starting an SMTP server on $smtp_host:$smtp_port"
  nohup /usr/bin/python3 -m aiosmtpd -n -l "$smtp_host:$smtp_port" >"$STATE_DIR/smtp.log" 2>&1 &
  started smtp $!
  wait_for smtp 15 port_open "$smtp_host" "$smtp_port" || die "SMTP server does not answer (see $STATE_DIR/smtp.log)"
}

compose_tool() {
  # The test suite validates docker-compose.yml with it; no engine needed.
  command -v docker-compose >/dev/null || apt_install docker-compose
}

database_up() {
  local db=${METERLINE_DATABASE_URL##*/}; db=${db%%\?*}
  local admin=${METERLINE_DATABASE_URL%/*}/postgres
  if [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    psql "$admin" -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
}

stop_owned() {
  local name=$1 file="$STATE_DIR/$1.pid"
  [ -f "$file" ] || return 0
  local pid; pid=$(cat "$file")
  case $pid in
    cluster:*) pg_ctlcluster --skip-systemctl-redirect "${pid#cluster:}" main stop || true ;;
    *) kill "$pid" 2>/dev/null || true ;;
  esac
  rm -f "$file"
  log "stopped $name"
}

status() {
  local s
  s=$(pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null && echo up || echo down); echo "postgres   $pg_host:$pg_port $s"
  s=$(curl -fsS "http://$ch_host:$ch_port/ping" >/dev/null 2>&1 && echo up || echo down); echo "clickhouse $ch_host:$ch_port $s"
  s=$(port_open "$kafka_host" "$kafka_port" && echo up || echo down); echo "kafka      $kafka_host:$kafka_port $s"
  s=$(port_open "$smtp_host" "$smtp_port" && echo up || echo down); echo "smtp       $smtp_host:$smtp_port $s"
}

case ${1:-up} in
  up)
    command -v curl >/dev/null || apt_install curl
    command -v pg_isready >/dev/null || apt_install postgresql-client
    postgres_up; database_up; clickhouse_up; kafka_up; smtp_up; compose_tool
    log "local stack is up"
    ;;
  down) for s in smtp tansu clickhouse postgres; do stop_owned $s; done ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
