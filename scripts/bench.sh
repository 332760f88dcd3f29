#!/usr/bin/env bash
# bench.sh — `make bench`: build a DHIS2-shaped database with the fixture generator in the private
# PostgreSQL + MinIO of scripts/services.sh, then measure dhis2-life against today's practice on
# the same machine in one run, and write bench/results/latest.json + latest.md (DESIGN.md
# contract) and print the table. Measures that cannot be taken (clone not built yet) are absent.
#
# Environment:
#   BENCH_SCALE=1.0     fixture scale (1.0 ≈ 2 GB on disk, ~40% analytics)
#   BENCH_DAYS=30       days of storage: one snapshot per day, DAYS-1 simulated days of changes
#   BENCH_REAL244=1     also measure on the real DHIS2 2.44 schema (testdata/dhis2-core-schema filled
#                       with the fixture's data): snapshot, restore, storage (0 skips it)
#   BENCH_SCALE244      its scale (default BENCH_SCALE); BENCH_DAYS244 its days (default BENCH_DAYS)
#   BENCH_SCALE4=4      scale of the growth run: snapshot, restore, storage, peak RSS (0 skips it)
#   BENCH_DAYS4=10      days of storage at scale 4 (the row states them; per-day rates project 30)
#   BENCH_SEED4=2       fixture seed of the scale-4 database (seed 1 hits a uid collision at scale 4)
#   BENCH_PROFILE=1     also time the snapshot's stages alone (producer, restic, pg_dump -Z0)
#   BENCH_ROUNDS=3      interleaved rounds of the noisiest pairs (restore vs pg_restore on the
#                       fixture and the real 2.44 schema, repeat vs first clone, PII vs kept
#                       clone): each side's time is the median of its rounds, every round is in
#                       the row's extra (1 in quick mode; the scale-4 run takes one)
#   BENCH_QUICK=1       harness check in ~2 min: scale 0.02, 3 days, 2.44 at 0.01 for 2 days,
#                       the growth run at 0.04 for 2 days, no profile
#   BENCH_DIR=/var/tmp/dhis2-life-bench   work directory (dumps, config, DHIS2_HOME, logs)
#   BENCH_OUT=bench/results               where latest.json and latest.md go
#   BENCH_PITR=1        point-in-time recovery measures (scripts/bench-pitr.sh; 0 skips them)
#   BENCH_ATTRIBUTION=1 attribute each day's new restic bytes to their source (tables, pg_dump
#                       header, trailer, files, manifest) into $BENCH_OUT/latest-attribution.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=${DHIS2_LIFE_TOOLS:-/var/tmp/dhis2-life-tools}/bin:/usr/local/go/bin:$PATH
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  SCALE=${BENCH_SCALE:-0.02}; DAYS=${BENCH_DAYS:-3}; SCALE4=${BENCH_SCALE4:-0.04}; DAYS4=${BENCH_DAYS4:-2}; PROFILE=${BENCH_PROFILE:-0}
  ROUNDS=${BENCH_ROUNDS:-1}
  SCALE244=${BENCH_SCALE244:-0.01}; DAYS244=${BENCH_DAYS244:-2}
else
  SCALE=${BENCH_SCALE:-1.0}; DAYS=${BENCH_DAYS:-30}; SCALE4=${BENCH_SCALE4:-4}; DAYS4=${BENCH_DAYS4:-10}; PROFILE=${BENCH_PROFILE:-1}
  ROUNDS=${BENCH_ROUNDS:-3}
  SCALE244=${BENCH_SCALE244:-$SCALE}; DAYS244=${BENCH_DAYS244:-$DAYS}
fi
REAL244=${BENCH_REAL244:-1}
SEED4=${BENCH_SEED4:-2}
DIR=${BENCH_DIR:-/var/tmp/dhis2-life-bench}
OUT=${BENCH_OUT:-$ROOT/bench/results}
BIN=$ROOT/bin/dhis2-life
T=$DIR/bin
M=$DIR/metrics.txt

BENCH_START=$(date +%s)
step() { printf '\n\033[1m== [%s s] %s\033[0m\n' "$(( $(date +%s) - BENCH_START ))" "$*" >&2; }
metric() { echo "$1 $2" >> "$M"; }
# timed NAME CMD…: run CMD under benchrun (wall time + peak RSS per program into $M).
timed() { local name=$1; shift; "$T/benchrun" -metrics "$M" -name "$name" -- "$@"; }
# settle: flush dirty pages left by the previous step so each timed step starts alike.
settle() { psql_admin -c CHECKPOINT >/dev/null; sync; sleep 1; }
wall() { awk -v k="$1.wall_s" '$1 == k { v = $2 } END { print v }' "$M"; }
# round NAME I: keep the wall time of round I of NAME (NAME.round_I_s).
round() { metric "$1.round_$2_s" "$(wall "$1")"; }
# medians NAME…: after the rounds, each NAME's wall time is the median of its rounds (the
# later line wins in the metrics file; its other metrics are those of the last round).
medians() {
  local n
  for n in "$@"; do
    metric "$n.wall_s" "$(awk -v p="$n.round_" 'index($1, p) == 1 { print $2 }' "$M" | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')"
  done
}
# restore_rounds PREFIX ROUNDS DUMP FILES_DIR OURS_DB BASE_DB: ROUNDS interleaved pairs of
# `dhis2-life restore latest` (the instance of $DHIS2_LIFE_CONFIG) into OURS_DB and createdb +
# pg_restore -j2 of DUMP into BASE_DB; each side's time is the median of its rounds.
restore_rounds() {
  local p=$1 rounds=$2 dump=$3 files=$4 ours=$5 base=$6 i
  for i in $(seq 1 "$rounds"); do
    step "dhis2-life restore latest into a fresh database${p:+ (${p%_})} (round $i of $rounds)"
    settle
    rm -rf "$files"
    timed "${p}restore" "$BIN" restore latest --to-db "$(dbdsn "$ours")" --to-db-password-file "$W/db.pass" --files-to "$files"
    round "${p}restore" "$i"
    step "baseline: createdb + pg_restore -j2 of the -Fc file into a fresh database${p:+ (${p%_})} (round $i of $rounds)"
    settle
    timed "${p}pg_restore" bash -c "set -e; '$PGBIN/createdb' -h 127.0.0.1 -p $PORT -U postgres -O $APPUSER $base
      PGPASSWORD= '$PGBIN/pg_restore' -h 127.0.0.1 -p $PORT -U postgres -j2 -d $base '$dump'"
    round "${p}pg_restore" "$i"
    drop_dbs "$ours" "$base"
  done
  medians "${p}restore" "${p}pg_restore"
}

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/dhis2-life
mkdir -p "$T"
for c in benchrun s3put s3du report chunkattr; do go build -o "$T/$c" "./bench/cmd/$c"; done

step "services: private PostgreSQL + MinIO (scripts/services.sh)"
scripts/services.sh start
eval "$(scripts/services.sh env)"
ADMIN=$DHIS2_LIFE_TEST_PG_ADMIN_DSN
PORT=$DHIS2_LIFE_TEST_PG_PORT
APPUSER=$DHIS2_LIFE_TEST_PG_APP_USER
S3=$DHIS2_LIFE_TEST_S3_ENDPOINT
export AWS_ACCESS_KEY_ID=$DHIS2_LIFE_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$DHIS2_LIFE_TEST_S3_SECRET_KEY
PGBIN=${DHIS2_LIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$ADMIN" "$@"; }
dbdsn() { echo "postgres://$APPUSER@127.0.0.1:$PORT/$1?sslmode=disable"; }
# Baselines connect like dhis2-life does: as the app role over TCP (restores as the superuser).
export PGPASSWORD; PGPASSWORD=$(cat "$DHIS2_LIFE_TEST_PG_APP_PASSWORD_FILE")
# The same regenerable-data exclusions as dhis2-life (DOMAIN.md), so the ratio measures the pipeline.
EXCL=(--exclude-table-data='public.analytics*' --exclude-table-data='public._*'
      --exclude-table-data='public.aggregated*' --exclude-table-data='public.completeness*')

RUNID=$(date +%s)
BUCKET=bench-$RUNID
SRC=bench_src
drop_dbs() { for d in "$@"; do psql_admin -c "DROP DATABASE IF EXISTS $d WITH (FORCE)"; done; }
drop_dbs $SRC bench_restored bench_pg_restore bench_clone bench_clone_train bench_s4 bench_s4_restored bench_s4_pg_restore \
  bench_r244 bench_r244_restored bench_r244_pg_restore
rm -rf "$DIR/work"; mkdir -p "$DIR/work"; chmod 700 "$DIR" "$DIR/work"
W=$DIR/work
: > "$M"
metric quick "$QUICK"; metric scale "$SCALE"; metric storage.scale "$SCALE"; metric storage.days "$DAYS"
metric version.dhis2-life "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
metric version.restic "$(restic version | awk '{print $2}')"
metric version.postgres "$(psql -X -At "$ADMIN" -c 'show server_version' | awk '{print $1}')"
metric version.pg_dump "$("$PGBIN/pg_dump" --version | awk '{print $3}')"
metric version.minio "$(minio --version 2>/dev/null | awk 'NR==1{print $3}')"

# write_config NAME DB HOME PREFIX: a config like scripts/demo.sh writes, one instance "hmis".
write_config() {
  local cfg=$W/$1.toml
  cat > "$cfg" <<TOML
# written by scripts/bench.sh
state_dir = "$W/state-$1"

[repository]
url = "s3:http://$S3/$BUCKET/$4"
password_file = "$W/repository.pass"
env_file = "$W/s3.env"

[instances.hmis]
database = "$(dbdsn "$2")"
database_password_file = "$W/db.pass"
admin_database = "$ADMIN"
dhis2_home = "$3"
TOML
  if [ -n "${CLONE:-}" ]; then
    cat >> "$cfg" <<TOML

[targets.staging]
instance = "hmis"
database = "$(dbdsn bench_clone)"
database_password_file = "$W/db.pass"
dhis2_home = "$W/clone-home"
profile = "staging"
template = true   # repeat clones of a set copy a scrubbed template database

# The same training clone twice: personal data kept, then pseudonymised (issue 13's +20 %).
[targets.train_keep]
instance = "hmis"
database = "$(dbdsn bench_clone_train)"
database_password_file = "$W/db.pass"
dhis2_home = "$W/train-home"
profile = "training"
pii = "keep"

[targets.training]
instance = "hmis"
database = "$(dbdsn bench_clone_train)"
database_password_file = "$W/db.pass"
dhis2_home = "$W/train-home"
profile = "training"
pii = "pseudonymise"
TOML
  fi
  echo "$cfg"
}
head -c 24 /dev/urandom | base64 > "$W/repository.pass"
printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$W/s3.env"
cp "$DHIS2_LIFE_TEST_PG_APP_PASSWORD_FILE" "$W/db.pass"
chmod 600 "$W"/repository.pass "$W"/s3.env "$W"/db.pass
CLONE=
if "$BIN" clone --help >/dev/null 2>&1; then CLONE=1; fi

step "fixture: DHIS2 2.42-shaped database, scale $SCALE"
go build -o "$T/dhis2-fixture" ./testdata/fixture/cmd/dhis2-fixture
fixture() { "$T/dhis2-fixture" -admin "$ADMIN" -generation 2.42 -owner "$APPUSER" "$@"; }
fixture -db $SRC -scale "$SCALE" -home "$W/home"
psql_admin -d $SRC -c "CHECKPOINT" -c "VACUUM ANALYZE" >/dev/null 2>&1 || psql_admin -c CHECKPOINT
metric db_bytes "$(psql -X -At "$ADMIN" -c "select pg_database_size('$SRC')")"

export DHIS2_LIFE_CONFIG; DHIS2_LIFE_CONFIG=$(write_config main $SRC "$W/home" hmis)
"$BIN" init

step "baseline: pg_dump -Fc with the same exclusions (local file)"
settle
timed pgdump_fc "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U "$APPUSER" -Fc "${EXCL[@]}" -f "$W/full.dump" $SRC
metric storage.fc_bytes "$(stat -c %s "$W/full.dump")"

step "dhis2-life snapshot (first set, empty repository)"
settle
timed snapshot "$BIN" snapshot --json > "$W/snapshot.json"
cat "$W/snapshot.json"
read -r first_bytes _ < <("$T/s3du" -endpoint "$S3" -bucket "$BUCKET" -prefix hmis/)
metric storage.first_bytes "$first_bytes"

step "baseline: today's practice, pg_dump -O -Fp | gzip, then S3 PUT to the same MinIO"
settle
timed dst_dump bash -c "set -o pipefail; '$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $APPUSER -O -Fp ${EXCL[*]} $SRC | gzip > '$W/full.sql.gz'"
timed dst_upload "$T/s3put" -endpoint "$S3" -bucket "$BUCKET" -key "pgbackups/$SRC.sql.gz" "$W/full.sql.gz"
metric dst.wall_s "$(awk -v a="$(wall dst_dump)" -v b="$(wall dst_upload)" 'BEGIN { print a + b }')"
metric storage.gz_bytes "$(stat -c %s "$W/full.sql.gz")"

restore_rounds "" "$ROUNDS" "$W/full.dump" "$W/restored-home" bench_restored bench_pg_restore

step "dhis2-life verify latest (restore drill)"
settle
timed verify "$BIN" verify latest --json > "$W/verify.json" || { cat "$W/verify.json"; exit 1; }
grep -q '"ok": true' "$W/verify.json" || { echo "verify did not report ok" >&2; cat "$W/verify.json"; exit 1; }
metric verify.restore_s "$(sed -n 's/^  "restore_seconds": \([0-9.]*\),*$/\1/p' "$W/verify.json")"

if [ -n "$CLONE" ]; then
  for i in $(seq 1 "$ROUNDS"); do
    step "dhis2-life clone: first and repeat clone of the same set (round $i of $ROUNDS)"
    settle
    # The repeat is timed after a settle like every other step: a repeat clone runs on another
    # day, not while the server still flushes the first clone's writes.
    clone_ok=1
    if timed clone_first "$BIN" clone --to staging --from latest && settle && timed clone_repeat "$BIN" clone --to staging --from latest; then
      round clone_first "$i"; round clone_repeat "$i"
    else
      echo "clone failed: repeat_clone_vs_first left out" >&2
      sed -i '/^clone_/d' "$M"
      clone_ok=0
    fi
    "$BIN" clone destroy staging --yes >/dev/null || true
    drop_dbs bench_clone
    [ "$clone_ok" = 1 ] || break
  done
  if grep -q '^clone_first\.round_' "$M"; then medians clone_first clone_repeat; fi

  pii_ok=1
  for i in $(seq 1 "$ROUNDS"); do
    step "dhis2-life clone: training clone with personal data kept, then pseudonymised (and scanned) (round $i of $ROUNDS)"
    for t in train_keep training; do
      settle
      if ! timed "clone_$t" "$BIN" --log-level debug clone --to "$t" --from latest --json > "$W/clone-$t.json" 2> "$W/clone-$t.log"; then
        echo "clone --to $t failed: clone_pii_vs_keep left out" >&2
        cat "$W/clone-$t.json" >&2 || true; tail -20 "$W/clone-$t.log" >&2 || true
        sed -i '/^clone_train_keep\./d; /^clone_training\./d' "$M"
        pii_ok=0
        break
      fi
      round "clone_$t" "$i"
      "$BIN" clone destroy "$t" --yes >/dev/null || true
      drop_dbs bench_clone_train
    done
    [ "$pii_ok" = 1 ] || break
  done
  if [ "$pii_ok" = 1 ]; then medians clone_train_keep clone_training; fi
  if [ -s "$W/clone-training.json" ]; then
    for k in restore_seconds scrub_seconds pii_seconds; do
      v=$(sed -n "s/^  \"$k\": \([0-9.]*\),*$/\1/p" "$W/clone-training.json" | head -1)
      if [ -n "$v" ]; then metric "clone_training.$k" "$v"; fi
    done
    v=$(awk '/"pii_scan"/ { s = 1 } s && /"seconds":/ { gsub(/[^0-9.]/, "", $2); print $2; exit }' "$W/clone-training.json")
    if [ -n "$v" ]; then metric clone_training.scan_seconds "$v"; fi
  fi
fi

if [ "$PROFILE" = 1 ]; then
  # Where does the snapshot's time go? Each stage alone, same database, same machine.
  step "profile: the snapshot's stages alone"
  settle
  timed prof_producer bash -c "'$BIN' --log-level warn internal dump-stream --instance hmis > '$W/prof.stream'"
  metric prof.stream_bytes "$(stat -c %s "$W/prof.stream")"
  RESTIC_PASSWORD_FILE=$W/repository.pass restic -q -r "s3:http://$S3/$BUCKET/prof" init >/dev/null
  settle
  timed prof_restic env RESTIC_PASSWORD_FILE="$W/repository.pass" restic -q -r "s3:http://$S3/$BUCKET/prof" backup \
    --stdin-from-command --stdin-filename dhis2-db.stream -- cat "$W/prof.stream"
  settle
  timed prof_pgdump_z0 "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U "$APPUSER" -Fc -Z0 "${EXCL[@]}" -f "$W/prof.dump" $SRC
  rm -f "$W/prof.stream" "$W/prof.dump"
fi

step "storage: $DAYS daily snapshots ($((DAYS - 1)) simulated days of changes)"
for d in $(seq 1 $((DAYS - 1))); do
  fixture -db $SRC -home "$W/home" -simulate-day "$d"
  timed "day$d" "$BIN" snapshot --json > /dev/null
done
read -r bucket_bytes objects < <("$T/s3du" -endpoint "$S3" -bucket "$BUCKET" -prefix hmis/)
metric storage.bucket_bytes "$bucket_bytes"; metric storage.objects "$objects"; metric storage.snapshots "$DAYS"
metric storage.restic_raw_bytes "$(RESTIC_PASSWORD_FILE=$W/repository.pass restic -r "s3:http://$S3/$BUCKET/hmis" stats --mode raw-data --json 2>/dev/null | sed -n 's/.*"total_size":\([0-9]*\).*/\1/p')"
if [ "${BENCH_ATTRIBUTION:-1}" = 1 ]; then
  step "storage attribution: the sources of each day's new restic bytes (bench/cmd/chunkattr)"
  mkdir -p "$OUT"
  RESTIC_REPOSITORY="s3:http://$S3/$BUCKET/hmis" RESTIC_PASSWORD_FILE=$W/repository.pass "$T/chunkattr" -top 8 > "$OUT/latest-attribution.md" \
    && tail -n 25 "$OUT/latest-attribution.md" || echo "chunkattr failed: no storage attribution this run" >&2
fi
drop_dbs $SRC
rm -f "$W/full.dump" "$W/full.sql.gz"

# measure_set P GEN SCALE SEED DAYS: the snapshot, restore and storage measures of one more
# database (the real 2.44 schema; the growth run at scale 4) with metric names prefixed P:
# fixture, pg_dump -Fc, snapshot, restore, pg_restore -j2, then DAYS-1 simulated days with a
# snapshot each. The same baselines, exclusions and order as the scale-1 fixture above.
measure_set() {
  local p=$1 gen=$2 scale=$3 seed=$4 days=$5 db=bench_${1%_} home=$W/home-${1%_} cfg d
  local fx=("$T/dhis2-fixture" -admin "$ADMIN" -generation "$gen" -owner "$APPUSER" -seed "$seed")
  metric "${p}scale" "$scale"; metric "${p}generation" "$gen"
  if ! "${fx[@]}" -db "$db" -scale "$scale" -home "$home"; then
    echo "fixture $gen at scale $scale (seed $seed) failed: the ${p%_} rows are left out" >&2
    metric "note.${p%_}" "the DHIS2 $gen fixture at scale $scale (seed $seed) failed to build, so the ${p%_} rows are absent"
    drop_dbs "$db"; return 0
  fi
  psql_admin -d "$db" -c "CHECKPOINT" -c "VACUUM ANALYZE" >/dev/null 2>&1 || psql_admin -c CHECKPOINT
  metric "${p}db_bytes" "$(psql -X -At "$ADMIN" -c "select pg_database_size('$db')")"
  cfg=$(write_config "${p%_}" "$db" "$home" "${p%_}")
  DHIS2_LIFE_CONFIG=$cfg "$BIN" init
  settle
  timed "${p}pgdump_fc" "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U "$APPUSER" -Fc "${EXCL[@]}" -f "$W/${p}full.dump" "$db"
  metric "${p}storage.fc_bytes" "$(stat -c %s "$W/${p}full.dump")"
  settle
  DHIS2_LIFE_CONFIG=$cfg timed "${p}snapshot" "$BIN" snapshot --json > "$W/${p}snapshot.json"
  read -r first_bytes _ < <("$T/s3du" -endpoint "$S3" -bucket "$BUCKET" -prefix "${p%_}/")
  metric "${p}storage.first_bytes" "$first_bytes"
  local rounds=$ROUNDS
  if [ "$p" = s4_ ]; then rounds=1; fi
  DHIS2_LIFE_CONFIG=$cfg restore_rounds "$p" "$rounds" "$W/${p}full.dump" "$W/restored-${p%_}" "${db}_restored" "${db}_pg_restore"
  rm -rf "$W/restored-${p%_}" "$W/${p}full.dump"
  for d in $(seq 1 $((days - 1))); do
    "${fx[@]}" -db "$db" -home "$home" -simulate-day "$d"
    DHIS2_LIFE_CONFIG=$cfg timed "${p}day$d" "$BIN" snapshot --json > /dev/null
  done
  read -r bucket_bytes objects < <("$T/s3du" -endpoint "$S3" -bucket "$BUCKET" -prefix "${p%_}/")
  metric "${p}storage.bucket_bytes" "$bucket_bytes"; metric "${p}storage.objects" "$objects"
  metric "${p}storage.snapshots" "$days"; metric "${p}storage.days" "$days"
  drop_dbs "$db"
}

if [ "$REAL244" != 0 ]; then
  step "real DHIS2 2.44 schema (testdata/dhis2-core-schema) with the fixture's data, scale $SCALE244: snapshot, restore, $DAYS244 days of storage"
  measure_set r244_ 2.44 "$SCALE244" 1 "$DAYS244"
fi

if [ "$SCALE4" != 0 ]; then
  step "growth at scale $SCALE4: snapshot, restore, $DAYS4 days of storage, peak RSS"
  metric scale4 "$SCALE4"
  measure_set s4_ 2.42 "$SCALE4" "$SEED4" "$DAYS4"
fi

if [ "${BENCH_PITR:-1}" = 1 ]; then
  . scripts/bench-pitr.sh
fi

step "results"
metric bench.total_s "$(( $(date +%s) - BENCH_START ))"
"$T/report" -metrics "$M" -out "$OUT"
cp "$M" "$OUT/latest-metrics.txt"
echo "wrote $OUT/latest.json, latest.md and latest-metrics.txt (every raw number of this run)"
