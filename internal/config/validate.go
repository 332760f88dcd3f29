package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// validName is what instance and target names may look like: they end up in restic tags,
// metric labels and database names.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// RetentionClasses are the values allowed in a retention policy's archive list.
var RetentionClasses = []string{"last", "daily", "weekly", "monthly", "yearly", "within"}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *Config) validateRetention(k string, r *Retention) error {
	if r == nil {
		return nil
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"keep_last", r.KeepLast}, {"keep_daily", r.KeepDaily}, {"keep_weekly", r.KeepWeekly}, {"keep_monthly", r.KeepMonthly}, {"keep_yearly", r.KeepYearly}} {
		if f.v < 0 {
			return c.errAt(k+"."+f.key, fmt.Sprintf("%d is negative", f.v), "use 0 (keep none of this class) or more")
		}
	}
	for _, a := range r.Archive {
		ok := false
		for _, cl := range RetentionClasses {
			ok = ok || a == cl
		}
		if !ok {
			return c.errAt(k+".archive", fmt.Sprintf("unknown class %q", a), "use any of "+strings.Join(RetentionClasses, ", "))
		}
	}
	if r.PruneSchedule != "" {
		if _, err := cron.ParseStandard(r.PruneSchedule); err != nil {
			return c.errAt(k+".prune_schedule", fmt.Sprintf("invalid schedule %q: %v", r.PruneSchedule, err), `use 5 cron fields ("0 6 * * 0") or a descriptor ("@weekly")`)
		}
	}
	return nil
}

func (c *Config) validateArchive() error {
	a := c.Archive
	if a == nil {
		return nil
	}
	if a.Endpoint == "" {
		return c.errAt("archive.endpoint", "missing", `set the S3 API host:port, e.g. "127.0.0.1:9000"`)
	}
	if strings.Contains(a.Endpoint, "://") {
		return c.errAt("archive.endpoint", fmt.Sprintf("%q has a scheme", a.Endpoint), "give host:port only and set secure = true for https")
	}
	if a.Bucket == "" {
		return c.errAt("archive.bucket", "missing", "name the archive bucket")
	}
	if len(a.Recipients) == 0 && a.RecipientsFile == "" {
		return c.errAt("archive", "no recipients", `set recipients = ["age1..."] or recipients_file: archives are encrypted to these age public keys`)
	}
	switch a.LockMode {
	case "":
	case "COMPLIANCE", "GOVERNANCE":
		if a.LockDays <= 0 {
			return c.errAt("archive.lock_days", "missing or not positive while lock_mode is set", "set the retention period in days, e.g. lock_days = 365")
		}
	default:
		return c.errAt("archive.lock_mode", fmt.Sprintf("unknown value %q", a.LockMode), `use "COMPLIANCE" or "GOVERNANCE", or omit it for no object lock`)
	}
	if a.LockDays < 0 {
		return c.errAt("archive.lock_days", "negative", "use a positive number of days")
	}
	if a.PartSizeMB < 0 || (a.PartSizeMB > 0 && a.PartSizeMB < 5) || a.PartSizeMB > 5120 {
		return c.errAt("archive.part_size_mb", fmt.Sprintf("%d is out of range", a.PartSizeMB), "use 5 to 5120 (S3 multipart limits), or omit for 16")
	}
	return nil
}

func (c *Config) validateNotify() error {
	n := c.Notify
	for _, w := range []struct {
		key string
		w   *Webhook
	}{{"notify.webhook", n.Webhook}, {"notify.slack", n.Slack}} {
		if w.w != nil && w.w.URL == "" && w.w.URLFile == "" {
			return c.errAt(w.key+".url", "missing", "set url, or url_file naming a 0600 file that holds the URL")
		}
	}
	if s := n.SMTP; s != nil {
		if s.Host == "" {
			return c.errAt("notify.smtp.host", "missing", "set the mail relay host")
		}
		if s.From == "" {
			return c.errAt("notify.smtp.from", "missing", "set the sender address")
		}
		if len(s.To) == 0 {
			return c.errAt("notify.smtp.to", "missing", `set the recipients, e.g. to = ["ops@example.org"]`)
		}
		switch s.TLS {
		case "", "none", "starttls", "tls":
		default:
			return c.errAt("notify.smtp.tls", fmt.Sprintf("unknown value %q", s.TLS), `use "none", "starttls" or "tls"`)
		}
	}
	if n.Retries < 0 || n.Retries > 20 {
		return c.errAt("notify.retries", fmt.Sprintf("%d is out of range", n.Retries), "use 1 to 20 (omit it for the default, 4)")
	}
	if t := n.Telegram; t != nil {
		if t.TokenFile == "" {
			return c.errAt("notify.telegram.token_file", "missing", "point it at a 0600 file holding the bot token")
		}
		if t.ChatID == "" {
			return c.errAt("notify.telegram.chat_id", "missing", "set the chat ID the bot posts to")
		}
	}
	return nil
}

// validate checks the structure of the configuration (required keys, enums, DSN syntax).
// Environment checks (files, permissions, reachability) are in Check.
func (c *Config) validate() error {
	if c.Repository.URL == "" {
		return c.errAt("repository.url", "missing", `set it to a restic repository, e.g. url = "/var/backups/dhis2-life" or "s3:http://127.0.0.1:9000/bucket/hmis"`)
	}
	if c.Repository.PasswordFile == "" {
		return c.errAt("repository.password_file", "missing", "point it at a 0600 file holding the repository password")
	}
	if d := c.Repository.OutageTimeout.Duration; d < time.Second {
		return c.errAt("repository.outage_timeout", fmt.Sprintf("%s is too short", d), `use a duration of a few minutes such as "15m" (the default)`)
	}
	if len(c.Instances) == 0 {
		return &Error{File: c.Path, Key: "instances", Msg: "no [instances.NAME] table", Fix: "add one per DHIS2 instance, see `dhis2-life config example`"}
	}
	for _, name := range c.InstanceNames() {
		in := c.Instances[name]
		k := "instances." + name
		if !validName.MatchString(name) {
			return c.errAt(k, fmt.Sprintf("invalid instance name %q", name), "use letters, digits, '-', '_' and '.' only, starting with a letter or digit")
		}
		if in.Database == "" {
			return c.errAt(k+".database", "missing", `set the DHIS2 database DSN, e.g. "postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable"`)
		}
		if err := checkDSN(in.Database); err != nil {
			return c.errAt(k+".database", err.Error(), "use postgres://user@host:port/db?sslmode=... and keep the password in database_password_file or ~/.pgpass")
		}
		if in.AdminDatabase != "" {
			if err := checkDSN(in.AdminDatabase); err != nil {
				return c.errAt(k+".admin_database", err.Error(), "use postgres://postgres@host:port/postgres and keep the password in admin_password_file or ~/.pgpass")
			}
		}
		if in.DHIS2Home == "" {
			return c.errAt(k+".dhis2_home", "missing", `set the DHIS2_HOME directory holding dhis.conf and files/, e.g. "/opt/dhis2"`)
		}
		if err := c.validateCluster(k, in); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(c.Targets) {
		t := c.Targets[name]
		k := "targets." + name
		if !validName.MatchString(name) {
			return c.errAt(k, fmt.Sprintf("invalid target name %q", name), "use letters, digits, '-', '_' and '.' only, starting with a letter or digit")
		}
		if _, ok := c.Instances[t.Instance]; !ok {
			return c.errAt(k+".instance", fmt.Sprintf("unknown instance %q", t.Instance), "name one of the [instances.NAME] tables")
		}
		if t.Database == "" {
			return c.errAt(k+".database", "missing", "set the clone's database DSN")
		}
		if err := checkDSN(t.Database); err != nil {
			return c.errAt(k+".database", err.Error(), "use postgres://user@host:port/db")
		}
		if t.App != nil {
			if t.App.DHIS2Home == "" {
				t.App.DHIS2Home = t.DHIS2Home
			}
			if err := c.validateSlot(k+".app", t.App); err != nil {
				return err
			}
		}
		switch t.Profile {
		case "staging", "training":
		default:
			return c.errAt(k+".profile", fmt.Sprintf("unknown profile %q", t.Profile), `use "staging" or "training"`)
		}
		if err := c.validatePII(k, t); err != nil {
			return err
		}
	}
	if err := c.validateRetention("retention", c.Retention); err != nil {
		return err
	}
	for _, name := range c.InstanceNames() {
		if err := c.validateRetention("instances."+name+".retention", c.Instances[name].Retention); err != nil {
			return err
		}
	}
	if err := c.validateArchive(); err != nil {
		return err
	}
	for _, s := range []struct{ key, spec string }{
		{"schedule.snapshot", c.Schedule.Snapshot},
		{"schedule.verify", c.Schedule.Verify},
		{"schedule.retention", c.Schedule.Retention},
		{"schedule.clone_ttl", c.Schedule.CloneTTL},
		{"schedule.clone_refresh", c.Schedule.CloneFresh},
	} {
		if s.spec == "" {
			continue
		}
		if _, err := cron.ParseStandard(s.spec); err != nil {
			return c.errAt(s.key, fmt.Sprintf("invalid schedule %q: %v", s.spec, err), `use 5 cron fields ("0 2 * * *") or a descriptor ("@daily", "@every 6h")`)
		}
	}
	if err := c.validateNotify(); err != nil {
		return err
	}
	if err := c.validateWAL(); err != nil {
		return err
	}
	switch c.Schedule.Overlap {
	case "wait", "skip":
	default:
		return c.errAt("schedule.overlap", fmt.Sprintf("unknown value %q", c.Schedule.Overlap), `use "wait" or "skip"`)
	}
	switch c.Tuning.Compression {
	case "", "auto", "off", "fastest", "better", "max":
	default:
		return c.errAt("tuning.compression", fmt.Sprintf("unknown value %q", c.Tuning.Compression), `use "auto", "fastest", "better", "max" or "off"`)
	}
	switch c.Tuning.IncrementalCompression {
	case "", "auto", "off", "fastest", "better", "max":
	default:
		return c.errAt("tuning.incremental_compression", fmt.Sprintf("unknown value %q", c.Tuning.IncrementalCompression), `use "auto", "fastest", "better", "max" or "off"`)
	}
	if c.Tuning.RestoreJobs < 1 || c.Tuning.RestoreJobs > 64 {
		return c.errAt("tuning.restore_jobs", fmt.Sprintf("%d is out of range", c.Tuning.RestoreJobs), "use 1 to 64")
	}
	if c.Tuning.RestoreSpoolMB < -1 {
		return c.errAt("tuning.restore_spool_mb", fmt.Sprintf("%d is out of range", c.Tuning.RestoreSpoolMB), "use -1 (no spooling) or MiB such as 1024")
	}
	if c.Tuning.ResticMemoryLimitMB < -1 {
		return c.errAt("tuning.restic_memory_limit_mb", fmt.Sprintf("%d is out of range", c.Tuning.ResticMemoryLimitMB), "use -1 for no limit, or MiB such as 192")
	}
	return nil
}

// checkDSN checks that a PostgreSQL DSN parses and carries no password.
func checkDSN(dsn string) error {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return fmt.Errorf("DSN does not parse: %v", strings.ReplaceAll(err.Error(), dsn, "<dsn>"))
		}
		if _, has := u.User.Password(); has || u.Query().Has("password") {
			return fmt.Errorf("DSN contains a password (secrets must not be in the config)")
		}
		if strings.Trim(u.Path, "/") == "" {
			return fmt.Errorf("DSN names no database")
		}
		return nil
	}
	if strings.Contains(dsn, "password=") {
		return fmt.Errorf("DSN contains a password (secrets must not be in the config)")
	}
	if !strings.Contains(dsn, "dbname=") {
		return fmt.Errorf("DSN names no database (dbname=)")
	}
	return nil
}

func (c *Config) validateCluster(k string, in *Instance) error {
	if cl := in.Cluster; cl != nil {
		k += ".cluster"
		switch cl.Kind {
		case "pgctl":
			if cl.DataDir == "" || !filepath.IsAbs(cl.DataDir) {
				return c.errAt(k+".data_dir", "missing or not absolute", `set the cluster's data directory, e.g. "/var/lib/postgresql/13/main"`)
			}
			if cl.BinDir == "" || !filepath.IsAbs(cl.BinDir) {
				return c.errAt(k+".bin_dir", "missing or not absolute", `set the cluster's server programs directory, e.g. "/usr/lib/postgresql/13/bin"`)
			}
		case "debian":
			if cl.Version == "" || cl.Name == "" {
				return c.errAt(k+".version", "version and name are required for kind = \"debian\"", `name the postgresql-common cluster as pg_lsclusters shows it, e.g. version = "13" and name = "main"`)
			}
		default:
			return c.errAt(k+".kind", fmt.Sprintf("unknown kind %q", cl.Kind), `use "pgctl" (data_dir + bin_dir) or "debian" (version + name)`)
		}
	}
	if h := in.App; h != nil && h.URL != "" {
		if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c.errAt(k+".app.url", fmt.Sprintf("%q is not an http(s) URL", h.URL), `use DHIS2's base URL, e.g. "http://127.0.0.1:8080"`)
		}
	}
	return c.validateSlots(k, in)
}
