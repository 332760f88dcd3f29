#!/usr/bin/env bash
# deps.sh installs what dhis2-life's tests and demo need, idempotently:
#   PostgreSQL 15 + PostGIS 3 (Debian), restic 0.19.1 and a MinIO server (built with go install),
#   nginx-light. Built tools are cached under $DHIS2_LIFE_TOOLS (default /var/tmp/dhis2-life-tools)
#   so a warm rerun takes seconds. Prints the tools directory's bin path on the last line.
set -euo pipefail

T=${DHIS2_LIFE_TOOLS:-/var/tmp/dhis2-life-tools}
RESTIC_VERSION=0.19.1
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
STATICCHECK_VERSION=0.8.2
mkdir -p "$T/bin"

log() { printf 'deps: %s\n' "$*" >&2; }

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || need_apt+=(postgresql-15-postgis-3)
[ -f /usr/share/postgresql/15/extension/pg_trgm.control ] || need_apt+=(postgresql-contrib)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# Packaging tests (issue 15): systemd-analyze verify, a bubblewrap sandbox, lintian, man.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v lintian >/dev/null 2>&1 || need_apt+=(lintian)
command -v man >/dev/null 2>&1 || need_apt+=(man-db)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${need_apt[*]}; run as root or: sudo apt-get install -y ${need_apt[*]}"
    exit 1
  fi
  log "installing ${need_apt[*]} (apt-get, ~30 s)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian's postgresql package starts a system cluster; we never use it. Leave it alone.

command -v go >/dev/null 2>&1 || { log "go not in PATH (expected Go >= 1.26, e.g. /usr/local/go/bin)"; exit 1; }

# goinstall NAME PKG@VERSION builds one tool into $T/bin, quietly: go's download chatter goes to
# $T/logs/NAME.log, which is printed only when the build fails.
goinstall() {
  local name=$1 pkg=$2 logf="$T/logs/$1.log"
  mkdir -p "$T/logs"
  if ! GOBIN="$T/bin" GOFLAGS=-mod=mod go install "$pkg" >"$logf" 2>&1; then
    log "building $name failed ($pkg); go install said:"
    cat "$logf" >&2
    return 1
  fi
}

# Versions are captured first and matched in the shell: `cmd | grep -q` under pipefail fails with
# SIGPIPE (141) whenever grep exits before cmd has finished writing.
have_restic=$("$T/bin/restic" version 2>/dev/null || true)
if [[ "$have_restic" != *"restic $RESTIC_VERSION"* ]]; then
  log "building restic $RESTIC_VERSION (go install, ~75 s)"
  goinstall restic "github.com/restic/restic/cmd/restic@v$RESTIC_VERSION"
fi
if ! [ -x "$T/bin/minio" ] || ! [ -f "$T/minio.version" ] || [ "$(cat "$T/minio.version")" != "$MINIO_VERSION" ]; then
  log "building minio $MINIO_VERSION (go install, ~130 s; used only as an external test server)"
  goinstall minio "github.com/minio/minio@$MINIO_VERSION"
  echo "$MINIO_VERSION" > "$T/minio.version"
fi
# staticcheck: the proxy serves honnef.co/go/tools module versions (v0.8.2 = staticcheck 2026.2.2,
# which supports Go 1.26), not the 2025.x release names. Optional: `make lint` says when it is missing.
have_staticcheck=$("$T/bin/staticcheck" -version 2>/dev/null || true)
if [[ "$have_staticcheck" != *"($STATICCHECK_VERSION)"* ]]; then
  log "building staticcheck $STATICCHECK_VERSION (go install, ~15 s)"
  goinstall staticcheck "honnef.co/go/tools/cmd/staticcheck@v$STATICCHECK_VERSION" \
    || { rm -f "$T/bin/staticcheck"; log "staticcheck unavailable (make lint will say so)"; }
fi
log "ok: restic $("$T/bin/restic" version | awk '{print $2}'), minio, postgres $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')"
echo "$T/bin"
