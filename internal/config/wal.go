package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// WAL configures continuous WAL archiving and base backups of an instance
// ([instances.NAME.wal]); its presence turns point-in-time recovery on for the instance.
type WAL struct {
	// ArchiveTimeout is PostgreSQL's archive_timeout set by `wal setup` (default 60s): the most
	// data a crash can lose when the primary's disk is gone too.
	ArchiveTimeout Duration `toml:"archive_timeout"`
	// MaxLag is the age of the last archived WAL file past which `status` alerts and exits 3
	// while WAL is waiting to be archived (default 5m).
	MaxLag Duration `toml:"wal_max_lag"`
	// KeepBaseBackups is how many newest base backups retention keeps (default 2); WAL older
	// than the oldest kept one is removed with it.
	KeepBaseBackups int `toml:"keep_base_backups"`
	// RunAs is the OS user owning restored clusters and running their postgres (default
	// "postgres" when dhis2-life runs as root, else the current user).
	RunAs string `toml:"run_as"`
	// DrillDir is where `verify --pitr` creates its scratch cluster (default /var/tmp); RunAs
	// must be able to reach it, and it needs room for a whole cluster.
	DrillDir string `toml:"drill_dir"`
	// DrillMargin: `verify --pitr` requires every row production stamped (created) up to
	// target-DrillMargin to be restored (default 1m: an import's rows are stamped when its
	// transaction starts and only committed at its end).
	DrillMargin Duration `toml:"drill_margin"`
	// Binary is the dhis2-life executable named in archive_command/restore_command (default:
	// the running executable).
	Binary string `toml:"binary"`
}

// walDefaults fills defaults of every [instances.NAME.wal] table.
func (c *Config) walDefaults() {
	for _, in := range c.Instances {
		w := in.WAL
		if w == nil {
			continue
		}
		if w.ArchiveTimeout.Duration == 0 {
			w.ArchiveTimeout.Duration = 60 * time.Second
		}
		if w.MaxLag.Duration == 0 {
			w.MaxLag.Duration = 5 * time.Minute
		}
		if w.KeepBaseBackups == 0 {
			w.KeepBaseBackups = 2
		}
		w.Binary = c.abs(w.Binary)
		if w.DrillMargin.Duration == 0 {
			w.DrillMargin.Duration = time.Minute
		}
		if w.DrillDir == "" {
			w.DrillDir = "/var/tmp"
		}
		w.DrillDir = c.abs(w.DrillDir)
	}
}

// validateWAL checks the [instances.NAME.wal] tables and schedule.base_backup.
func (c *Config) validateWAL() error {
	anyWAL := false
	for _, name := range c.InstanceNames() {
		w := c.Instances[name].WAL
		if w == nil {
			continue
		}
		anyWAL = true
		k := "instances." + name + ".wal"
		if !strings.HasPrefix(c.Repository.URL, "s3:") {
			return c.errAt(k, "WAL archiving needs an S3 repository (the WAL goes to the repository's bucket)", `use repository.url = "s3:http(s)://host:port/bucket/prefix", or remove the wal table`)
		}
		if d := w.ArchiveTimeout.Duration; d < time.Second || d > 24*time.Hour {
			return c.errAt(k+".archive_timeout", fmt.Sprintf("%s is out of range", d), `use 1s to 24h; "60s" (the default) bounds the data at risk to about a minute`)
		}
		if d := w.MaxLag.Duration; d < w.ArchiveTimeout.Duration {
			return c.errAt(k+".wal_max_lag", fmt.Sprintf("%s is shorter than archive_timeout (%s)", d, w.ArchiveTimeout.Duration), "use a few times archive_timeout, e.g. \"5m\"")
		}
		if w.KeepBaseBackups < 1 || w.KeepBaseBackups > 1000 {
			return c.errAt(k+".keep_base_backups", fmt.Sprintf("%d is out of range", w.KeepBaseBackups), "use 1 or more (default 2)")
		}
	}
	if s := c.Schedule.BaseBackup; s != "" {
		if _, err := cron.ParseStandard(s); err != nil {
			return c.errAt("schedule.base_backup", fmt.Sprintf("invalid schedule %q: %v", s, err), `use 5 cron fields ("0 1 * * 0") or a descriptor ("@weekly")`)
		}
		if !anyWAL {
			return c.errAt("schedule.base_backup", "no instance has a [instances.NAME.wal] table", "add one (base backups are useful only with WAL archiving) or remove base_backup")
		}
	}
	return nil
}
