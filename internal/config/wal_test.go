package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWALDefaultsAndValidation(t *testing.T) {
	s3 := strings.Replace(minimal, `url = "/srv/repo"`, `url = "s3:http://127.0.0.1:9000/b/hmis"`, 1)
	c, err := Parse("/etc/dhis2-life/c.toml", []byte(s3+"[instances.hmis.wal]\n[schedule]\nbase_backup = \"0 1 * * 0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Instances["hmis"].WAL
	if w == nil || w.ArchiveTimeout.Duration != time.Minute || w.MaxLag.Duration != 5*time.Minute || w.KeepBaseBackups != 2 || w.DrillDir != "/var/tmp" || w.DrillMargin.Duration != time.Minute {
		t.Fatalf("defaults: %+v", w)
	}
	if c.Schedule.BaseBackup != "0 1 * * 0" {
		t.Fatalf("schedule.base_backup = %q", c.Schedule.BaseBackup)
	}
	if c, err := Parse("c.toml", []byte(minimal)); err != nil || c.Instances["hmis"].WAL != nil {
		t.Fatalf("without a wal table WAL must stay nil: %v", err)
	}
	for _, bad := range []struct{ text, key string }{
		{"[instances.hmis.wal]\narchive_timeout = \"500ms\"\n", "instances.hmis.wal.archive_timeout"},
		{"[instances.hmis.wal]\narchive_timeout = \"60s\"\nwal_max_lag = \"30s\"\n", "instances.hmis.wal.wal_max_lag"},
		{"[instances.hmis.wal]\nkeep_base_backups = -1\n", "instances.hmis.wal.keep_base_backups"},
		{"[schedule]\nbase_backup = \"0 1 * * 0\"\n", "schedule.base_backup"},
		{"[instances.hmis.wal]\n[schedule]\nbase_backup = \"every day\"\n", "schedule.base_backup"},
		{"[instances.hmis.wal]\nmax_lag = \"5m\"\n", "instances.hmis.wal.max_lag"},
		{"[instances.hmis.wal]\n", "instances.hmis.wal"},
	} {
		base := s3
		if bad.key == "instances.hmis.wal" {
			base = minimal // a local repository
		}
		_, err := Parse("c.toml", []byte(base+bad.text))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != bad.key || ce.Line == 0 || ce.Fix == "" && !strings.Contains(ce.Msg, "unknown") {
			t.Errorf("%q: got %v, want an error at %s with a line and a fix", bad.text, err, bad.key)
		}
	}
}
