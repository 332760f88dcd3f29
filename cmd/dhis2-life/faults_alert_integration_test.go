package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/notify/notifytest"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/internal/testenv/faulttable"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestStorageOutageAlerts: the daemon's scheduled snapshots run through the fault proxy; a
// lasting mid-upload outage fails the runs with one alert, nothing is recorded as good, and
// when the storage comes back the next scheduled run succeeds and a recovery alert follows.
func TestStorageOutageAlerts(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	px := testenv.StartFaultProxy(t, e.s3.Endpoint)
	e.repoURL = strings.Replace(e.repoURL, e.s3.URL(), px.URL(), 1)
	e.repositoryExtra = []string{`outage_timeout = "3s"`}
	hook := notifytest.NewHTTP(t, `{}`)
	addr := freePort(t)
	e.instanceExtra = []string{"", "[schedule]", `snapshot = "@every 3s"`, "", "[daemon]",
		fmt.Sprintf("metrics_listen = %q", addr), `stop_timeout = "1m"`, "", "[notify]", `interval = "1h"`,
		"retries = 1", `retry_backoff = "200ms"`, "[notify.webhook]", `url = "` + hook.URL + `/hook"`}
	e.writeConfig()
	e.init()
	e.cheapKey()

	cmd := exec.Command(testBinary, "--config", e.cfgPath, "daemon")
	cmd.Env = cliEnv()
	logs := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	}()
	metric := func(series string) float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		v, _ := metricValue(string(b), series)
		return v
	}
	wait := func(what string, d time.Duration, cond func() bool) bool {
		t.Helper()
		for deadline := time.Now().Add(d); !cond(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("timed out waiting for %s\ndaemon log:\n%s", what, logs.String())
				return false
			}
		}
		return true
	}
	const succ = `dhis2_life_job_last_success_timestamp_seconds{instance="hmis",job="snapshot"}`
	const failures = `dhis2_life_job_failures_total{instance="hmis",job="snapshot"}`
	wait("a scheduled snapshot", 2*time.Minute, func() bool { return metric(succ) > 0 })

	px.Add(testenv.Fault{Kind: testenv.FaultStatus, Method: "PUT", Path: "/data/", Status: 503, Code: "SlowDown"})
	lastGood := metric(succ)
	setsBefore := len(e.catalogSets())
	events := func() []map[string]any {
		var out []map[string]any
		for _, r := range hook.Requests() {
			var ev map[string]any
			if json.Unmarshal([]byte(r.Body), &ev) == nil {
				out = append(out, ev)
			}
		}
		return out
	}
	alerted := wait("a failure alert", 2*time.Minute, func() bool {
		evs := events()
		return metric(failures) >= 2 && len(evs) >= 1 && evs[0]["event"] == "failure"
	})
	// Let the in-flight run end before the catalogue is looked at.
	px.Clear()
	msg := ""
	if evs := events(); len(evs) > 0 {
		msg, _ = evs[0]["message"].(string)
	}
	recovered := wait("a successful run and a recovery alert", 2*time.Minute, func() bool {
		evs := events()
		return metric(succ) > lastGood && len(evs) >= 2 && evs[len(evs)-1]["event"] == "recovery"
	})
	// Metrics, logs and alert bodies carry no secret.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pass, _ := os.ReadFile(e.passFile)
	all := string(body) + logs.String()
	for _, r := range hook.Requests() {
		all += r.Body
	}
	for what, secret := range map[string]string{"repository password": strings.TrimSpace(string(pass)), "S3 secret": e.s3.SecretKey, "database password": e.pg.AppPassword} {
		if strings.Contains(all, secret) {
			t.Errorf("%s in the metrics, daemon log or alerts", what)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Errorf("daemon did not stop on SIGTERM")
	}
	nFailure := 0
	for _, ev := range events() {
		if ev["event"] == "failure" {
			nFailure++
		}
	}
	if nFailure != 1 {
		t.Errorf("%d failure alerts for one outage, want 1", nFailure)
	}
	setsAfter := len(e.catalogSets())
	if setsAfter <= setsBefore {
		t.Errorf("no set recorded after the outage: %d -> %d", setsBefore, setsAfter)
	}
	faulttable.Record(t, faulttable.Row{Scenario: "storage: lasting outage during scheduled snapshots (daemon)",
		Expected: "runs fail, one failure alert, nothing recorded as good; recovery alert and a good set after", Exit: 1,
		Message: firstLine(msg), Alert: alerted && nFailure == 1, CatalogConsistent: setsAfter > setsBefore, NextRunOK: recovered})
}

// catalogSets returns the set IDs `snapshots --json` lists.
func (e *env) catalogSets() []string {
	var ids []string
	for _, m := range e.snapshotsJSON() {
		ids = append(ids, m.ID)
	}
	return ids
}
