package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestExport: both formats of a set load without dhis2-life (psql, pg_restore) and hold
// every dumped table as production has it, with the excluded tables empty; the files are
// 0600; a bad format is a usage error.
func TestExport(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	prod := readState(t, e.pg, e.db)
	dir := t.TempDir()
	check := func(what, db string) {
		t.Helper()
		got := readState(t, e.pg, db)
		for _, tb := range m.Tables {
			k := tb.Schema + "." + tb.Name
			if got.tables[k] != prod.tables[k] || got.rows[k] != tb.Rows {
				t.Errorf("%s: table %s: %s/%d rows, production %s/%d", what, k, got.tables[k], got.rows[k], prod.tables[k], tb.Rows)
			}
		}
		for _, x := range m.Excluded {
			if k := x.Schema + "." + x.Name; got.rows[k] != 0 {
				t.Errorf("%s: excluded table %s has %d rows", what, k, got.rows[k])
			}
		}
		for k, v := range prod.sequences {
			if got.sequences[k] != v {
				t.Errorf("%s: sequence %s is %s, production %s", what, k, got.sequences[k], v)
			}
		}
	}

	sqlFile := filepath.Join(dir, "hmis.sql")
	r := e.mustRun("export", "latest", "--output", sqlFile)
	if !strings.Contains(r.stdout, "exported set "+m.ID+" (plain format)") {
		t.Errorf("summary: %s", r)
	}
	if st, err := os.Stat(sqlFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", st, err)
	}
	plainDB := e.pg.CreateDB(t, "export_plain")
	if out, err := exec.Command(testenv.PGBin(t, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", e.pg.AdminDSNFor(plainDB), "-f", sqlFile).CombinedOutput(); err != nil {
		t.Fatalf("psql -f: %v\n%s", err, out)
	}
	check("plain", plainDB)

	dumpFile := filepath.Join(dir, "hmis.dump")
	r = e.mustRun("export", m.ID, "--format", "custom", "--output", dumpFile, "--json")
	var res struct {
		Tables  int    `json:"tables"`
		Scratch string `json:"scratch_database"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Tables != len(m.Tables) || res.Scratch == "" || dbExists(t, e.pg, res.Scratch) {
		t.Errorf("custom export --json: %+v %v (scratch left: %v)\n%s", res, err, res.Scratch != "" && dbExists(t, e.pg, res.Scratch), r)
	}
	customDB := e.pg.CreateDB(t, "export_custom")
	if out, err := exec.Command(testenv.PGBin(t, "pg_restore"), "--exit-on-error", "--no-owner", "-d", e.pg.AdminDSNFor(customDB), dumpFile).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	check("custom", customDB)

	// To stdout, the dump is the only output there.
	r = e.mustRun("export", "latest")
	if !strings.HasPrefix(r.stdout, "--\n-- dhis2-life export") || strings.Contains(r.stdout, "exported set") || !strings.Contains(r.stderr, "exported set") {
		t.Errorf("export to stdout: stdout starts %q, stderr %q", r.stdout[:min(len(r.stdout), 60)], r.stderr)
	}
	oneLineError(t, e.run("export", "latest", "--format", "tar"), 2, "plain or custom")
	if !strings.Contains(e.mustRun("export", "--help").stdout, "EXAMPLES") {
		t.Error("export --help has no EXAMPLES")
	}
}
