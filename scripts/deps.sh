#!/usr/bin/env bash
# deps.sh installs what dhis2-life's tests and demo need, idempotently:
#   PostgreSQL 15 + PostGIS 3 (Debian), PostgreSQL 13 + PostGIS 3.1 (bullseye, upgrade tests), restic 0.19.1 and a MinIO server (built with go install),
#   nginx-light. Built tools are cached under $DHIS2_LIFE_TOOLS (default /var/tmp/dhis2-life-tools)
#   so a warm rerun takes seconds. Prints the tools directory's bin path on the last line.
set -euo pipefail

T=${DHIS2_LIFE_TOOLS:-/var/tmp/dhis2-life-tools}
RESTIC_VERSION=0.19.1
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
STATICCHECK_VERSION=0.8.2
mkdir -p "$T/bin"

log() { printf 'deps: %s\n' "$*" >&2; }

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

# gotools builds restic, MinIO and staticcheck when missing. It runs in the background while
# apt-get installs packages (network and dpkg bound; the builds are CPU bound): on a fresh
# machine the two overlap instead of adding up.
gotools() {
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
}
gotools &
gotools_pid=$!

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || need_apt+=(postgresql-15-postgis-3)
[ -f /usr/share/postgresql/15/extension/pg_trgm.control ] || need_apt+=(postgresql-contrib)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# DHIS2_LIFE_DEPS=demo (make demo, make bench) installs only what the demo and the benchmark
# run; the default (make test) adds what only the tests need: packaging tools and PostgreSQL 13.
tests=true
[ "${DHIS2_LIFE_DEPS:-test}" = demo ] && tests=false
if $tests; then
  # Packaging tests (issue 15): systemd-analyze verify, a bubblewrap sandbox, lintian, man.
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
  command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
  command -v lintian >/dev/null 2>&1 || need_apt+=(lintian)
  command -v man >/dev/null 2>&1 || need_apt+=(man-db)
fi
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

# PostgreSQL 13 + PostGIS 3.1 from Debian bullseye, beside 15, for the 13 -> 15 upgrade tests.
# The suites are added on the mirror this machine already uses (read from its sources, never a
# hard-coded host); bookworm's newer versions still win for every other package.
if $tests && { ! [ -x /usr/lib/postgresql/13/bin/pg_ctl ] || ! [ -f /usr/share/postgresql/13/extension/postgis.control ]; }; then
  if [ "$(id -u)" != 0 ]; then
    log "missing PostgreSQL 13 (upgrade tests); run as root or add bullseye and: sudo apt-get install -y postgresql-13 postgresql-13-postgis-3"
    exit 1
  fi
  src=/etc/apt/sources.list.d/dhis2-life-bullseye.sources
  if ! [ -f "$src" ]; then
    main_uri="" sec_uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
      [ "$f" = "$src" ] && continue
      while read -r key val _; do
        [ "$key" = "URIs:" ] || continue
        case "$val" in
          *debian-security*) [ -n "$sec_uri" ] || sec_uri=$val ;;
          *) [ -n "$main_uri" ] || main_uri=$val ;;
        esac
      done < "$f"
    done
    if [ -z "$main_uri" ] && [ -f /etc/apt/sources.list ]; then
      main_uri=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
      sec_uri=$(awk '$1=="deb" && $2 ~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$main_uri" ] || { log "no Debian mirror found in /etc/apt/sources.list.d/*.sources; add a bullseye suite by hand"; exit 1; }
    {
      printf 'Types: deb\nURIs: %s\nSuites: bullseye bullseye-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$main_uri"
      if [ -n "$sec_uri" ]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: bullseye-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$sec_uri"
      fi
    } > "$src"
  fi
  log "installing postgresql-13 postgresql-13-postgis-3 from bullseye (apt-get, ~25 s)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends postgresql-13 postgresql-13-postgis-3 >/dev/null
fi

wait "$gotools_pid" || { log "building the Go tools failed (see above)"; exit 1; }
log "ok: restic $("$T/bin/restic" version | awk '{print $2}'), minio, postgres $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')"
echo "$T/bin"
