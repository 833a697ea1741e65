#!/usr/bin/env bash
# The local stack: Postgres, ClickHouse, a Kafka-protocol broker (Tansu) and
# an SMTP server, at the addresses of the METERLINE_* variables.
#
#   up      install what is missing, start what does not already answer, wait
#           until everything is ready, create the Postgres database. Idempotent.
#   down    stop only what `up` started (recorded in pid files).
#   status  what answers, and who started it.
#
# State, logs and pid files: $METERLINE_HOME/state/<service>/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pg_host=$(host_of "$METERLINE_DATABASE_URL"); pg_port=$(port_of "$METERLINE_DATABASE_URL")
ch_host=$(host_of "$METERLINE_CLICKHOUSE_URL"); ch_port=$(port_of "$METERLINE_CLICKHOUSE_URL")
kafka_host=$(host_of "$METERLINE_KAFKA_BROKERS"); kafka_port=$(port_of "$METERLINE_KAFKA_BROKERS")
smtp_host=$(host_of "$METERLINE_SMTP_URL"); smtp_port=$(port_of "$METERLINE_SMTP_URL")
tansu_bin="$TOOLS_DIR/bin/tansu"

# What answering means, per component.
postgres_ready() { pg_isready -q -h "$pg_host" -p "$pg_port"; }
clickhouse_ready() { curl -fsS -m 2 "http://$ch_host:$ch_port/ping" >/dev/null 2>&1; }
tansu_ready() { port_open "$kafka_host" "$kafka_port"; }
smtp_ready() { port_open "$smtp_host" "$smtp_port"; }

pid_file() { echo "$STATE_DIR/$1/$1.pid"; }
log_file() { echo "$STATE_DIR/$1/$1.log"; }

# owned_pid NAME: prints the pid of the live process `up` started for NAME.
# The command line must still be NAME's, so a stale pid file never points
# `down` at an unrelated process that reused the pid.
owned_pid() {
  local file pid pattern
  file=$(pid_file "$1")
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  if [[ $pid == cluster:* ]]; then # a Postgres cluster started with pg_ctlcluster
    pg_ctlcluster --skip-systemctl-redirect "${pid#cluster:}" main status >/dev/null 2>&1 && echo "$pid"
    return
  fi
  case $1 in clickhouse) pattern=clickhouse ;; tansu) pattern=tansu ;; smtp) pattern=aiosmtpd ;; esac
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
    && [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$pattern"* ]] && echo "$pid"
}

# spawn NAME COMMAND...: runs COMMAND in its own session (a Ctrl-C in the
# caller's terminal must not reach it), output to NAME's log, pid to NAME's
# pid file. The inner shell writes its own pid and execs, so the pid is
# COMMAND's whether or not setsid had to fork.
spawn() {
  local name=$1; shift
  local pidf; pidf=$(pid_file "$name")
  mkdir -p "$STATE_DIR/$name"
  rm -f "$pidf"
  # shellcheck disable=SC2016 # $$ and $0 belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >"$(log_file "$name")" 2>&1 </dev/null 9>&- &
  wait_for 5 test -s "$pidf" || die "could not start $name (see $(log_file "$name"))"
}

# wait_ready NAME SECONDS LOG: until NAME answers; fails early if the process
# `up` started has exited, showing the end of LOG.
wait_ready() {
  local name=$1 deadline=$((SECONDS + $2)) logf=$3
  until "${name}_ready"; do
    if ! owned_pid "$name" >/dev/null || ((SECONDS >= deadline)); then
      tail -n 15 "$logf" >&2 2>/dev/null || true
      die "$name does not answer (log: $logf)"
    fi
    sleep 0.2
  done
}

# report NAME ADDRESS HOW
report() { printf '%-10s %-22s %s\n' "$1" "$2" "$3"; }

postgres_up() {
  local addr="$pg_host:$pg_port"
  if postgres_ready; then report postgres "$addr" "ready (already running)"; return; fi
  local installed=
  if ! compgen -G "/etc/postgresql/*/main" >/dev/null; then
    apt_install postgresql postgresql-client # its postinst creates the cluster "main"
    installed=1
  fi
  local version; version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
  if [ -n "$installed" ]; then
    # A cluster this script installed: trust local TCP connections, as the
    # services' default URL (no password) expects.
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' \
      "/etc/postgresql/$version/main/pg_hba.conf"
    pg_ctlcluster --skip-systemctl-redirect "$version" main stop >/dev/null 2>&1 || true
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start \
    || die "pg_ctlcluster $version main start failed (log: /var/log/postgresql/postgresql-$version-main.log)"
  mkdir -p "$STATE_DIR/postgres"
  echo "cluster:$version" >"$(pid_file postgres)"
  wait_ready postgres 30 "/var/log/postgresql/postgresql-$version-main.log"
  report postgres "$addr" "ready (started cluster $version main)"
}

# The database of METERLINE_DATABASE_URL; `meterline migrate` would create it
# too, but tests and tools may connect before that.
database_up() {
  local url=${METERLINE_DATABASE_URL%%\?*}
  local db=${url##*/} admin=${url%/*}/postgres exists
  exists=$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>&1) \
    || die "cannot connect to Postgres as ${admin} (trust auth for 127.0.0.1 expected): $exists"
  if [ "$exists" != 1 ]; then
    psql "$admin" -qc "CREATE DATABASE \"$db\"" >/dev/null 2>&1 \
      || [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ] \
      || die "could not create the Postgres database $db"
  fi
}

# Where ClickHouse keeps its tables: in memory (/dev/shm) where the machine
# has it, like the local broker (Tansu's memory storage), since the local
# stack is disposable anyway. On ext4, once tests and benchmarks had created
# and dropped enough files, ClickHouse 18.16 spent more of its insert time in
# the kernel's inode allocation (perf: recently_deleted, find_inode_bit) than
# in its own code: each insert writes ~50 files. That made the pipeline
# benchmark ~25 % slower, and slower the longer the machine had been used.
# METERLINE_CLICKHOUSE_DATA_DIR puts them elsewhere, e.g. on disk.
clickhouse_data_dir() {
  if [ -n "${METERLINE_CLICKHOUSE_DATA_DIR:-}" ]; then
    echo "$METERLINE_CLICKHOUSE_DATA_DIR"
  elif [ -d /dev/shm ] && [ -w /dev/shm ]; then
    # One directory per METERLINE_HOME, so two stacks never share one.
    echo "/dev/shm/meterline-$(printf %s "$METERLINE_HOME" | md5sum | cut -c1-8)/clickhouse"
  else
    echo "$STATE_DIR/clickhouse/data"
  fi
}

clickhouse_up() {
  local addr="$ch_host:$ch_port" dir="$STATE_DIR/clickhouse" data
  if clickhouse_ready; then report clickhouse "$addr" "ready (already running)"; return; fi
  command -v clickhouse-server >/dev/null || apt_install clickhouse-server clickhouse-client
  data=$(clickhouse_data_dir)
  # log/ must exist before --daemon, or the server exits 0 and starts nothing.
  mkdir -p "$dir/log" "$data/data" "$data/tmp" "$dir/user_files" "$dir/format_schemas"
  sed -e "s#@DIR@#$dir#g" -e "s#@DATA@#$data#g" -e "s#@HTTP_PORT@#$ch_port#g" -e "s#@HOST@#$ch_host#g" \
    "$REPO_ROOT/scripts/clickhouse/config.xml" >"$dir/config.xml"
  cp "$REPO_ROOT/scripts/clickhouse/users.xml" "$dir/users.xml"
  rm -f "$(pid_file clickhouse)"
  # Debian's package links the system jemalloc without the settings that
  # ClickHouse's own builds, the production image's among them, compile in
  # (contrib/jemalloc-cmake). With jemalloc's defaults, blocks of
  # 8 MiB and more went back to the kernel as soon as they were freed, and
  # inserts faulted their memory in again: ~115 000 page faults per
  # `bench pipeline`, 70 000–98 000 with these, ~3 % of ClickHouse's CPU.
  MALLOC_CONF=percpu_arena:percpu,oversize_threshold:0,muzzy_decay_ms:5000,dirty_decay_ms:5000 \
  clickhouse-server --config-file="$dir/config.xml" --daemon --pid-file="$(pid_file clickhouse)" \
    >"$dir/log/stdout.log" 2>&1 </dev/null 9>&- || die "clickhouse-server failed to start (logs: $dir/log/)"
  wait_for 10 test -s "$(pid_file clickhouse)" || die "clickhouse-server did not start (logs: $dir/log/)"
  wait_ready clickhouse 60 "$dir/log/error.log"
  report clickhouse "$addr" "ready (started, data: $data, logs: $dir/log/)"
}

# Tansu is built from source once (about 15 minutes on 2 cores) into
# $METERLINE_HOME/tools, outside the checkout.
tansu_install() {
  [ -x "$tansu_bin" ] && return
  if pgrep -f "cargo install tansu" >/dev/null; then
    log "waiting for the 'cargo install tansu' already running (up to 60 minutes)"
    local deadline=$((SECONDS + 3600))
    while pgrep -f "cargo install tansu" >/dev/null && ((SECONDS < deadline)); do sleep 5; done
    [ -x "$tansu_bin" ] && return
  fi
  command -v cargo >/dev/null || die "cargo is needed to build Tansu: install Rust (https://rustup.rs)"
  command -v cc >/dev/null || apt_install build-essential pkg-config
  mkdir -p "$STATE_DIR/tansu"
  local install_log="$STATE_DIR/tansu/install.log"
  log "building the Kafka-protocol broker Tansu $TANSU_VERSION into $TOOLS_DIR (about 15 minutes, once; log: $install_log)"
  # --locked: without it a newer deadpool breaks the build. dynostore: the
  # broker refuses to start without a storage feature.
  env -u CARGO_TARGET_DIR cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
    --root "$TOOLS_DIR" >"$install_log" 2>&1 </dev/null \
    || { tail -n 20 "$install_log" >&2; die "building Tansu failed (log: $install_log)"; }
}

tansu_up() {
  local addr="$kafka_host:$kafka_port"
  if tansu_ready; then report kafka "$addr" "ready (already running)"; return; fi
  tansu_install
  spawn tansu "$tansu_bin" broker \
    --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
    --storage-engine memory://tansu/
  wait_ready tansu 30 "$(log_file tansu)"
  report kafka "$addr" "ready (started Tansu, memory storage, log: $(log_file tansu))"
}

smtp_up() {
  local addr="$smtp_host:$smtp_port"
  if smtp_ready; then report smtp "$addr" "ready (already running)"; return; fi
  "$SYSTEM_PYTHON" -c 'import aiosmtpd' 2>/dev/null || apt_install python3-aiosmtpd
  spawn smtp "$SYSTEM_PYTHON" -u -m aiosmtpd -n -l "$addr"
  wait_ready smtp 15 "$(log_file smtp)"
  report smtp "$addr" "ready (started aiosmtpd, log: $(log_file smtp))"
}

up() {
  command -v curl >/dev/null || apt_install curl
  command -v pg_isready >/dev/null || apt_install postgresql-client
  # Not part of the stack: the test suite validates docker-compose.yml with it.
  command -v docker-compose >/dev/null || apt_install docker-compose
  postgres_up
  database_up
  clickhouse_up
  tansu_up
  smtp_up
}

stop() {
  local name=$1 pid
  if ! pid=$(owned_pid "$name"); then rm -f "$(pid_file "$name")"; return; fi
  if [[ $pid == cluster:* ]]; then
    pg_ctlcluster --skip-systemctl-redirect "${pid#cluster:}" main stop || die "could not stop Postgres"
  else
    kill "$pid"
    # shellcheck disable=SC2016 # $0 belongs to the inner shell
    wait_for 30 bash -c '! kill -0 "$0" 2>/dev/null' "$pid" || die "$name (pid $pid) did not stop within 30 s"
  fi
  rm -f "$(pid_file "$name")"
  echo "stopped $name"
}

status() {
  local name addr pid state
  for name in postgres clickhouse tansu smtp; do
    case $name in
      postgres) addr="$pg_host:$pg_port" ;;
      clickhouse) addr="$ch_host:$ch_port" ;;
      tansu) addr="$kafka_host:$kafka_port" ;;
      smtp) addr="$smtp_host:$smtp_port" ;;
    esac
    if ! "${name}_ready"; then state=down
    elif pid=$(owned_pid "$name"); then state="up (started by stack.sh: ${pid})"
    else state="up (not started by stack.sh)"
    fi
    report "${name/tansu/kafka}" "$addr" "$state"
  done
}

mkdir -p "$STATE_DIR"
# One `up`/`down` at a time: two concurrent starts would race for the ports
# and the pid files. (Started services must not inherit fd 9: they would
# hold the lock for as long as they run.)
exec 9>"$STATE_DIR/stack.lock"
case ${1:-} in
  up) flock -w 3600 9 || die "another stack.sh holds $STATE_DIR/stack.lock"; up ;;
  down) flock -w 600 9 || die "another stack.sh holds $STATE_DIR/stack.lock"; for s in smtp tansu clickhouse postgres; do stop "$s"; done ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
