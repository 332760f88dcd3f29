package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestUpgradeOS prepares an OS upgrade (rollback point + host capture in the repository),
// verifies an unchanged host (exit 0), then a host whose service is down, DHIS2 silent,
// rows lost and configuration changed (exit 3, each named, secrets redacted), and reports.
func TestUpgradeOS(t *testing.T) {
	e := newEnv(t, fixture.Gen240)
	svc := filepath.Join(e.dir, "services")
	extra := filepath.Join(e.dir, "etc", "dhis2-extra.conf")
	writeFile(t, extra, "threads = 4\nmode = production\n", 0o644)
	for _, s := range []string{"tomcat9", "postgresql"} {
		writeFile(t, filepath.Join(svc, s+".up"), "", 0o644)
		writeFile(t, filepath.Join(svc, s+".service"), "[Service]\nExecStart=/usr/bin/"+s+"\n", 0o644)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/system/ping" {
			fmt.Fprint(w, "pong")
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	e.instanceExtra = []string{"", "[instances.hmis.app]", fmt.Sprintf("url = %q", srv.URL),
		"", "[instances.hmis.os]", `services = ["tomcat9", "postgresql"]`,
		fmt.Sprintf("service_status = %q", fmt.Sprintf(`test -e %s/"$DHIS2_LIFE_SERVICE".up`, svc)),
		fmt.Sprintf("service_unit = %q", fmt.Sprintf(`cat %s/"$DHIS2_LIFE_SERVICE".service`, svc)),
		fmt.Sprintf("files = [%q]", extra)}
	e.writeConfig()
	e.init()

	r := e.mustRun("upgrade", "os", "prepare")
	if !strings.Contains(r.stdout, "rollback point pt-") || !strings.Contains(r.stdout, "2 services") {
		t.Fatalf("prepare:\n%s", r)
	}
	if snaps := e.resticSnapshots("part:oscapture"); len(snaps) != 1 {
		t.Fatalf("the capture is not in the repository: %d part:oscapture snapshots", len(snaps))
	}
	r = e.mustRun("upgrade", "os", "verify", "--json")
	var rec upgrade.OSRecord
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r)
	}
	if rec.State != upgrade.StateDone || len(rec.Diffs) != 0 || len(rec.Checks) != 6 {
		t.Fatalf("verify of an unchanged host: %+v", rec)
	}

	// The "upgrade" broke things.
	os.Remove(filepath.Join(svc, "tomcat9.up"))
	writeFile(t, extra, "threads = 8\nmode = production\n", 0o644)
	writeFile(t, filepath.Join(svc, "postgresql.service"), "[Service]\nExecStart=/usr/bin/postgresql --new\n", 0o644)
	conf, err := dhisconf.Read(filepath.Join(e.home, "dhis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf.Set("connection.password", "S3cretAfterUpgrade")
	if err := conf.Write(filepath.Join(e.home, "dhis.conf")); err != nil {
		t.Fatal(err)
	}
	e.pg.AdminExec(t, e.db, `DELETE FROM datavalue WHERE ctid IN (SELECT ctid FROM datavalue LIMIT 3)`)
	srv.Close()
	r = e.run("upgrade", "os", "verify")
	if r.code != 3 {
		t.Fatalf("verify of a broken host: want exit 3\n%s", r)
	}
	for _, want := range []string{"FAIL service tomcat9", "ok   service postgresql", "FAIL rows", "public.datavalue", "FAIL dhis2", "FAIL config",
		extra + ": changed", "- threads = 4", "+ threads = 8", "unit postgresql: changed", "dhis.conf: changed", "connection.password = <redacted>", "ok   postgres"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("verify output lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "S3cretAfterUpgrade") {
		t.Fatal("verify printed a password")
	}
	r = e.mustRun("upgrade", "os", "report")
	if !strings.Contains(r.stdout, "before") || !strings.Contains(r.stdout, "after") || !strings.Contains(r.stdout, "(failed)") {
		t.Fatalf("report:\n%s", r)
	}
	r = e.mustRun("upgrades", "--json")
	var all []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || len(all) != 1 || all[0]["kind"] != "os" || all[0]["state"] != "failed" {
		t.Fatalf("upgrades --json: %v\n%s", err, r.stdout)
	}
}
