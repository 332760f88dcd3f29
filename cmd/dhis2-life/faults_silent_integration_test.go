package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/internal/testenv/faulttable"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestSilentStorage: the storage accepts connections and never answers in the middle of a
// snapshot. The job ends within a bounded time with one clear error, records nothing, and the
// next run succeeds.
func TestSilentStorage(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	px := testenv.StartFaultProxy(t, e.s3.Endpoint)
	e.repoURL = strings.Replace(e.repoURL, e.s3.URL(), px.URL(), 1)
	e.repositoryExtra = []string{`outage_timeout = "3s"`}
	e.writeConfig()
	e.init()
	before := len(e.catalogSets())
	px.Add(testenv.Fault{Kind: testenv.FaultSilent, Method: "PUT", Path: "/data/"})
	t0 := time.Now()
	r := e.run("snapshot")
	took := time.Since(t0)
	px.Clear()
	after := len(e.catalogSets())
	if r.code == 0 || strings.Count(r.stderr, "dhis2-life: ") != 1 {
		t.Errorf("snapshot against silent storage: %s", r)
	}
	if took > 2*time.Minute {
		t.Errorf("snapshot against silent storage took %s", took)
	}
	next := e.run("snapshot")
	if next.code != 0 {
		t.Errorf("snapshot after the storage answers again: %s", next)
	}
	faulttable.Record(t, faulttable.Row{Scenario: "storage: silent (accepts, never answers) mid-upload during snapshot",
		Expected: "bounded time, one clear error, nothing recorded; next run succeeds", Exit: r.code,
		Message:           strings.TrimPrefix(errorLine(r), "dhis2-life: ") + " (after " + took.Round(time.Second).String() + ")",
		CatalogConsistent: after == before, NextRunOK: next.code == 0})
}
