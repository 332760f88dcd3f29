#!/usr/bin/env bash
# demo.sh — `make demo`: on a fresh machine, start a private MinIO + PostgreSQL 15 (PostGIS),
# build a sample DHIS2-shaped database and DHIS2_HOME, then run
#   config check → init → snapshot → snapshots → verify → restore → clone → clones → status
# with dhis2-life, printing each command and what it did. Everything lives under
# $DEMO_DIR (default /var/tmp/dhis2-life-demo); rerunning starts the demo afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO_DIR=${DEMO_DIR:-/var/tmp/dhis2-life-demo}
SCALE=${DEMO_SCALE:-0.01}
BIN=$ROOT/bin/dhis2-life
TOOLS=${DHIS2_LIFE_TOOLS:-/var/tmp/dhis2-life-tools}
PGBIN=${DHIS2_LIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
export PATH=$TOOLS/bin:/usr/local/go/bin:$PATH

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/dhis2-life
step "starting a private PostgreSQL 15 + PostGIS and MinIO (scripts/services.sh)"
scripts/services.sh start
eval "$(scripts/services.sh env)"

step "building a sample DHIS2 2.42-shaped database (scale $SCALE) and DHIS2_HOME"
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
chmod 700 "$DEMO_DIR"
ADMIN="$DHIS2_LIFE_TEST_PG_ADMIN_DSN"
"$PGBIN/psql" -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS dhis2_demo WITH (FORCE)" \
  -c "DROP DATABASE IF EXISTS dhis2_demo_restored WITH (FORCE)" -c "DROP DATABASE IF EXISTS dhis2_demo_staging WITH (FORCE)"
go run ./testdata/fixture/cmd/dhis2-fixture -admin "$ADMIN" -db dhis2_demo -generation 2.42 \
  -scale "$SCALE" -home "$DEMO_DIR/dhis2-home" -owner "$DHIS2_LIFE_TEST_PG_APP_USER"

# Secrets live in 0600 files, never in the config or on command lines.
head -c 24 /dev/urandom | base64 > "$DEMO_DIR/repository.pass"
printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$DHIS2_LIFE_TEST_S3_ACCESS_KEY" "$DHIS2_LIFE_TEST_S3_SECRET_KEY" > "$DEMO_DIR/s3.env"
cp "$DHIS2_LIFE_TEST_PG_APP_PASSWORD_FILE" "$DEMO_DIR/db.pass"
chmod 600 "$DEMO_DIR"/repository.pass "$DEMO_DIR"/s3.env "$DEMO_DIR"/db.pass
BUCKET=demo-$(date +%s)
PORT=$DHIS2_LIFE_TEST_PG_PORT
APPUSER=$DHIS2_LIFE_TEST_PG_APP_USER
# Tools are named by full path, so every command works from any shell, not only this script's PATH.
cat > "$DEMO_DIR/dhis2-life.toml" <<TOML
# Demo configuration written by scripts/demo.sh
state_dir = "$DEMO_DIR/state"

[repository]
url = "s3:http://$DHIS2_LIFE_TEST_S3_ENDPOINT/$BUCKET/hmis"
password_file = "$DEMO_DIR/repository.pass"
env_file = "$DEMO_DIR/s3.env"
restic = "$TOOLS/bin/restic"

[instances.hmis]
database = "postgres://$APPUSER@127.0.0.1:$PORT/dhis2_demo?sslmode=disable"
database_password_file = "$DEMO_DIR/db.pass"
admin_database = "$ADMIN"
dhis2_home = "$DEMO_DIR/dhis2-home"
pg_bin_dir = "$PGBIN"

# A staging copy, scrubbed so it cannot email, SMS or sync.
[targets.staging]
instance = "hmis"
database = "postgres://$APPUSER@127.0.0.1:$PORT/dhis2_demo_staging?sslmode=disable"
database_password_file = "$DEMO_DIR/db.pass"
dhis2_home = "$DEMO_DIR/staging-home"
profile = "staging"
TOML
export DHIS2_LIFE_CONFIG=$DEMO_DIR/dhis2-life.toml
echo "config: $DHIS2_LIFE_CONFIG"

step "checking the configuration"
run "$BIN" config check
step "creating the repository"
run "$BIN" init
step "taking a snapshot set"
run "$BIN" snapshot
step "taking a second one from a bare shell (unchanged data: restic deduplicates it)"
# PATH without the tools directory, as a newcomer's shell has it: the config names the tools.
run env -i HOME="$HOME" PATH=/usr/bin:/bin DHIS2_LIFE_CONFIG="$DHIS2_LIFE_CONFIG" "$BIN" snapshot
step "listing snapshot sets"
run "$BIN" snapshots
step "restore drill of the newest set"
run "$BIN" verify latest
step "restoring the newest set into a new database and directory"
run "$BIN" restore latest --to-db "postgres://$APPUSER@127.0.0.1:$PORT/dhis2_demo_restored?sslmode=disable" \
  --to-db-password-file "$DEMO_DIR/db.pass" --files-to "$DEMO_DIR/restored-home"
step "cloning the newest set to staging (restored, scrubbed, proved, swapped in)"
run "$BIN" clone --to staging
step "listing clones"
run "$BIN" clones
step "status: last snapshot and drill, next runs"
run "$BIN" status

ID=$("$BIN" snapshots --json | grep -o '^    "id": "[^"]*"' | tail -n 1 | cut -d'"' -f4)
printf '\n\033[1mdemo done:\033[0m snapshot set %s is verified (restore drill passed) and restored into database dhis2_demo_restored and %s/restored-home;\nstaging (dhis2_demo_staging) is a scrubbed clone of it.\n' "$ID" "$DEMO_DIR"
printf 'Try: export DHIS2_LIFE_CONFIG=%s; %s snapshot; %s snapshots --json; %s --help\n' "$DHIS2_LIFE_CONFIG" "$BIN" "$BIN" "$BIN"
