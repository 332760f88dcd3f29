package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/notify/notifytest"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func writeConfig(t *testing.T, path, extra string) {
	t.Helper()
	dir := filepath.Dir(path)
	text := fmt.Sprintf(`state_dir = %q
[repository]
url = %q
password_file = %q
[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2"
dhis2_home = %q
`, filepath.Join(dir, "state"), filepath.Join(dir, "repo"), filepath.Join(dir, "pass"), dir) + extra
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseJob(t *testing.T) {
	if _, err := lifecycle.ParseJob("snapshot"); err != nil {
		t.Fatal(err)
	}
	_, err := lifecycle.ParseJob("backup")
	if !errors.Is(err, lifecycle.ErrUnknownJob) || !strings.Contains(err.Error(), "snapshot, verify") {
		t.Fatalf("err = %v", err)
	}
}

func TestInvalidCron(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	writeConfig(t, p, "[schedule]\nsnapshot = \"61 2 * * *\"\n")
	_, err := New(Options{ConfigPath: p, Jobs: map[string]JobFunc{}})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "schedule.snapshot" || ce.Line != 9 {
		t.Fatalf("err = %#v", err)
	}
}

func TestMetricsPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := filepath.Join(t.TempDir(), "c.toml")
	writeConfig(t, p, fmt.Sprintf("[daemon]\nmetrics_listen = %q\n", ln.Addr()))
	_, err = New(Options{ConfigPath: p, Jobs: map[string]JobFunc{}})
	if err == nil || !strings.Contains(err.Error(), "daemon.metrics_listen") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v", err)
	}
}

func TestOnCalendar(t *testing.T) {
	for spec, want := range map[string]string{
		"0 2 * * *":            "OnCalendar=*-*-* 2:0:00",
		"30 5 * * 0":           "OnCalendar=Sun *-*-* 5:30:00",
		"*/15 1-5 1 * mon-fri": "OnCalendar=Mon..Fri *-*-1 1..5:0/15:00",
		"@daily":               "OnCalendar=daily",
		"@every 6h":            "OnBootSec=6h\nOnUnitActiveSec=6h",
	} {
		got, err := OnCalendar(spec)
		if err != nil || strings.Join(got, "\n") != want {
			t.Errorf("OnCalendar(%q) = %q, %v; want %q", spec, got, err, want)
		}
	}
	if _, err := OnCalendar("1 2 3"); err == nil {
		t.Error("3 fields accepted")
	}
}

// fakeJobs returns jobs whose outcome the test controls.
type fakeJobs struct {
	mu      sync.Mutex
	fail    bool
	block   chan struct{}
	started atomic.Int32
	runs    atomic.Int32
}

func (f *fakeJobs) snapshot(_ *lifecycle.Runner, ctx context.Context, _ string) (lifecycle.Result, error) {
	f.started.Add(1)
	defer f.runs.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return lifecycle.Result{}, ctx.Err()
		}
	}
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	ok := !fail
	if fail {
		return lifecycle.Result{RepoReachable: &ok}, errors.New("repository unreachable: connection refused")
	}
	return lifecycle.Result{RepoReachable: &ok, Bytes: 42}, nil
}

func TestDaemonAlertsRecoveryAndReload(t *testing.T) {
	dir := t.TempDir()
	hook := notifytest.NewHTTP(t, `{}`)
	p := filepath.Join(dir, "c.toml")
	good := fmt.Sprintf("[schedule]\nsnapshot = \"@every 1s\"\n[daemon]\nmetrics_listen = \"127.0.0.1:0\"\ntextfile_dir = %q\n[notify]\ninterval = \"1h\"\n[notify.webhook]\nurl = %q\n", dir, hook.URL)
	writeConfig(t, p, good)
	f := &fakeJobs{fail: true}
	logs := &syncBuf{}
	d, err := New(Options{ConfigPath: p, Log: slog.New(slog.NewTextHandler(logs, nil)), Jobs: map[string]JobFunc{lifecycle.JobSnapshot: f.snapshot}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error)
	go func() { done <- d.Run(ctx, hup) }()

	waitFor(t, "three failed runs", 10*time.Second, func() bool { return f.runs.Load() >= 3 })
	if n := len(hook.Requests()); n != 1 {
		t.Fatalf("%d alerts for a repeated failure, want 1", n)
	}
	if v, _ := d.Metrics().Get(MetricFailures, map[string]string{"instance": "hmis", "job": "snapshot"}); v < 3 {
		t.Fatalf("failures_total = %v", v)
	}
	if v, _ := d.Metrics().Get(MetricRepositoryUp, map[string]string{"instance": "hmis"}); v != 0 {
		t.Fatalf("repository_up = %v", v)
	}

	// SIGHUP with a broken config: the old one stays, the error is logged.
	if err := os.WriteFile(p, []byte("state_dir = \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- os.Interrupt
	waitFor(t, "reload error logged", 5*time.Second, func() bool { return strings.Contains(logs.String(), "keeping the previous configuration") })
	before := f.runs.Load()
	waitFor(t, "runs to continue", 5*time.Second, func() bool { return f.runs.Load() > before })

	f.mu.Lock()
	f.fail = false
	f.mu.Unlock()
	waitFor(t, "recovery", 10*time.Second, func() bool { return len(hook.Requests()) == 2 })
	var ev map[string]any
	json.Unmarshal([]byte(hook.Requests()[1].Body), &ev)
	if ev["event"] != "recovery" || ev["instance"] != "hmis" || ev["job"] != "snapshot" {
		t.Fatalf("second event %v", ev)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := len(hook.Requests()); n != 2 {
		t.Fatalf("%d notifications after recovery", n)
	}

	// /metrics and the textfile agree.
	resp, err := http.Get("http://" + d.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{MetricLastSuccess, MetricDuration, MetricFailures} {
		if !strings.Contains(string(body), m+`{instance="hmis",job="snapshot"}`) {
			t.Errorf("/metrics lacks %s:\n%s", m, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(filepath.Join(dir, TextfileName))
	var b bytes.Buffer
	d.Metrics().WriteText(&b)
	if b.String() != string(file) {
		t.Fatalf("textfile differs from the registry:\n%s\n---\n%s", file, b.String())
	}

	// Every run is recorded.
	cat, err := catalog.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	runs, _ := cat.Runs("hmis", "snapshot", time.Time{})
	var ok, failed int
	for _, r := range runs {
		switch r.Outcome {
		case catalog.OutcomeOK:
			ok++
		case catalog.OutcomeFailed:
			failed++
		}
	}
	if ok == 0 || failed < 3 {
		t.Fatalf("runs: %d ok, %d failed", ok, failed)
	}
}

func TestOverlapSkipAndGracefulStop(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	writeConfig(t, p, "[schedule]\nsnapshot = \"@every 1h\"\nverify = \"@every 1h\"\noverlap = \"skip\"\n[daemon]\nstop_timeout = \"300ms\"\n")
	f := &fakeJobs{block: make(chan struct{})}
	verifyRuns := atomic.Int32{}
	d, err := New(Options{ConfigPath: p, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Jobs: map[string]JobFunc{
		lifecycle.JobSnapshot: f.snapshot,
		lifecycle.JobVerify: func(*lifecycle.Runner, context.Context, string) (lifecycle.Result, error) {
			verifyRuns.Add(1)
			return lifecycle.Result{}, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx, nil) }()
	// Catch-up: nothing ever succeeded, so snapshot runs at start; verify is skipped (busy).
	waitFor(t, "catch-up snapshot", 5*time.Second, func() bool { return f.started.Load() == 1 })
	d.Trigger("hmis", lifecycle.JobVerify, "test")
	d.Trigger("hmis", lifecycle.JobSnapshot, "test")
	cancel() // the blocked snapshot outlives stop_timeout: cancelled and recorded
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if verifyRuns.Load() != 0 {
		t.Fatal("verify ran while the instance was busy with overlap = skip")
	}
	cat, err := catalog.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	runs, _ := cat.Runs("hmis", "", time.Time{})
	var skipped, interrupted int
	for _, r := range runs {
		if r.Outcome == catalog.OutcomeSkipped {
			skipped++
		}
		if r.Outcome == catalog.OutcomeFailed && strings.Contains(r.Error, "interrupted by daemon shutdown") {
			interrupted++
		}
	}
	if skipped < 2 || interrupted != 1 {
		t.Fatalf("runs %+v", runs)
	}
}

func TestStatusLimits(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	writeConfig(t, p, "[schedule]\nsnapshot = \"0 2 * * *\"\n")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("[schedule]"), []byte("rpo = \"26h\"\ndrill_max_age = \"8d\"\n[schedule]"), 1), 0o600)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rep, _ := lifecycle.Status(cfg, cat, now)
	if rep.OK || len(rep.Instances["hmis"].Problems) != 2 {
		t.Fatalf("empty catalogue: %+v", rep.Instances["hmis"])
	}
	cat.PutSnapshot(catalog.SnapshotRecord{ID: "s1", Instance: "hmis", Time: now.Add(-time.Hour)})
	cat.PutDrill(catalog.DrillRecord{ID: "d1", SetID: "s1", Instance: "hmis", Start: now.Add(-time.Hour), End: now.Add(-time.Hour), OK: true, RestoreSeconds: 12})
	cat.PutRun(catalog.RunRecord{ID: "r1", Instance: "hmis", Job: "snapshot", Start: now.Add(-2 * time.Hour), Outcome: catalog.OutcomeFailed})
	rep, _ = lifecycle.Status(cfg, cat, now)
	st := rep.Instances["hmis"]
	if !rep.OK || st.Failures7d != 1 || st.LastGoodDrill.RestoreSeconds != 12 || st.NextRuns["snapshot"].IsZero() {
		t.Fatalf("status %+v", st)
	}
	rep, _ = lifecycle.Status(cfg, cat, now.Add(27*time.Hour))
	if rep.OK || !strings.Contains(rep.SortedProblems()[0], "older than rpo") {
		t.Fatalf("27h later: %v", rep.SortedProblems())
	}
}

func TestFailureAlertAfterReloadDuringJob(t *testing.T) {
	// SIGHUP while a job runs replaces (and closes) the notification dispatcher: the job's
	// failure must still be alerted.
	dir := t.TempDir()
	hook := notifytest.NewHTTP(t, `{}`)
	p := filepath.Join(dir, "c.toml")
	writeConfig(t, p, fmt.Sprintf("[schedule]\nsnapshot = \"@every 1h\"\n[notify.webhook]\nurl = %q\n", hook.URL))
	f := &fakeJobs{fail: true, block: make(chan struct{})}
	logs := &syncBuf{}
	d, err := New(Options{ConfigPath: p, Log: slog.New(slog.NewTextHandler(logs, nil)), Jobs: map[string]JobFunc{lifecycle.JobSnapshot: f.snapshot}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error)
	go func() { done <- d.Run(ctx, hup) }()
	waitFor(t, "catch-up snapshot", 5*time.Second, func() bool { return f.started.Load() == 1 })
	hup <- os.Interrupt
	waitFor(t, "reload", 5*time.Second, func() bool { return strings.Contains(logs.String(), "configuration reloaded") })
	time.Sleep(100 * time.Millisecond) // the old dispatcher closes in the background
	close(f.block)
	waitFor(t, "failure alert", 5*time.Second, func() bool { return len(hook.Requests()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "dispatcher closed") {
		t.Fatalf("notification dropped:\n%s", logs.String())
	}
}
