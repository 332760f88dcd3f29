# dhis2-life — thin Makefile: the real work is in go and scripts/.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO ?= go
PREFIX ?= /usr/local
DESTDIR ?=
# Where scripts/deps.sh caches restic, minio and staticcheck (internal/testenv reads the same).
export DHIS2_LIFE_TOOLS ?= /var/tmp/dhis2-life-tools
TOOLS_BIN := $(DHIS2_LIFE_TOOLS)/bin
export PATH := $(TOOLS_BIN):/usr/local/go/bin:$(PATH)

PKGS := ./... ./testdata/fixture/... ./testdata/dhis2stub
TEST_FLAGS ?= -count=1 -timeout 45m

.PHONY: build deps deps-demo test fuzz vet lint demo bench clean install doc deb

build:
	$(GO) build -o bin/dhis2-life ./cmd/dhis2-life

deps:
	scripts/deps.sh >/dev/null

# What the demo and the benchmark need (no packaging tools, no PostgreSQL 13).
deps-demo:
	DHIS2_LIFE_DEPS=demo scripts/deps.sh >/dev/null

vet:
	$(GO) vet $(PKGS)

lint: vet
	@if [ -x "$(TOOLS_BIN)/staticcheck" ]; then \
		echo "$(TOOLS_BIN)/staticcheck $(PKGS)"; "$(TOOLS_BIN)/staticcheck" $(PKGS); \
	else \
		echo "lint: staticcheck not installed in $(TOOLS_BIN) (make deps builds it); only go vet ran"; \
	fi

# test runs everything CI runs: real PostgreSQL, MinIO and restic, no skips (scripts/gotest.sh
# runs cmd/dhis2-life's integration tests as two processes beside the other packages); then
# each fuzz target briefly (their committed seeds in testdata/fuzz also run as plain tests).
# The fault tests record one row per scenario in FAULT_ROWS; the table is printed at the end
# (also when a test failed) and written to bin/fault-table.md (docs/fault-table.md is a copy).
FAULT_ROWS := $(CURDIR)/bin/fault-table.jsonl
test: deps lint
	@mkdir -p bin && rm -f $(FAULT_ROWS)
	status=0; DHIS2_LIFE_FAULT_TABLE=$(FAULT_ROWS) GO=$(GO) TEST_FLAGS="$(TEST_FLAGS)" scripts/gotest.sh $(PKGS) || status=$$?; \
	$(GO) run ./internal/testenv/faulttable/cmd/faulttable -in $(FAULT_ROWS) -o bin/fault-table.md || status=1; \
	exit $$status
	$(MAKE) --no-print-directory fuzz

# fuzz runs every fuzz target for a number of executions (about 6 s each on 2 cores; under a
# minute in all). Counts, not durations: with a duration -fuzztime, Go 1.26's fuzz coordinator
# can report "context deadline exceeded" as a failure when the time runs out (golang/go#75804,
# fixed in Go 1.27). FUZZTIME=30s (or 1000000x) overrides every target's budget.
FUZZTIME ?=
FUZZ_TARGETS := ./internal/config:FuzzParse:10000x ./internal/config:FuzzParseDuration:400000x \
	./internal/manifest:FuzzParse:400000x ./internal/dumpfmt:FuzzReader:300000x \
	./internal/dumpfmt:FuzzRoundTrip:100000x ./retention:FuzzPolicy:24000x
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		ft='$(FUZZTIME)'; pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; budget=$${ft:-$${rest#*:}}; \
		echo "$(GO) test -run='^$$' -fuzz='^$$name$$' -fuzztime=$$budget $$pkg"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$$budget "$$pkg" || exit 1; \
	done

demo: deps-demo build
	scripts/demo.sh

bench: deps-demo build
	@if [ -x scripts/bench.sh ]; then scripts/bench.sh; \
	else echo "bench: scripts/bench.sh is not written yet"; exit 1; fi

# doc writes man pages and bash/zsh completion generated from the CLI definitions.
doc: build
	rm -rf bin/doc
	bin/dhis2-life gendoc --dir bin/doc >/dev/null

# deb builds bin/dhis2-life_VERSION_ARCH.deb with dpkg-deb (VERSION=... to set the version).
deb:
	packaging/deb/build.sh bin

clean:
	rm -rf bin

install: build doc
	install -D -m 0755 bin/dhis2-life $(DESTDIR)$(PREFIX)/bin/dhis2-life
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 bin/doc/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 bin/doc/bash-completion/dhis2-life $(DESTDIR)$(PREFIX)/share/bash-completion/completions/dhis2-life
	install -D -m 0644 bin/doc/zsh/_dhis2-life $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_dhis2-life
	install -D -m 0644 scripts/systemd/dhis2-life.service $(DESTDIR)$(PREFIX)/lib/systemd/system/dhis2-life.service
	sed -i 's|/usr/local/bin/dhis2-life|$(PREFIX)/bin/dhis2-life|' $(DESTDIR)$(PREFIX)/lib/systemd/system/dhis2-life.service
	install -D -m 0644 scripts/grafana-dashboard.json $(DESTDIR)$(PREFIX)/share/dhis2-life/grafana-dashboard.json
	install -D -m 0644 scripts/prometheus-alerts.yml $(DESTDIR)$(PREFIX)/share/dhis2-life/prometheus-alerts.yml
