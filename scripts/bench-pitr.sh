# bench-pitr.sh — sourced by scripts/bench.sh: point-in-time recovery measures on a cluster of
# their own (archive_mode needs a restart; archive_command runs as the postgres OS user):
#   base_backup_vs_pg_basebackup  dhis2-life base-backup vs pg_basebackup -Ft to a local file
#   data_at_risk_s                seconds of committed writes lost when the primary dies under a
#                                 steady write load (10 rows/s), with WAL archiving at archive_timeout
# Environment: BENCH_PITR_SCALE (default: the bench scale; quick 0.005), BENCH_PITR_TIMEOUT (archive_timeout
# in seconds; 60, quick 5), BENCH_PITR_LOAD_S (seconds of load before the kill; 150, quick 8),
# BENCH_PITR_DIR (/var/tmp/dhis2-life-bench-pitr), BENCH_PITR_PORT (25441).
if [ "$QUICK" = 1 ]; then PSCALE=${BENCH_PITR_SCALE:-0.005}; else PSCALE=${BENCH_PITR_SCALE:-$SCALE}; fi
if [ "$QUICK" = 1 ]; then PTIMEOUT=${BENCH_PITR_TIMEOUT:-5}; PLOAD=${BENCH_PITR_LOAD_S:-8}
else PTIMEOUT=${BENCH_PITR_TIMEOUT:-60}; PLOAD=${BENCH_PITR_LOAD_S:-150}; fi
PD=${BENCH_PITR_DIR:-/var/tmp/dhis2-life-bench-pitr}
PPORT=${BENCH_PITR_PORT:-25441}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pitr_stop() {
  local d
  for d in "$PD/data" "$PD/restored"; do
    if [ -f "$d/postmaster.pid" ]; then as_postgres "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true; fi
  done
}
pitr_stop; rm -rf "$PD"; mkdir -p "$PD"
if [ "$(id -u)" = 0 ]; then chown postgres: "$PD"; fi
chmod 700 "$PD"
PADMIN="postgres://postgres@127.0.0.1:$PPORT/postgres?sslmode=disable"
ppsql() { psql -X -q -v ON_ERROR_STOP=1 "$PADMIN" "$@"; }

step "PITR: own cluster on port $PPORT (archive_timeout ${PTIMEOUT}s), fixture scale $PSCALE"
as_postgres "$PGBIN/initdb" -D "$PD/data" -U postgres -A trust --no-sync -E UTF8 --no-locale >"$PD/initdb.log" 2>&1 \
  || { cat "$PD/initdb.log" >&2; exit 1; }
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n' \
  | as_postgres tee "$PD/data/pg_hba.conf" >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$PD/data" -l "$PD/postgres.log" -w -t 60 \
  -o "-p $PPORT -k $PD -c listen_addresses=127.0.0.1" start >/dev/null
fixture_pitr() { "$T/dhis2-fixture" -admin "$PADMIN" -generation 2.42 -owner postgres "$@"; }
fixture_pitr -db bench_pitr -scale "$PSCALE" -home "$PD/home"
# archive_command runs as postgres: the binary, config and secrets live in a directory it owns.
cp "$BIN" "$PD/dhis2-life"
cp "$W/repository.pass" "$W/s3.env" "$PD/"
cat > "$PD/dhis2-life.toml" <<TOML
# written by scripts/bench-pitr.sh
state_dir = "$PD/state"
[repository]
url = "s3:http://$S3/$BUCKET/pitr"
password_file = "$PD/repository.pass"
env_file = "$PD/s3.env"
[instances.hmis]
database = "postgres://postgres@127.0.0.1:$PPORT/bench_pitr?sslmode=disable"
admin_database = "$PADMIN"
dhis2_home = "$PD/home"
[instances.hmis.wal]
archive_timeout = "${PTIMEOUT}s"
wal_max_lag = "$((PTIMEOUT * 5))s"
binary = "$PD/dhis2-life"
drill_dir = "$PD"
TOML
chmod 600 "$PD/dhis2-life.toml" "$PD/repository.pass" "$PD/s3.env"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$PD/dhis2-life" "$PD/dhis2-life.toml" "$PD/repository.pass" "$PD/s3.env" "$PD/home"; fi
PBIN=("$PD/dhis2-life" --config "$PD/dhis2-life.toml")
"${PBIN[@]}" init
"${PBIN[@]}" wal setup --apply
as_postgres "$PGBIN/pg_ctl" -D "$PD/data" -l "$PD/postgres.log" -w -t 60 \
  -o "-p $PPORT -k $PD -c listen_addresses=127.0.0.1" restart >/dev/null
ppsql -c "SELECT pg_switch_wal()" >/dev/null
metric pitr.scale "$PSCALE"; metric pitr.archive_timeout_s "$PTIMEOUT"
metric pitr.db_bytes "$(psql -X -At "$PADMIN" -c "select pg_database_size('bench_pitr')")"

step "PITR: baseline pg_basebackup -Ft -X none to a local file"
ppsql -c CHECKPOINT; sync; sleep 1
timed pg_basebackup "$PGBIN/pg_basebackup" -d "$PADMIN" -D "$PD/pbb" -Ft -X none --no-manifest -c fast
metric pitr.basebackup_bytes "$(du -sb "$PD/pbb" | cut -f1)"
rm -rf "$PD/pbb"

step "PITR: dhis2-life base-backup (pg_basebackup streamed into restic on MinIO)"
ppsql -c CHECKPOINT; sync; sleep 1
timed base_backup "${PBIN[@]}" base-backup --json > "$PD/base.json"

step "PITR: data at risk: steady writes (10 rows/s) for ${PLOAD}s, then the primary dies"
go build -o "$T/pitrload" ./bench/cmd/pitrload
"$T/pitrload" -dsn "postgres://postgres@127.0.0.1:$PPORT/bench_pitr?sslmode=disable" -last "$PD/last" -for 24h &
LOADPID=$!
sleep "$PLOAD"
# The primary and its disk are gone: only what the bucket holds counts.
kill -9 "$(head -1 "$PD/data/postmaster.pid")"
wait "$LOADPID" || true
LAST=$(cat "$PD/last")
sleep 1
OUTR=$("${PBIN[@]}" restore --pitr "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --instance hmis --to-data-dir "$PD/restored" --port $((PPORT + 1)) --json 2>"$PD/restore.err") || true
REACHED=$(sed -n 's/.*the last reachable time is \([0-9-]* [0-9:.]*Z\).*/\1/p' "$PD/restore.err")
[ -n "$REACHED" ] || REACHED=$(printf '%s' "$OUTR" | sed -n 's/^  "reached": "\(.*\)",*$/\1/p')
if [ -n "$REACHED" ]; then
  LOST=$(python3 -c "import sys,datetime as d; p=lambda s: d.datetime.fromisoformat(s.replace('Z','+00:00').replace(' ','T')); print(round((p(sys.argv[1])-p(sys.argv[2])).total_seconds(),3))" "$LAST" "$REACHED")
  metric pitr.data_at_risk_s "$LOST"
  echo "last committed row $LAST, last recoverable commit $REACHED: $LOST s lost (archive_timeout ${PTIMEOUT}s)"
else
  echo "could not read the last reachable time: data_at_risk_s left out" >&2
  cat "$PD/restore.err" >&2
fi
pitr_stop
rm -rf "$PD/data" "$PD/restored"
