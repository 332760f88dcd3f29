#!/usr/bin/env bash
# services.sh start|stop|status|env — a private PostgreSQL 15 cluster (with PostGIS) and a MinIO
# server for the demo and `make bench`, on fixed loopback ports, under $DHIS2_LIFE_RUN
# (default /var/tmp/dhis2-life-run). Idempotent: start when running is a no-op.
#   eval "$(scripts/services.sh env)"   exports DHIS2_LIFE_TEST_PG_* and DHIS2_LIFE_TEST_S3_*,
#                                       which internal/testenv then reuses instead of starting its own.
# Ports: DHIS2_LIFE_PG_PORT (25432), DHIS2_LIFE_S3_PORT (29000), DHIS2_LIFE_S3_CONSOLE_PORT (29001).
# Needs scripts/deps.sh to have run (PostgreSQL from Debian, minio in $DHIS2_LIFE_TOOLS/bin).
set -euo pipefail

RUN=${DHIS2_LIFE_RUN:-/var/tmp/dhis2-life-run}
PG_PORT=${DHIS2_LIFE_PG_PORT:-25432}
S3_PORT=${DHIS2_LIFE_S3_PORT:-29000}
S3_CONSOLE_PORT=${DHIS2_LIFE_S3_CONSOLE_PORT:-29001}
PGBIN=${DHIS2_LIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
TOOLS=${DHIS2_LIFE_TOOLS:-/var/tmp/dhis2-life-tools}
MINIO=$TOOLS/bin/minio
PGDATA=$RUN/pg/data
SOCK=$RUN/pg
SECRETS=$RUN/secrets.env
APP_USER=dhis

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# as_pg runs a PostgreSQL program as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

secrets() {
  mkdir -p "$RUN"
  chmod 755 "$RUN"  # postgres must reach $RUN/pg when we run as root
  if [ ! -s "$SECRETS" ]; then
    local old_umask; old_umask=$(umask); umask 077
    {
      echo "MINIO_ROOT_USER=dhis2life-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "MINIO_ROOT_PASSWORD=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "PG_APP_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    } > "$SECRETS.tmp"
    mv "$SECRETS.tmp" "$SECRETS"
    umask "$old_umask"
  fi
  chmod 600 "$SECRETS"
  # shellcheck disable=SC1090
  . "$SECRETS"
}

pg_running() { [ -f "$PGDATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
# s3_ready: GET /minio/health/ready answers 200 (bash /dev/tcp: curl may not be installed).
s3_ready() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /minio/health/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    IFS= read -r status <&3; [[ $status == *" 200 "* ]]' _ "$S3_PORT" 2>/dev/null
}
s3_pid() { [ -f "$RUN/minio/minio.pid" ] && kill -0 "$(cat "$RUN/minio/minio.pid")" 2>/dev/null && cat "$RUN/minio/minio.pid"; }

start_pg() {
  [ -x "$PGBIN/postgres" ] || die "PostgreSQL 15 missing in $PGBIN; run scripts/deps.sh"
  if pg_running; then log "postgres already running on 127.0.0.1:$PG_PORT"; return; fi
  mkdir -p "$SOCK"
  [ "$(id -u)" = 0 ] && chown postgres: "$SOCK"
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    rm -rf "$PGDATA"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync -E UTF8 --no-locale >"$SOCK/initdb.log" 2>&1 \
      || { cat "$SOCK/initdb.log" >&2; die "initdb failed"; }
    as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<HBA
# written by scripts/services.sh
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
HBA
    local fresh=1
  fi
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$SOCK/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { tail -20 "$SOCK/postgres.log" >&2; die "postgres did not start (port $PG_PORT busy?)"; }
  local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
  # Create or reset the app role (also when the secrets file was regenerated).
  "${psql[@]}" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_USER') THEN
    CREATE ROLE $APP_USER LOGIN CREATEDB;
  END IF;
END \$\$;
ALTER ROLE $APP_USER PASSWORD '$PG_APP_PASSWORD';
SQL
  if [ -n "${fresh:-}" ]; then
    "${psql[@]}" -c "CREATE DATABASE services_ext_check" \
      -c "\\c services_ext_check" -c "CREATE EXTENSION postgis" -c "CREATE EXTENSION pg_trgm" -c "CREATE EXTENSION btree_gin" \
      -c "\\c postgres" -c "DROP DATABASE services_ext_check" \
      || die "PostGIS/pg_trgm/btree_gin unavailable; run scripts/deps.sh"
  fi
  log "postgres $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data $PGDATA)"
}

start_s3() {
  [ -x "$MINIO" ] || die "minio missing at $MINIO; run scripts/deps.sh"
  if s3_pid >/dev/null && s3_ready; then log "minio already running on 127.0.0.1:$S3_PORT"; return; fi
  mkdir -p "$RUN/minio/data"
  MINIO_ROOT_USER=$MINIO_ROOT_USER MINIO_ROOT_PASSWORD=$MINIO_ROOT_PASSWORD MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=on \
    HOME="$RUN/minio" setsid "$MINIO" server "$RUN/minio/data" --quiet \
      --address "127.0.0.1:$S3_PORT" --console-address "127.0.0.1:$S3_CONSOLE_PORT" \
      --certs-dir "$RUN/minio/certs" </dev/null >>"$RUN/minio/minio.log" 2>&1 &
  echo $! > "$RUN/minio/minio.pid"
  for _ in $(seq 1 200); do
    if s3_ready; then log "minio on 127.0.0.1:$S3_PORT (data $RUN/minio/data)"; return; fi
    kill -0 "$(cat "$RUN/minio/minio.pid")" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$RUN/minio/minio.log" >&2
  die "minio did not become ready on 127.0.0.1:$S3_PORT"
}

stop_all() {
  if pg_running; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null && log "postgres stopped"
  fi
  local pid
  if pid=$(s3_pid); then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$RUN/minio/minio.pid"
    log "minio stopped"
  fi
}

print_env() {
  secrets
  cat <<ENV
export DHIS2_LIFE_TEST_PG_HOST=127.0.0.1
export DHIS2_LIFE_TEST_PG_PORT=$PG_PORT
export DHIS2_LIFE_TEST_PG_SOCKET_DIR=$SOCK
export DHIS2_LIFE_TEST_PG_ADMIN_DSN='postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable'
export DHIS2_LIFE_TEST_PG_APP_USER=$APP_USER
export DHIS2_LIFE_TEST_PG_APP_PASSWORD_FILE=$RUN/pg-app.pass
export DHIS2_LIFE_TEST_S3_ENDPOINT=127.0.0.1:$S3_PORT
export DHIS2_LIFE_TEST_S3_ACCESS_KEY=$MINIO_ROOT_USER
export DHIS2_LIFE_TEST_S3_SECRET_KEY=$MINIO_ROOT_PASSWORD
ENV
}

case "${1:-}" in
  start)
    secrets
    (umask 077; printf '%s\n' "$PG_APP_PASSWORD" > "$RUN/pg-app.pass")
    start_pg
    start_s3
    ;;
  stop) stop_all ;;
  status)
    rc=0
    if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; rc=3; fi
    if s3_pid >/dev/null && s3_ready; then echo "minio: running on 127.0.0.1:$S3_PORT"; else echo "minio: stopped"; rc=3; fi
    exit $rc
    ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
