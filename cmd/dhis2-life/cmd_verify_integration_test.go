package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

type verifyReport struct {
	OK     bool   `json:"ok"`
	Set    string `json:"set"`
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	RestoreSeconds float64 `json:"restore_seconds"`
	ScratchDB      string  `json:"scratch_database"`
}

func parseVerify(t *testing.T, r result) verifyReport {
	t.Helper()
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify --json output: %v\n%s", err, r)
	}
	return rep
}

// TestVerify: a good set passes every check (exit 0); a set whose file store lost a file
// that a fileresource row names fails the file-resources check (exit 3).
func TestVerify(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	good := e.snapshot()

	r := e.mustRun("verify", "latest", "--json")
	rep := parseVerify(t, r)
	if !rep.OK || rep.Set != good.ID {
		t.Fatalf("verify of a good set: ok=%v set=%s\n%s", rep.OK, rep.Set, r)
	}
	names := map[string]bool{}
	for _, c := range rep.Checks {
		names[c.Name] = true
		if !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Detail)
		}
	}
	for _, want := range []string{"restore", "row counts", "flyway version", "extensions", "sequences", "excluded tables", "file resources", "repository check"} {
		if !names[want] {
			t.Errorf("verify --json has no %q check: %v", want, sortedKeys(names))
		}
	}
	if dbExists(t, e.pg, rep.ScratchDB) {
		t.Errorf("scratch database %s left behind", rep.ScratchDB)
	}
	t.Logf("drill of the good set: restore %.1fs", rep.RestoreSeconds)
	// The plain output says PASSED.
	r = e.mustRun("verify", good.ID)
	if !strings.Contains(r.stdout, "PASSED") {
		t.Errorf("verify output does not say PASSED:\n%s", r.stdout)
	}

	// Lose a file whose fileresource row stays, then snapshot again.
	conn := connectAdmin(t, e.pg, e.db)
	var key string
	if err := conn.QueryRow(context.Background(), "SELECT storagekey FROM fileresource WHERE storagekey IS NOT NULL ORDER BY storagekey LIMIT 1").Scan(&key); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	if err := os.Remove(fixture.FileResourcePath(e.home, key)); err != nil {
		t.Fatalf("removing the file of %s: %v", key, err)
	}
	bad := e.snapshot()
	r = e.run("verify", "latest", "--json")
	if r.code != 3 {
		t.Fatalf("verify of a set with a lost file: exit %d, want 3\n%s", r.code, r)
	}
	rep = parseVerify(t, r)
	if rep.OK || rep.Set != bad.ID {
		t.Fatalf("verify --json: ok=%v set=%s, want ok=false for %s", rep.OK, rep.Set, bad.ID)
	}
	for _, c := range rep.Checks {
		switch {
		case c.Name == "file resources":
			if c.OK || !strings.Contains(c.Detail, key) {
				t.Errorf("file resources check: ok=%v %q, want a failure naming %s", c.OK, c.Detail, key)
			}
		case !c.OK:
			t.Errorf("check %s failed too: %s", c.Name, c.Detail)
		}
	}
	r = e.run("verify", bad.ID)
	oneLineError(t, r, 3, "drill", bad.ID, "failed")
	if !strings.Contains(r.stdout, "FAIL") {
		t.Errorf("verify output has no FAIL line:\n%s", r.stdout)
	}
}

// TestRecoveryFromBucket: a new host with the same config but an empty state_dir lists
// nothing until `catalog rebuild`, then lists, restores and verifies the sets.
func TestRecoveryFromBucket(t *testing.T) {
	e := newEnv(t, fixture.Gen240)
	e.init()
	m1 := e.snapshot()
	m2 := e.snapshot()

	e.stateDir = t.TempDir() + "/fresh-state"
	e.writeConfig()
	if got := e.snapshotsJSON(); len(got) != 0 {
		t.Fatalf("fresh state_dir lists %d sets before catalog rebuild", len(got))
	}
	r := e.mustRun("snapshots")
	if !strings.Contains(r.stdout, "catalog rebuild") {
		t.Errorf("empty listing does not point at catalog rebuild:\n%s", r.stdout)
	}
	r = e.mustRun("catalog", "rebuild")
	t.Logf("catalog rebuild: %s", strings.TrimSpace(r.stdout))
	got := e.snapshotsJSON()
	if len(got) != 2 || got[0].ID != m1.ID || got[1].ID != m2.ID {
		ids := []string{}
		for _, m := range got {
			ids = append(ids, m.ID)
		}
		t.Fatalf("after catalog rebuild: %v, want [%s %s]", ids, m1.ID, m2.ID)
	}
	if len(got[1].Tables) != len(m2.Tables) || got[1].Parts["db"].Snapshot != m2.Parts["db"].Snapshot {
		t.Errorf("rebuilt manifest differs from the one the snapshot printed")
	}
	target := "rec_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	e.mustRun("restore", m1.ID[:len(m1.ID)-2], "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	compareRestored(t, readState(t, e.pg, e.db), readState(t, e.pg, target), m1, e.pg.AppUser)
	rep := parseVerify(t, e.mustRun("verify", "latest", "--json"))
	if !rep.OK || rep.Set != m2.ID {
		t.Errorf("verify after recovery: ok=%v set=%s", rep.OK, rep.Set)
	}
}
