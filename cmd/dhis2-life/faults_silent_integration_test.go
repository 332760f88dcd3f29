package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/internal/testenv/faulttable"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestSilentStorage: the storage accepts connections and never answers in the middle of a
// snapshot. The job ends within a bounded time with one clear error, records nothing, and the
// next run succeeds. SIGTERM while restic waits on the silent storage (outage_timeout far
// away) ends the snapshot promptly with exit 130.
func TestSilentStorage(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	px := testenv.StartFaultProxy(t, e.s3.Endpoint)
	e.repoURL = strings.Replace(e.repoURL, e.s3.URL(), px.URL(), 1)
	e.repositoryExtra = []string{`outage_timeout = "3s"`}
	e.writeConfig()
	e.init()
	e.cheapKey()
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
	term := e.sigtermWhileSilent(px)
	faulttable.Record(t, faulttable.Row{Scenario: "storage: silent (accepts, never answers) mid-upload during snapshot",
		Expected: "bounded time, one clear error, nothing recorded; next run succeeds", Exit: r.code,
		Message:           strings.TrimPrefix(errorLine(r), "dhis2-life: ") + " (after " + took.Round(time.Second).String() + ")",
		CatalogConsistent: after == before, NextRunOK: next.code == 0})
	faulttable.Record(t, faulttable.Row{Scenario: "storage: silent mid-upload, then SIGTERM to snapshot (outage_timeout 15m)",
		Expected: "exit 130 within seconds, nothing recorded", Exit: term.code,
		Message:           strings.TrimPrefix(errorLine(term), "dhis2-life: ") + " (after " + term.dur.Round(time.Second).String() + ")",
		CatalogConsistent: len(e.catalogSets()) == after+1, NextRunOK: term.code == 130})
}

// sigtermWhileSilent starts a snapshot with the default outage_timeout (15m) against storage
// that stops answering uploads, sends SIGTERM once restic waits on it, and returns the result
// (dur: from the signal to the exit). It fails the test unless the process ends with 130 within
// 30 s.
func (e *env) sigtermWhileSilent(px *testenv.FaultProxy) result {
	e.t.Helper()
	e.repositoryExtra = nil
	e.writeConfig()
	defer e.writeConfig()
	injected := px.Injected()
	px.Add(testenv.Fault{Kind: testenv.FaultSilent, Method: "PUT", Path: "/data/"})
	defer px.Clear()
	cmd := exec.Command(testBinary, "--config", e.cfgPath, "snapshot")
	cmd.Env = cliEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("starting snapshot: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for deadline := time.Now().Add(2 * time.Minute); px.Injected() == injected; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			e.t.Fatalf("snapshot never reached the silent storage: %s", stderr.String())
		}
	}
	time.Sleep(time.Second)
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatalf("SIGTERM: %v", err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		e.t.Fatalf("snapshot still running 30 s after SIGTERM while storage is silent: %s", stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), dur: time.Since(t0)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	}
	if r.code != 130 || strings.Count(r.stderr, "dhis2-life: ") != 1 {
		e.t.Errorf("SIGTERM during a snapshot against silent storage: want exit 130 and one error line: %s", r)
	}
	e.t.Logf("SIGTERM to exit: %s", r.dur)
	return r
}
