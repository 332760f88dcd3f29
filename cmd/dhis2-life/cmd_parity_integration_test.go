package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/notify/notifytest"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// jobRuns returns the finished run records of a job, oldest first.
func (e *env) jobRuns(job string) []catalog.RunRecord {
	e.t.Helper()
	cat, err := catalog.Open(e.stateDir)
	if err != nil {
		e.t.Fatal(err)
	}
	runs, err := cat.Runs(testInstance, job, time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	return runs
}

// alertOf decodes a webhook alert into the fields that say what it is about.
func alertOf(t *testing.T, r notifytest.Request) string {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal([]byte(r.Body), &ev); err != nil {
		t.Fatalf("alert %q: %v", r.Body, err)
	}
	return fmt.Sprintf("%v/%v/%v", ev["event"], ev["instance"], ev["job"])
}

// TestCLIAndDaemonRunJobsAlike runs snapshot, verify and clone once from the CLI and once
// through the daemon's job runner (`schedule run`): both leave the same run records, and with
// the repository unreachable both raise the same failure alert.
func TestCLIAndDaemonRunJobsAlike(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	stg := "par_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, stg); dropDB(t, e.pg, stg+clone.NewSuffix) })
	hook := notifytest.NewHTTP(t, `{}`)
	target := tgt{name: "staging", db: stg, profile: "staging", home: filepath.Join(e.dir, "staging-home"),
		extra: fmt.Sprintf("\n[notify]\ninterval = \"1h\"\n[notify.webhook]\nurl = %q", hook.URL)}
	e.setTargets(target)

	jobs := []struct {
		name string
		cli  []string
	}{
		{"snapshot", []string{"snapshot"}},
		{"verify", []string{"verify", "latest"}},
		{"clone_refresh", []string{"clone", "--to", "staging"}},
	}
	for _, j := range jobs {
		e.mustRun(j.cli...)
		e.mustRun("schedule", "run", j.name)
		runs := e.jobRuns(j.name)
		if len(runs) != 2 {
			t.Fatalf("%s: %d run records, want one from the CLI and one from the daemon: %+v", j.name, len(runs), runs)
		}
		for i, r := range runs {
			if r.Outcome != catalog.OutcomeOK || r.Error != "" || r.End.Before(r.Start) || (j.name != "verify") != (r.Bytes > 0) {
				t.Errorf("%s run %d (cli, daemon): %+v", j.name, i, r)
			}
		}
	}
	if n := len(hook.Requests()); n != 0 {
		t.Fatalf("%d alerts for successful runs", n)
	}

	// The repository goes away: each job fails alike, with one alert from either side.
	e.repoURL = "s3:http://127.0.0.1:1/gone/repo"
	e.setTargets(target)
	for _, j := range jobs {
		before := len(hook.Requests())
		if r := e.run(j.cli...); r.code != 1 {
			t.Fatalf("%s from the CLI without a repository: %s", j.name, r)
		}
		if err := os.Remove(filepath.Join(e.stateDir, "notify-state.json")); err != nil {
			t.Fatalf("%s: the CLI kept no alert state: %v", j.name, err)
		}
		if r := e.run("schedule", "run", j.name); r.code != 1 {
			t.Fatalf("schedule run %s without a repository: %s", j.name, r)
		}
		reqs := hook.Requests()[before:]
		if len(reqs) != 2 || alertOf(t, reqs[0]) != alertOf(t, reqs[1]) || alertOf(t, reqs[0]) != "failure/hmis/"+j.name {
			t.Fatalf("%s alerts (cli, daemon): %+v", j.name, reqs)
		}
		runs := e.jobRuns(j.name)
		cli, daemon := runs[len(runs)-2], runs[len(runs)-1]
		if cli.Outcome != catalog.OutcomeFailed || daemon.Outcome != catalog.OutcomeFailed ||
			!strings.Contains(cli.Error, "127.0.0.1:1") || !strings.Contains(daemon.Error, "127.0.0.1:1") {
			t.Errorf("%s failed runs (cli, daemon): %+v / %+v", j.name, cli, daemon)
		}
	}
}

// TestVerifyRefusedWhileBusy: a drill started by hand while another job of the instance holds
// its lock is refused, and nothing is drilled.
func TestVerifyRefusedWhileBusy(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	e.snapshot()
	lk, err := lock.Acquire(filepath.Join(e.stateDir, "locks"), testInstance, "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	r := e.run("verify", "latest")
	lk.Release()
	oneLineError(t, r, 1, "busy", testInstance)
	cat, err := catalog.Open(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if drills, err := cat.Drills(testInstance); err != nil || len(drills) != 0 {
		t.Fatalf("drills recorded while busy: %v %+v", err, drills)
	}
	e.mustRun("verify", "latest")
}
