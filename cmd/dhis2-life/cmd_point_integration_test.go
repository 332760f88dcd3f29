package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestPointCreateShowRelease takes a verified rollback point, shows it, checks that it pins
// its set against retention and comes back with `catalog rebuild`, then releases it.
func TestPointCreateShowRelease(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.repositoryExtra = []string{"", "[retention]", "keep_last = 1"}
	e.writeConfig()
	e.init()

	r := e.mustRun("point", "create", "--reason", "before the 2.43 upgrade", "--verify", "--json")
	var p map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("point create --json: %v\n%s", err, r)
	}
	id, set := p["id"].(string), p["set"].(string)
	for _, k := range []string{"id", "instance", "set", "reason", "created", "postgres_version", "dhis2_version", "os_release"} {
		if s, _ := p[k].(string); s == "" {
			t.Errorf("point create --json: %q is empty: %s", k, r.stdout)
		}
	}
	if p["verified"] != true || !strings.HasPrefix(p["postgres_version"].(string), "15") || p["reason"] != "before the 2.43 upgrade" {
		t.Errorf("point: %s", r.stdout)
	}
	files, _ := p["files"].(map[string]any)
	if conf, _ := files["postgresql.conf"].(string); !strings.Contains(conf, "max_connections") {
		t.Errorf("the point has no copy of postgresql.conf: %v", files)
	}
	if hba, _ := files["pg_hba.conf"].(string); !strings.Contains(hba, "scram-sha-256") {
		t.Errorf("the point has no copy of pg_hba.conf: %v", files)
	}
	pk, _ := p["packages"].(map[string]any)
	if _, ok := pk["postgresql-15"]; !ok {
		t.Errorf("the point does not list the postgresql-15 package: %v", pk)
	}
	cl, _ := p["cluster"].(map[string]any)
	if cl["data_dir"] != e.pg.DataDir {
		t.Errorf("the point's data directory is %v, want %s", cl["data_dir"], e.pg.DataDir)
	}

	show := e.mustRun("point", "show", id)
	for _, want := range []string{id, set, "postgresql.conf", "pg_hba.conf", "package    postgresql-15", "drill passed"} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("point show does not say %q:\n%s", want, show.stdout)
		}
	}
	if ls := e.mustRun("points"); !strings.Contains(ls.stdout, id) {
		t.Errorf("points does not list %s:\n%s", id, ls.stdout)
	}

	// A newer set: keep_last = 1 would forget the point's set, the point pins it.
	e.snapshot()
	if plan := e.mustRun("retention", "plan", "--json").stdout; !strings.Contains(plan, "rollback point "+id) {
		t.Fatalf("retention plan does not pin the point's set:\n%s", plan)
	}
	// A fresh catalogue rebuilt from the repository has the point again.
	e.stateDir = e.dir + "/state-rebuilt"
	e.writeConfig()
	e.mustRun("catalog", "rebuild")
	if ls := e.mustRun("points", "--json"); !strings.Contains(ls.stdout, id) {
		t.Fatalf("catalog rebuild did not bring the point back:\n%s", ls.stdout)
	}
	if plan := e.mustRun("retention", "plan", "--json").stdout; !strings.Contains(plan, "rollback point "+id) {
		t.Fatalf("retention plan on the rebuilt catalogue does not pin the point's set:\n%s", plan)
	}

	e.mustRun("point", "release", id)
	if ls := e.mustRun("points", "--json"); strings.TrimSpace(ls.stdout) != "[]" {
		t.Fatalf("points after release: %s", ls.stdout)
	}
	if snaps := e.resticSnapshots("point:" + id); len(snaps) != 0 {
		t.Fatalf("the point's record is still in the repository: %v", snaps)
	}
	if plan := e.mustRun("retention", "plan", "--json").stdout; strings.Contains(plan, "rollback point") {
		t.Fatalf("the released point still pins its set:\n%s", plan)
	}
	oneLineError(t, e.run("point", "show", id), 1, "no such rollback point", "dhis2-life points")
}
