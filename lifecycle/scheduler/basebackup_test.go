package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

// TestBaseBackupJob: base_backup is a schedulable job like the others: ParseJob knows it,
// schedule print --systemd makes its timer, and the daemon runs it through the runner, which
// records an instance without WAL archiving as skipped (no alert, no failure metric).
func TestBaseBackupJob(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	// hmis archives WAL (which base_backup needs somewhere), sl does not; the repository is
	// never reached.
	text := fmt.Sprintf(`state_dir = %q
[repository]
url = "s3:http://127.0.0.1:1/bucket/prefix"
password_file = %q
[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2"
dhis2_home = %q
[instances.hmis.wal]
[instances.sl]
database = "postgres://dhis@127.0.0.1:5432/sl"
dhis2_home = %q
[schedule]
base_backup = "0 1 * * 0"
`, filepath.Join(dir, "state"), filepath.Join(dir, "pass"), dir, dir)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lifecycle.ParseJob("base_backup"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	units, err := SystemdUnits(cfg, "/usr/bin/dhis2-life")
	if err != nil {
		t.Fatal(err)
	}
	timer, service := units["dhis2-life-base-backup.timer"], units["dhis2-life-base-backup.service"]
	if !strings.Contains(timer, "OnCalendar=Sun *-*-* 1:0:00") || !strings.Contains(service, "schedule run base_backup") {
		t.Fatalf("systemd units of base_backup:\n%s\n%s", timer, service)
	}

	d, err := New(Options{ConfigPath: p, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), NoListen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.RunJob(context.Background(), "sl", lifecycle.JobBaseBackup); !errors.Is(err, lifecycle.ErrSkip) {
		t.Fatalf("base_backup of an instance without [wal]: err = %v, want a skip", err)
	}
	runs, err := d.catalog().Runs("sl", lifecycle.JobBaseBackup, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Outcome != catalog.OutcomeSkipped || !strings.Contains(runs[0].Error, "no WAL archiving") {
		t.Fatalf("run records of base_backup: %+v", runs)
	}
	if v, ok := d.Metrics().Get(MetricFailures, map[string]string{"instance": "sl", "job": lifecycle.JobBaseBackup}); ok && v != 0 {
		t.Fatalf("a skipped base_backup counted as a failure: %v", v)
	}
}
