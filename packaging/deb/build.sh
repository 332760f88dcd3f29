#!/usr/bin/env bash
# build.sh builds dhis2-life_VERSION_ARCH.deb with Go and Debian's own tools only
# (dpkg-deb --root-owner-group, gzip): binary, generic systemd unit, example config
# (conffile), man pages, bash/zsh completion, Grafana dashboard and alert rules.
#   packaging/deb/build.sh [OUTDIR]     (make deb; VERSION=... overrides the version)
# Prints the path of the .deb on the last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/bin}
GO=${GO:-go}
arch=$("$GO" env GOARCH)
case "$arch" in
  amd64|arm64|riscv64|ppc64le|s390x) debarch=$arch ;;
  arm) debarch=armhf ;;
  386) debarch=i386 ;;
  *) echo "build.sh: no Debian architecture for GOARCH=$arch" >&2; exit 2 ;;
esac
if [ -z "${VERSION:-}" ]; then
  # A Debian version must start with a digit: 0~gitYYYYMMDD.HASH sorts before any release.
  if rev=$(git -C "$root" rev-parse --short=10 HEAD 2>/dev/null); then
    date=$(TZ=UTC git -C "$root" log -1 --format=%cd --date=format-local:%Y%m%d HEAD)
    VERSION="0~git$date.$rev"
  else
    VERSION="0~dev"
  fi
fi
# Reproducible timestamps (man page dates, file times) from the last commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"
mkdir -p "$pkg/DEBIAN"

# Stripped, with the version --version prints. The build settings are the ones of `make build`
# and the tests (only the link differs), so Go's build cache serves the packages.
"$GO" build -C "$root" -ldflags "-s -w -X main.version=$VERSION" -o "$pkg/usr/bin/dhis2-life" ./cmd/dhis2-life
depends="adduser"
if ldd "$pkg/usr/bin/dhis2-life" >/dev/null 2>&1; then
  depends="$depends, libc6"   # cgo: linked against the C library
fi
"$pkg/usr/bin/dhis2-life" gendoc --dir "$stage/doc" >/dev/null

install -d "$pkg/usr/share/man/man1"
for m in "$stage"/doc/man1/*.1; do
  gzip -9n -c "$m" > "$pkg/usr/share/man/man1/$(basename "$m").gz"
done
install -D -m 0644 "$stage/doc/bash-completion/dhis2-life" "$pkg/usr/share/bash-completion/completions/dhis2-life"
install -D -m 0644 "$stage/doc/zsh/_dhis2-life" "$pkg/usr/share/zsh/vendor-completions/_dhis2-life"
install -D -m 0644 "$root/scripts/systemd/dhis2-life.service" "$pkg/lib/systemd/system/dhis2-life.service"
sed -i 's|/usr/local/bin/dhis2-life|/usr/bin/dhis2-life|g; s|make install (puts this in $(PREFIX)/lib/systemd/system)|the dhis2-life package|' \
  "$pkg/lib/systemd/system/dhis2-life.service"
install -D -m 0640 /dev/null "$pkg/etc/dhis2-life/dhis2-life.toml"
"$pkg/usr/bin/dhis2-life" config example > "$pkg/etc/dhis2-life/dhis2-life.toml"
chmod 0750 "$pkg/etc/dhis2-life"
install -D -m 0644 "$root/scripts/grafana-dashboard.json" "$pkg/usr/share/dhis2-life/grafana-dashboard.json"
install -D -m 0644 "$root/scripts/prometheus-alerts.yml" "$pkg/usr/share/dhis2-life/prometheus-alerts.yml"
install -D -m 0644 "$here/copyright" "$pkg/usr/share/doc/dhis2-life/copyright"
install -D -m 0644 "$here/lintian-overrides" "$pkg/usr/share/lintian/overrides/dhis2-life"
{
  printf 'dhis2-life (%s) unstable; urgency=medium\n\n' "$VERSION"
  printf '  * Built from %s.\n\n' "$(git -C "$root" rev-parse HEAD 2>/dev/null || echo 'a source tree')"
  printf ' -- dhis2-life maintainers <dhis2-life@localhost.invalid>  %s\n' "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$pkg/usr/share/doc/dhis2-life/changelog.gz"

for f in postinst prerm postrm; do install -m 0755 "$here/$f" "$pkg/DEBIAN/$f"; done
install -m 0644 "$here/conffiles" "$pkg/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$debarch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" "$here/control.in" > "$pkg/DEBIAN/control"
(cd "$pkg" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb="$out/dhis2-life_${VERSION}_${debarch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
