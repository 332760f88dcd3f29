package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where the configuration is read from when neither --config nor
// DHIS2_LIFE_CONFIG names a file.
const DefaultPath = "/etc/dhis2-life/dhis2-life.toml"

// Config is the whole configuration file.
type Config struct {
	// Path is the file the configuration was read from (not a TOML key).
	Path string `toml:"-"`

	StateDir   string               `toml:"state_dir"`
	Repository Repository           `toml:"repository"`
	Instances  map[string]*Instance `toml:"instances"`
	Targets    map[string]*Target   `toml:"targets"`
	Retention  *Retention           `toml:"retention"`
	Archive    *Archive             `toml:"archive"`
	Schedule   Schedule             `toml:"schedule"`
	Daemon     Daemon               `toml:"daemon"`
	Notify     Notify               `toml:"notify"`
	Tuning     Tuning               `toml:"tuning"`

	meta toml.MetaData
	data []byte // the parsed text, for LineOf
}

// MinRestic is the oldest restic dhis2-life accepts (--stdin-from-command needs 0.17;
// 0.18.1 fixed hangs on failed uploads); ResticVersion is the one scripts/deps.sh builds
// and the tests run.
const (
	MinRestic     = "0.18.1"
	ResticVersion = "0.19.1"
)

// Repository is the restic repository that holds every snapshot set.
type Repository struct {
	// URL is any restic repository URL ("s3:http://host:9000/bucket/prefix") or a local path.
	URL string `toml:"url"`
	// PasswordFile holds the repository password (mode 0600 or stricter).
	PasswordFile string `toml:"password_file"`
	// EnvFile optionally holds KEY=VALUE lines (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...)
	// passed to restic and the S3 client. Mode 0600 or stricter.
	EnvFile string `toml:"env_file"`
	// Restic is the restic binary (default: "restic" on PATH).
	Restic string `toml:"restic"`
	// Timeout bounds every restic call that is not a backup or restore (default 10m).
	Timeout Duration `toml:"timeout"`
	// OutageTimeout stops any restic call, backups and restores included, once the
	// repository has failed every retried request for this long (default 15m, restic's own
	// per-request retry limit), so a dead endpoint fails a job with a clear error.
	OutageTimeout Duration `toml:"outage_timeout"`
}

// Instance is one DHIS2 instance on this host.
type Instance struct {
	Name string `toml:"-"`
	// Database is the instance's PostgreSQL DSN (URL or key=value form), without a password;
	// passwords come from PGPASSFILE or DatabasePasswordFile.
	Database string `toml:"database"`
	// DatabasePasswordFile optionally holds the password for Database (mode 0600).
	DatabasePasswordFile string `toml:"database_password_file"`
	// DHIS2Home holds dhis.conf and files/.
	DHIS2Home string `toml:"dhis2_home"`
	// AdminDatabase is an optional superuser DSN used for CREATE/DROP DATABASE, extensions and
	// restores on the same server.
	AdminDatabase string `toml:"admin_database"`
	// AdminPasswordFile optionally holds the password for AdminDatabase (mode 0600).
	AdminPasswordFile string `toml:"admin_password_file"`
	// PGBinDir optionally names the directory of the PostgreSQL client programs (pg_dump)
	// used for this instance; default: /usr/lib/postgresql/MAJOR/bin of the server's major
	// version, then PATH.
	PGBinDir string `toml:"pg_bin_dir"`
	// ExcludeAudit opts in to excluding the data of DHIS2's audit tables.
	ExcludeAudit bool `toml:"exclude_audit"`
	// ExcludeTableData lists extra table name patterns (shell glob) whose data is not dumped.
	ExcludeTableData []string `toml:"exclude_table_data"`
	// Retention overrides the top-level [retention] for this instance.
	Retention *Retention `toml:"retention"`
	// RPO is the age after which the newest good snapshot counts as too old (status exit code).
	RPO Duration `toml:"rpo"`
	// DrillMaxAge is the age after which the newest successful drill counts as too old.
	DrillMaxAge Duration `toml:"drill_max_age"`
	// WAL turns on continuous WAL archiving and base backups (point-in-time recovery).
	WAL *WAL `toml:"wal"`
	// Cluster says how upgrades control the instance's PostgreSQL cluster (nil = not configured).
	Cluster *Cluster `toml:"cluster"`
	// App holds the hooks that stop, start and health-check the DHIS2 app (nil = not configured).
	App *AppHooks `toml:"app"`
	// OS lists what `upgrade os prepare|verify` captures and checks besides the defaults.
	OS *OSChecks `toml:"os"`
}

// OSChecks configures `dhis2-life upgrade os`: the services to capture and check, and extra
// configuration files to capture and diff.
type OSChecks struct {
	// Services are systemd units (or any names ServiceStatus/ServiceUnit understand).
	Services []string `toml:"services"`
	// ServiceStatus exits 0 when a service is up (sh -c, $DHIS2_LIFE_SERVICE; default
	// `systemctl is-active --quiet "$DHIS2_LIFE_SERVICE"`).
	ServiceStatus string `toml:"service_status"`
	// ServiceUnit prints a service's unit definition (default `systemctl cat "$DHIS2_LIFE_SERVICE"`).
	ServiceUnit string `toml:"service_unit"`
	// Files are more configuration files (or directories) to capture and diff.
	Files []string `toml:"files"`
}

// Cluster is how `dhis2-life upgrade postgres` controls an instance's PostgreSQL cluster.
type Cluster struct {
	// Kind is "pgctl" (DataDir + BinDir, controlled with pg_ctl) or "debian" (postgresql-common:
	// Version + Name, controlled with pg_ctlcluster).
	Kind string `toml:"kind"`
	// DataDir is the cluster's data directory (pgctl).
	DataDir string `toml:"data_dir"`
	// BinDir holds the cluster's server programs (pgctl); the new major's are the same path
	// with the version replaced.
	BinDir string `toml:"bin_dir"`
	// Version and Name name a postgresql-common cluster (debian), e.g. "13" and "main".
	Version string `toml:"version"`
	Name    string `toml:"name"`
	// RunAs is the OS user owning the cluster (default: the current user).
	RunAs string `toml:"run_as"`
}

// AppHooks control the DHIS2 app around an upgrade; the hooks run with sh -c.
type AppHooks struct {
	Stop  string `toml:"stop"`
	Start string `toml:"start"`
	// URL is DHIS2's base URL; health is URL + /api/system/ping answering 2xx.
	URL string `toml:"url"`
	// HealthTimeout bounds the wait for a 2xx from the health URL after start (default 2m).
	HealthTimeout Duration `toml:"health_timeout"`
	// DHIS2Home is the blue slot's DHIS2_HOME (default: the instance's dhis2_home).
	DHIS2Home string `toml:"dhis2_home"`
	// LogFile is the blue app's log, whose tail a failure report shows (optional).
	LogFile string `toml:"log_file"`
	// Green is the second app slot of blue-green DHIS2 upgrades (nil = not configured).
	Green *AppSlot `toml:"green"`
	// Proxy switches users between the slots: "nginx" (UpstreamFile + Nginx) or "hook"
	// (ProxyHook); "" = no proxy (DHIS2 upgrades refuse to run).
	Proxy string `toml:"proxy"`
	// UpstreamFile is the nginx include file dhis2-life rewrites with the live slot's
	// `server host:port;` line (inside the site's upstream block).
	UpstreamFile string `toml:"upstream_file"`
	// Nginx is the nginx command with its options (default "nginx"); dhis2-life appends -t
	// and -s reload.
	Nginx string `toml:"nginx"`
	// ProxyHook switches a non-nginx proxy (sh -c; env DHIS2_LIFE_SLOT = blue|green and
	// DHIS2_LIFE_UPSTREAM = host:port).
	ProxyHook string `toml:"proxy_hook"`
	// ProxyURL is the public URL through the proxy; after a switch it must report the new
	// version (default: none, only the slot itself is checked).
	ProxyURL string `toml:"proxy_url"`
	// MaintenanceUpstream (host:port) serves a maintenance page: the proxy points there from
	// blue's stop until the switch to green, or back to blue (default: none, users get the
	// proxy's error page while blue is stopped).
	MaintenanceUpstream string `toml:"maintenance_upstream"`
}

// AppSlot is a second DHIS2 app (Tomcat, Jetty, systemd unit, container) driven by hooks. The
// hooks run with sh -c and get DHIS2_HOME, DHIS2_LIFE_WAR (the WAR to run) and
// DHIS2_LIFE_SLOT in their environment.
type AppSlot struct {
	Stop  string `toml:"stop"`
	Start string `toml:"start"`
	// URL is the slot's own base URL (not through the proxy).
	URL string `toml:"url"`
	// DHIS2Home is the slot's DHIS2_HOME; dhis2-life writes its dhis.conf.
	DHIS2Home string `toml:"dhis2_home"`
	// Database is the slot's database DSN (default: the instance's database name with
	// "_green" on the same server).
	Database string `toml:"database"`
	// LogFile is the slot's app log, whose tail a failure report shows (optional).
	LogFile string `toml:"log_file"`
	// HealthTimeout bounds the wait for the slot's health after start (default 5m: migrations).
	HealthTimeout Duration `toml:"health_timeout"`
}

// Target is a clone target (staging or training copy of an instance).
type Target struct {
	Name      string `toml:"-"`
	Instance  string `toml:"instance"`
	Database  string `toml:"database"`
	DHIS2Home string `toml:"dhis2_home"`
	Profile   string `toml:"profile"` // staging | training
	// DatabasePasswordFile optionally holds the password of Database's role (mode 0600); it is
	// also written as connection.password into the clone's dhis.conf.
	DatabasePasswordFile string   `toml:"database_password_file"`
	TTL                  Duration `toml:"ttl"`
	BaseURL              string   `toml:"base_url"`
	ScrubSQL             []string `toml:"scrub_sql"`
	BeforeHook           []string `toml:"before_hook"`
	AfterHook            []string `toml:"after_hook"`
	// HookTimeout bounds each hook (default 5m).
	HookTimeout Duration `toml:"hook_timeout"`
	// KeepAccounts stay usable on a training clone, with the password from KeepPasswordFile.
	KeepAccounts     []string `toml:"keep_accounts"`
	KeepPasswordFile string   `toml:"keep_password_file"`
	// Template keeps a restored, scrubbed template database per snapshot set for fast repeats.
	Template bool `toml:"template"`
	// App is the staging slot `upgrade dhis2 rehearse` starts the new WAR in (nil = none).
	App *AppSlot `toml:"app"`
	// PII is "pseudonymise" or "keep" (default: pseudonymise for training, keep for staging).
	PII string `toml:"pii"`
	// PIIKeepAttributes are attribute/data element uids left as they are; PIIExtraAttributes
	// are pseudonymised whatever their value type.
	PIIKeepAttributes  []string `toml:"pii_keep_attributes"`
	PIIExtraAttributes []string `toml:"pii_extra_attributes"`
}

// Retention is a GFS retention policy.
type Retention struct {
	KeepLast    int      `toml:"keep_last"`
	KeepDaily   int      `toml:"keep_daily"`
	KeepWeekly  int      `toml:"keep_weekly"`
	KeepMonthly int      `toml:"keep_monthly"`
	KeepYearly  int      `toml:"keep_yearly"`
	KeepWithin  Duration `toml:"keep_within"`
	Archive     []string `toml:"archive"`
	// PruneSchedule is a cron spec for `restic prune` (expensive), e.g. "0 6 * * 0".
	PruneSchedule string `toml:"prune_schedule"`
}

// Archive is the object-locked archive tier.
type Archive struct {
	Endpoint       string   `toml:"endpoint"`
	Secure         bool     `toml:"secure"`
	Bucket         string   `toml:"bucket"`
	Prefix         string   `toml:"prefix"`
	Region         string   `toml:"region"`
	Recipients     []string `toml:"recipients"`
	RecipientsFile string   `toml:"recipients_file"`
	LockMode       string   `toml:"lock_mode"`
	LockDays       int      `toml:"lock_days"`
	StorageClass   string   `toml:"storage_class"`
	// PartSizeMB bounds multipart upload parts (default 16).
	PartSizeMB int `toml:"part_size_mb"`
}

// Schedule holds robfig/cron specs per job.
type Schedule struct {
	Snapshot   string `toml:"snapshot"`
	Verify     string `toml:"verify"`
	Retention  string `toml:"retention"`
	CloneTTL   string `toml:"clone_ttl"`
	CloneFresh string `toml:"clone_refresh"`
	// BaseBackup is the cron spec of base backups of instances with WAL archiving.
	BaseBackup string `toml:"base_backup"`
	// Overlap is what happens when a job would overlap another of the same instance:
	// "wait" (default) or "skip".
	Overlap string `toml:"overlap"`
}

// Daemon configures `dhis2-life daemon`.
type Daemon struct {
	MetricsListen string `toml:"metrics_listen"`
	TextfileDir   string `toml:"textfile_dir"`
	// StopTimeout is how long SIGTERM waits for a running job to finish before cancelling it
	// (default 10m).
	StopTimeout Duration `toml:"stop_timeout"`
	// CheckInterval is how often the daemon checks RPO and drill age limits (default 5m).
	CheckInterval Duration `toml:"check_interval"`
}

// Notify holds the alert channels.
type Notify struct {
	Webhook  *Webhook  `toml:"webhook"`
	SMTP     *SMTP     `toml:"smtp"`
	Slack    *Webhook  `toml:"slack"`
	Telegram *Telegram `toml:"telegram"`
	// Interval is the minimum time between two alerts for the same problem (default 6h).
	Interval Duration `toml:"interval"`
	// Retries is how often a failed delivery is retried, with doubling backoff (default 4).
	Retries int `toml:"retries"`
	// RetryBackoff is the first retry's delay (default 5s).
	RetryBackoff Duration `toml:"retry_backoff"`
	// Timeout bounds one delivery attempt (default 20s).
	Timeout Duration `toml:"timeout"`
}

// Webhook is an HTTP endpoint receiving JSON (generic webhook or Slack incoming webhook).
type Webhook struct {
	URL     string `toml:"url"`
	URLFile string `toml:"url_file"`
}

// SMTP is a send-only mail relay.
type SMTP struct {
	Host         string   `toml:"host"`
	Port         int      `toml:"port"`
	From         string   `toml:"from"`
	To           []string `toml:"to"`
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	TLS          string   `toml:"tls"` // none | starttls | tls
}

// Telegram is a Telegram bot.
type Telegram struct {
	TokenFile string `toml:"token_file"`
	ChatID    string `toml:"chat_id"`
	APIURL    string `toml:"api_url"`
}

// EffectiveIncrementalCompression is the --compression of a set taken when the instance
// already has one: IncrementalCompression, else "max" when Compression is unset or "auto",
// else Compression.
func (t Tuning) EffectiveIncrementalCompression() string {
	switch {
	case t.IncrementalCompression != "":
		return t.IncrementalCompression
	case t.Compression == "" || t.Compression == "auto":
		return "max"
	}
	return t.Compression
}

// Tuning holds performance knobs proven by `make bench`.
type Tuning struct {
	// RestoreJobs is the parallelism of post-data (index/constraint) builds (default 2).
	RestoreJobs int `toml:"restore_jobs"`
	// OrderedTables adds "table=col1,col2" ordering rules to the built-in DHIS2 ones.
	OrderedTables []string `toml:"ordered_tables"`
	// Compression is restic's --compression (auto|fastest|better|max|off; default auto).
	Compression string `toml:"compression"`
	// IncrementalCompression is restic's --compression for a set taken when the catalogue
	// already holds a set of the instance: restic compresses only the blobs it adds, so a
	// daily set pays the stronger level on a few MB ("" = "max" when Compression is unset
	// or "auto", else Compression).
	IncrementalCompression string `toml:"incremental_compression"`
	// PackSizeMB is restic's --pack-size (default restic's).
	PackSizeMB int `toml:"pack_size_mb"`
	// RestoreSpoolMB bounds the temporary file a restore may spool one table to so that a
	// second connection loads it while the stream goes on (default 1024 when unset; -1 =
	// load one table at a time straight from the stream).
	RestoreSpoolMB int `toml:"restore_spool_mb"`
	// ResticMemoryLimitMB is a soft memory limit (GOMEMLIMIT) for restic processes in MiB
	// (default DefaultResticMemoryLimitMB when unset; -1 = none).
	ResticMemoryLimitMB int `toml:"restic_memory_limit_mb"`
	// TempDir holds temporary files (default state_dir/tmp).
	TempDir string `toml:"temp_dir"`
}

// DefaultResticMemoryLimitMB is restic's soft memory limit (GOMEMLIMIT, MiB) when
// tuning.restic_memory_limit_mb is unset, chosen from the measurement in bench/README.md:
// it keeps restic's peak well under 256 MB on a 1.8 GiB stream at no measurable slowdown.
const DefaultResticMemoryLimitMB = 192

// Duration is a time.Duration written in TOML as a string like "26h" or "7d".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts Go durations plus a "d" (day)
// unit, e.g. "36h", "7d", "1d12h".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// ParseDuration parses a non-negative Go duration with an extra leading "d" unit for days:
// "90s", "36h", "7d", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid duration %q (use e.g. 36h, 7d, 1d12h)", s)
	s = strings.TrimSpace(s)
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil || days < 0 || days > 100000 || !isDigits(s[:i]) {
			return 0, bad
		}
		total = time.Duration(days) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return total, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 || strings.HasPrefix(s, "+") {
		return 0, bad
	}
	return total + v, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// ResolvePath returns the configuration file to use: the --config flag value when set, else
// the DHIS2_LIFE_CONFIG environment variable when set, else DefaultPath.
func ResolvePath(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("DHIS2_LIFE_CONFIG"); env != "" {
		return env
	}
	return DefaultPath
}

// Load reads and parses the configuration at path, applies defaults and validates the
// structure (not the environment: see Check). Errors name the file, line and key.
func Load(path string) (*Config, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxConfigBytes {
		return nil, sizeError(path, fi.Size()) // refused unread
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPathErr(err)),
			Fix: "create one with `dhis2-life config example > " + path + "` or pass --config FILE"}
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return Parse(path, data)
}

// Parse parses configuration text; path is used in error messages and to resolve relative paths.
// Errors are *Error values naming the file, line and key.
func Parse(path string, data []byte) (*Config, error) {
	if err := checkSize(path, data); err != nil {
		return nil, err
	}
	c := &Config{Path: path, data: data}
	// A first pass into a generic map separates syntax errors from type and value errors.
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, tomlError(path, err, "fix the TOML syntax (strings need double quotes, tables [name])")
	}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, tomlError(path, err, "correct the value: see `dhis2-life config example` for each key's type")
	}
	c.meta = md
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, &Error{File: path, Line: c.LineOf(k), Key: k, Msg: "unknown key",
			Fix: "remove it or check its spelling against `dhis2-life config example`"}
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Bounds of a configuration: a real one is a few KB with a handful of instances. Beyond these
// the file is a mistake (or hostile), and parsing and checking it would take minutes and
// gigabytes.
const (
	MaxConfigBytes = 1 << 20
	MaxInstances   = 200
)

// instanceHeader matches a table header [instances.NAME] (not its sub-tables).
var instanceHeader = regexp.MustCompile(`(?m)^[ \t]*\[[ \t]*instances[ \t]*\.[ \t]*("[^"\n]*"|'[^'\n]*'|[A-Za-z0-9_-]+)[ \t]*\]`)

func sizeError(path string, size int64) error {
	return &Error{File: path, Msg: fmt.Sprintf("config is %d bytes; dhis2-life reads at most %d", size, MaxConfigBytes),
		Fix: "check that --config names the dhis2-life config file; split very large setups into one config per host"}
}

// checkSize refuses configurations beyond MaxConfigBytes or MaxInstances before parsing.
func checkSize(path string, data []byte) error {
	if len(data) > MaxConfigBytes {
		return sizeError(path, int64(len(data)))
	}
	if n := len(instanceHeader.FindAllIndex(data, MaxInstances+1)); n > MaxInstances {
		return &Error{File: path, Key: "instances", Msg: fmt.Sprintf("more than %d [instances.NAME] tables", MaxInstances),
			Fix: fmt.Sprintf("configure at most %d instances per config (one dhis2-life per host, one config each)", MaxInstances)}
	}
	return nil
}

// tomlPrefix matches the location prefix of errors the TOML decoder formats itself.
var tomlPrefix = regexp.MustCompile(`^toml: (?:line (\d+) )?(?:\(last key "([^"]*)"\))?:?\s*`)

// tomlError converts a BurntSushi/toml error into an *Error with line and key.
func tomlError(path string, err error, fix string) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message, Fix: fix}
	}
	e := &Error{File: path, Msg: err.Error(), Fix: fix}
	if m := tomlPrefix.FindStringSubmatch(e.Msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Key = m[2]
		e.Msg = strings.TrimPrefix(e.Msg, m[0])
	}
	return e
}

func (c *Config) applyDefaults() {
	if c.StateDir == "" {
		c.StateDir = "/var/lib/dhis2-life"
	}
	c.StateDir = c.abs(c.StateDir)
	if c.Repository.Restic == "" {
		c.Repository.Restic = "restic"
	}
	if c.Repository.Timeout.Duration == 0 {
		c.Repository.Timeout.Duration = 10 * time.Minute
	}
	if c.Repository.OutageTimeout.Duration == 0 {
		c.Repository.OutageTimeout.Duration = 15 * time.Minute
	}
	if c.Repository.PasswordFile != "" {
		c.Repository.PasswordFile = c.abs(c.Repository.PasswordFile)
	}
	if c.Repository.EnvFile != "" {
		c.Repository.EnvFile = c.abs(c.Repository.EnvFile)
	}
	if c.Repository.URL != "" && !strings.Contains(c.Repository.URL, ":") {
		c.Repository.URL = c.abs(c.Repository.URL)
	}
	for name, in := range c.Instances {
		in.Name = name
		if in.DatabasePasswordFile != "" {
			in.DatabasePasswordFile = c.abs(in.DatabasePasswordFile)
		}
		if in.AdminPasswordFile != "" {
			in.AdminPasswordFile = c.abs(in.AdminPasswordFile)
		}
		if in.DHIS2Home != "" {
			in.DHIS2Home = c.abs(in.DHIS2Home)
		}
	}
	for name, t := range c.Targets {
		t.Name = name
		if t.HookTimeout.Duration == 0 {
			t.HookTimeout.Duration = 5 * time.Minute
		}
		t.DHIS2Home = c.abs(t.DHIS2Home)
		t.KeepPasswordFile = c.abs(t.KeepPasswordFile)
		t.DatabasePasswordFile = c.abs(t.DatabasePasswordFile)
	}
	if a := c.Archive; a != nil {
		a.RecipientsFile = c.abs(a.RecipientsFile)
		if a.PartSizeMB == 0 {
			a.PartSizeMB = 16
		}
	}
	for _, w := range []*Webhook{c.Notify.Webhook, c.Notify.Slack} {
		if w != nil {
			w.URLFile = c.abs(w.URLFile)
		}
	}
	if s := c.Notify.SMTP; s != nil {
		s.PasswordFile = c.abs(s.PasswordFile)
		if s.TLS == "" {
			s.TLS = "starttls"
		}
		if s.Port == 0 {
			s.Port = 587
			if s.TLS == "tls" {
				s.Port = 465
			}
		}
	}
	if t := c.Notify.Telegram; t != nil {
		t.TokenFile = c.abs(t.TokenFile)
		if t.APIURL == "" {
			t.APIURL = "https://api.telegram.org"
		}
	}
	c.Daemon.TextfileDir = c.abs(c.Daemon.TextfileDir)
	if c.Tuning.RestoreJobs == 0 {
		c.Tuning.RestoreJobs = 2
	}
	if c.Tuning.RestoreSpoolMB == 0 {
		c.Tuning.RestoreSpoolMB = 1024
	}
	if c.Tuning.ResticMemoryLimitMB == 0 {
		c.Tuning.ResticMemoryLimitMB = DefaultResticMemoryLimitMB
	}
	if c.Tuning.TempDir == "" {
		c.Tuning.TempDir = filepath.Join(c.StateDir, "tmp")
	}
	c.Tuning.TempDir = c.abs(c.Tuning.TempDir)
	if c.Notify.Interval.Duration == 0 {
		c.Notify.Interval.Duration = 6 * time.Hour
	}
	if c.Notify.Retries == 0 {
		c.Notify.Retries = 4
	}
	if c.Notify.RetryBackoff.Duration == 0 {
		c.Notify.RetryBackoff.Duration = 5 * time.Second
	}
	if c.Notify.Timeout.Duration == 0 {
		c.Notify.Timeout.Duration = 20 * time.Second
	}
	if c.Daemon.StopTimeout.Duration == 0 {
		c.Daemon.StopTimeout.Duration = 10 * time.Minute
	}
	if c.Daemon.CheckInterval.Duration == 0 {
		c.Daemon.CheckInterval.Duration = 5 * time.Minute
	}
	if c.Schedule.Overlap == "" {
		c.Schedule.Overlap = "wait"
	}
	c.walDefaults()
}

// abs resolves p relative to the config file's directory.
func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

// InstanceNames returns the configured instance names, sorted.
func (c *Config) InstanceNames() []string {
	names := make([]string, 0, len(c.Instances))
	for n := range c.Instances {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Instance returns the named instance; an empty name selects the only instance when exactly
// one is configured.
func (c *Config) Instance(name string) (*Instance, error) {
	if name == "" {
		if len(c.Instances) == 1 {
			for _, in := range c.Instances {
				return in, nil
			}
		}
		return nil, fmt.Errorf("%d instances are configured (%s): choose one with --instance NAME",
			len(c.Instances), strings.Join(c.InstanceNames(), ", "))
	}
	in, ok := c.Instances[name]
	if !ok {
		return nil, fmt.Errorf("unknown instance %q: configured instances are %s", name, strings.Join(c.InstanceNames(), ", "))
	}
	return in, nil
}

// RetentionFor returns the effective retention policy of an instance (nil when none).
func (c *Config) RetentionFor(instance string) *Retention {
	if in, ok := c.Instances[instance]; ok && in.Retention != nil {
		return in.Retention
	}
	return c.Retention
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
