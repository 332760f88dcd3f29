#!/usr/bin/env bash
# gotest.sh PKG… — `make test`'s go test. The integration tests of cmd/dhis2-life are most of
# the run and keep about one core of two busy (they wait on PostgreSQL, restic and MinIO), so
# they run as two test processes beside the other packages' — each process starts its own
# PostgreSQL and MinIO (internal/testenv), so they share nothing. Shard B names every second
# test of the package; shard A runs the package skipping exactly those, so no test can fall
# between the two. TEST_FLAGS as in the Makefile.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
read -r -a flags <<< "${TEST_FLAGS:--count=1 -timeout 45m}"
cmdpkg=github.com/dhis2-life/dhis2-life/cmd/dhis2-life

mapfile -t names < <(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing\.T).*/\1/p' cmd/dhis2-life/*_test.go | sort)
b=()
for i in "${!names[@]}"; do
  if (( i % 2 == 1 )); then b+=("${names[$i]}"); fi
done
re="^($(IFS='|'; echo "${b[*]}"))\$"
mapfile -t others < <("$GO" list "$@" | grep -vx "$cmdpkg")

"$GO" test "${flags[@]}" "${others[@]}" & p1=$!
"$GO" test "${flags[@]}" -skip "$re" "$cmdpkg" & p2=$!
"$GO" test "${flags[@]}" -run "$re" "$cmdpkg" & p3=$!
status=0
for p in $p1 $p2 $p3; do
  wait "$p" || status=1
done
exit $status
