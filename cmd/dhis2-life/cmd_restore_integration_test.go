package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestRoundTrip: snapshot → restore into a new database (owned by another role) and a new
// directory; every non-excluded table and sequence equals the source, excluded tables exist
// and are empty, files equal the source's.
func TestRoundTrip(t *testing.T) {
	for _, gen := range []string{fixture.Gen240, fixture.Gen242, fixture.Gen244} {
		t.Run(strings.ReplaceAll(gen, ".", ""), func(t *testing.T) {
			e := newEnv(t, gen)
			e.init()
			m := e.snapshot()
			if m.DHIS2.Generation != gen {
				t.Errorf("manifest generation %q, want %s", m.DHIS2.Generation, gen)
			}
			src := readState(t, e.pg, e.db)

			// The restored copy belongs to another login role, as a staging copy would.
			owner := "dhis_copy"
			e.pg.AdminExec(t, "postgres", fmt.Sprintf(`DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN CREATE ROLE %s LOGIN PASSWORD 'copy-secret'; END IF; END$$`, owner, owner))
			copyPass := filepath.Join(e.dir, "copy.pass")
			writeFile(t, copyPass, "copy-secret\n", 0o600)
			target := "rt_" + randName()
			t.Cleanup(func() { dropDB(t, e.pg, target) })
			filesTo := filepath.Join(e.dir, "restored-home")
			r := e.mustRun("restore", "latest", "--to-db", fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", owner, e.pg.Port, target),
				"--to-db-password-file", copyPass, "--files-to", filesTo)
			t.Logf("restore: %s", strings.TrimSpace(r.stdout))
			dst := readState(t, e.pg, target)
			compareRestored(t, src, dst, m, owner)
			compareFiles(t, e.home, filesTo)

			conn := connectAdmin(t, e.pg, "postgres")
			defer conn.Close(context.Background())
			var dbOwner string
			if err := conn.QueryRow(context.Background(), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", target).Scan(&dbOwner); err != nil {
				t.Fatal(err)
			}
			if dbOwner != owner {
				t.Errorf("restored database owned by %s, want %s", dbOwner, owner)
			}
		})
	}
}

// TestRestoreNonEmptyTarget: a non-empty target is refused without --force and replaced with it.
func TestRestoreNonEmptyTarget(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	target := e.pg.CreateDB(t, "nonempty")
	e.pg.AdminExec(t, target, "CREATE TABLE precious (id int); INSERT INTO precious VALUES (42)")

	filesTo := filepath.Join(e.dir, "refused-files")
	r := e.run("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass, "--files-to", filesTo)
	oneLineError(t, r, 1, "not empty", "--force", target)
	if _, err := os.Stat(filesTo); !os.IsNotExist(err) {
		t.Errorf("refused restore wrote the file store into %s (%v)", filesTo, err)
	}
	conn := connectAdmin(t, e.pg, target)
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM precious").Scan(&n); err != nil || n != 1 {
		t.Fatalf("refused restore touched the target: %d rows, %v", n, err)
	}
	conn.Close(context.Background())

	e.mustRun("restore", m.ID, "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass, "--force")
	dst := readState(t, e.pg, target)
	if _, ok := dst.tables["public.precious"]; ok {
		t.Error("--force kept the old table precious")
	}
	compareRestored(t, readState(t, e.pg, e.db), dst, m, e.pg.AppUser)
}

// TestRestoreRefusesProduction: the instance's own database, spelled differently, is refused
// even with --force.
func TestRestoreRefusesProduction(t *testing.T) {
	e := newEnv(t, fixture.Gen240)
	e.init()
	e.snapshot()
	before := readState(t, e.pg, e.db)
	for _, dsn := range []string{
		fmt.Sprintf("postgres://%s@localhost:%d/%s?sslmode=disable", e.pg.AppUser, e.pg.Port, e.db),
		fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable", e.pg.Port, e.db, e.pg.AppUser),
		fmt.Sprintf("postgresql://postgres@localhost:%d/%s", e.pg.Port, e.db),
	} {
		for _, extra := range [][]string{nil, {"--force"}, {"--force", "--dry-run"}} {
			args := append([]string{"restore", "latest", "--to-db", dsn, "--to-db-password-file", e.dbPass}, extra...)
			r := e.run(args...)
			if r.code == 0 {
				t.Fatalf("restore into the production database (%s %v) succeeded\n%s", dsn, extra, r)
			}
			oneLineError(t, r, r.code, "production", e.db)
		}
	}
	after := readState(t, e.pg, e.db)
	for k, v := range before.tables {
		if after.tables[k] != v {
			t.Errorf("production table %s changed", k)
		}
	}
}

// TestRestoreDryRun prints the plan and changes nothing.
func TestRestoreDryRun(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	target := "dry_" + randName()
	filesTo := filepath.Join(e.dir, "dry-files")
	r := e.mustRun("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass, "--files-to", filesTo, "--dry-run")
	for _, want := range []string{m.ID, target, "nothing was changed", filesTo, "extensions first"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry-run plan does not mention %q:\n%s", want, r.stdout)
		}
	}
	if dbExists(t, e.pg, target) {
		dropDB(t, e.pg, target)
		t.Error("--dry-run created the target database")
	}
	if _, err := os.Stat(filesTo); err == nil {
		t.Error("--dry-run created the files directory")
	}
}

// TestRestoreUnknownSet names the unknown set.
func TestRestoreUnknownSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.init()
	target := "unk_" + randName()
	r := e.run("restore", "20200101T000000Z-dead", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	oneLineError(t, r, 1, "unknown snapshot set", "20200101T000000Z-dead")
	r = e.run("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	oneLineError(t, r, 1, "no snapshot sets")
	r = e.run("verify", "nope")
	oneLineError(t, r, 1, "unknown snapshot set", "nope")
	if dbExists(t, e.pg, target) {
		t.Error("failed restore left a database")
	}
}
