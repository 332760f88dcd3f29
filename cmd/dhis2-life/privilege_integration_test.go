package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/testenv/faulttable"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// leastPrivilegeGrants are the README's grants (Production install, "Database roles"), with
// the role names and the passwords of this test.
func leastPrivilegeGrants(snap, restore, snapPass, restorePass string) []string {
	return []string{
		// snapshot role: reads everything, owns nothing, no superuser.
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE pg_read_all_data`, snap, snapPass),
		// restore role for restore --to-db: creates and owns the restored database.
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s' NOSUPERUSER CREATEDB NOCREATEROLE`, restore, restorePass),
	}
}

// TestLeastPrivilege: a snapshot and a drill work with exactly the README's roles: the
// instance's database role has only pg_read_all_data (no superuser, owns nothing), restores run
// as a CREATEDB role, and only extensions need the admin (superuser) connection.
func TestLeastPrivilege(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	suffix := randName()
	snap, rst := "dl_snap_"+suffix, "dl_restore_"+suffix
	for _, q := range leastPrivilegeGrants(snap, rst, "snap-pw-"+suffix, "restore-pw-"+suffix) {
		e.pg.AdminExec(t, "postgres", q)
	}
	t.Cleanup(func() {
		e.pg.AdminExec(t, "postgres", fmt.Sprintf(`DROP OWNED BY %s, %s CASCADE`, snap, rst))
		e.pg.AdminExec(t, "postgres", fmt.Sprintf(`DROP ROLE IF EXISTS %s`, snap))
		e.pg.AdminExec(t, "postgres", fmt.Sprintf(`DROP ROLE IF EXISTS %s`, rst))
	})
	snapPass := filepath.Join(e.dir, "snap.pass")
	writeFile(t, snapPass, "snap-pw-"+suffix+"\n", 0o600)
	rstPass := filepath.Join(e.dir, "restore.pass")
	writeFile(t, rstPass, "restore-pw-"+suffix+"\n", 0o600)
	// The instance connects as the snapshot role.
	cfg := fmt.Sprintf("state_dir = %q\n\n[repository]\nurl = %q\npassword_file = %q\nenv_file = %q\nrestic = %q\n\n[instances.%s]\ndatabase = %q\ndatabase_password_file = %q\ndhis2_home = %q\nadmin_database = %q\n",
		e.stateDir, e.repoURL, e.passFile, e.envFile, e.restic, testInstance,
		fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", snap, e.pg.Port, e.db), snapPass, e.home, e.pg.AdminDSN)
	writeFile(t, e.cfgPath, cfg, 0o600)

	e.init()
	e.cheapKey()
	s := e.run("snapshot", "--json")
	if s.code != 0 {
		t.Fatalf("snapshot as a pg_read_all_data role: %s", s)
	}
	target := "lp_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	r := e.run("restore", "latest", "--to-db", fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", rst, e.pg.Port, target), "--to-db-password-file", rstPass)
	if r.code != 0 {
		t.Errorf("restore as a CREATEDB role: %s", r)
	}
	v := e.run("verify", "latest")
	if v.code != 0 {
		t.Errorf("drill with the snapshot role and the admin connection: %s", v)
	}
	faulttable.Record(t, faulttable.Row{Scenario: "least privilege: snapshot as pg_read_all_data role, restore as CREATEDB role, drill",
		Expected: "all succeed with the README's grants", Exit: max(s.code, r.code, v.code),
		Message: firstLine(strings.TrimSpace(v.stdout + "\n" + v.stderr)), CatalogConsistent: true, NextRunOK: s.code == 0 && r.code == 0 && v.code == 0})
}
