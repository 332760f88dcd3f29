package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/notify/notifytest"
)

// testRunner is a Runner on a fresh state dir whose [notify.webhook] is hook.
func testRunner(t *testing.T, hook *notifytest.HTTP) *Runner {
	t.Helper()
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("secret-repo-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "c.toml")
	text := fmt.Sprintf(`state_dir = %q
[repository]
url = %q
password_file = %q
[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2"
dhis2_home = %q
[notify]
interval = "1h"
[notify.webhook]
url = %q
`, filepath.Join(dir, "state"), filepath.Join(dir, "repo"), pass, dir, hook.URL)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(a, "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRunRecordsAndAlerts: Run records each run's start and outcome, alerts once on failure
// (redacting secrets), once on recovery, never on a skip, and hands each outcome to Observe.
func TestRunRecordsAndAlerts(t *testing.T) {
	hook := notifytest.NewHTTP(t, `{}`)
	r := testRunner(t, hook)
	var observed []string
	r.Observe = func(instance, job string, res Result, err error, _ time.Duration) {
		observed = append(observed, fmt.Sprintf("%s/%s/%d/%v", instance, job, res.Bytes, err != nil))
	}
	ctx := context.Background()
	var during []catalog.RunRecord
	fail := func(ctx context.Context) (Result, error) {
		runs, _ := r.Catalog.Runs("hmis", JobSnapshot, time.Time{})
		during = append(during, runs[len(runs)-1])
		return Result{}, errors.New("disk on fire (password secret-repo-pw)")
	}
	for range 2 {
		if _, err := r.Run(ctx, "hmis", JobSnapshot, fail); err == nil {
			t.Fatal("failure not returned")
		}
	}
	if _, err := r.Run(ctx, "hmis", JobSnapshot, func(context.Context) (Result, error) { return Result{Bytes: 7}, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, "hmis", JobVerify, func(context.Context) (Result, error) { return Result{}, skipf("nothing to drill") }); !errors.Is(err, ErrSkip) {
		t.Fatalf("skip: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if during[0].Outcome != catalog.OutcomeRunning {
		t.Errorf("run not recorded as running while it runs: %+v", during[0])
	}
	runs, err := r.Catalog.Runs("hmis", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, run := range runs {
		got = append(got, run.Job+":"+run.Outcome)
		if run.Outcome == catalog.OutcomeFailed && (run.Error != "disk on fire (password [redacted])" || run.End.Before(run.Start)) {
			t.Errorf("failed run %+v", run)
		}
	}
	if fmt.Sprint(got) != "[snapshot:failed snapshot:failed snapshot:ok verify:skipped]" {
		t.Errorf("runs %v", got)
	}
	var events []string
	for _, q := range hook.Requests() {
		var ev map[string]any
		if err := json.Unmarshal([]byte(q.Body), &ev); err != nil {
			t.Fatal(err)
		}
		events = append(events, fmt.Sprintf("%v/%v", ev["event"], ev["job"]))
	}
	if fmt.Sprint(events) != "[failure/snapshot recovery/snapshot]" {
		t.Errorf("alerts %v", events)
	}
	if fmt.Sprint(observed) != "[hmis/snapshot/0/true hmis/snapshot/0/true hmis/snapshot/7/false hmis/verify/0/true]" {
		t.Errorf("observed %v", observed)
	}
}

// TestLockBusy: a second job of an instance is refused with "busy" while one holds its lock.
func TestLockBusy(t *testing.T) {
	r := testRunner(t, notifytest.NewHTTP(t, `{}`))
	lk, err := r.lock("hmis", JobSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	if _, err := r.lock("hmis", JobVerify); err == nil || !strings.Contains(err.Error(), "instance hmis is busy") {
		t.Fatalf("second job of a busy instance: %v", err)
	}
}
