package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = `state_dir = "/tmp/x"
[repository]
url = "/srv/repo"
password_file = "/etc/dhis2-life/repository.pass"

[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable"
dhis2_home = "/opt/dhis2"
`

func TestExampleParses(t *testing.T) {
	c, err := Parse("example.toml", []byte(Example()))
	if err != nil {
		t.Fatalf("Example() does not parse: %v", err)
	}
	if c.Repository.URL != "/var/backups/dhis2-life/repo" {
		t.Errorf("repository.url = %q", c.Repository.URL)
	}
	in, err := c.Instance("")
	if err != nil || in.Name != "hmis" {
		t.Fatalf("Instance(\"\") = %v, %v", in, err)
	}
	if c.Retention == nil || c.Retention.KeepDaily != 7 || c.Schedule.Snapshot != "0 2 * * *" || c.Daemon.MetricsListen != "127.0.0.1:9469" {
		t.Errorf("unexpected example values: %+v %+v %+v", c.Retention, c.Schedule, c.Daemon)
	}
	if len(c.Targets) != 0 || c.Archive != nil {
		t.Errorf("staging target and archive should be commented out")
	}
}

// TestExampleDocumentsEveryKey walks the Config struct's TOML tags and checks each key appears
// in Example(), commented or not.
func TestExampleDocumentsEveryKey(t *testing.T) {
	ex := Example()
	seen := map[reflect.Type]bool{}
	var walk func(rt reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Map || rt.Kind() == reflect.Slice {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || rt == reflect.TypeOf(Duration{}) || seen[rt] {
			return
		}
		seen[rt] = true
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			tag := f.Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Map {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(Duration{}) {
				walk(f.Type)
				continue
			}
			if !strings.Contains(ex, "\n"+tag+" = ") && !strings.Contains(ex, "# "+tag+" = ") {
				t.Errorf("%s.%s (%s) is not documented in Example()", rt.Name(), f.Name, tag)
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		line     int
		key      string
		contains string
	}{
		{"unknown key", minimal + "colour = \"blue\"\n", 9, "instances.hmis.colour", "unknown key"},
		{"unknown top-level table", minimal + "\n[retension]\nkeep_last = 3\n", 10, "retension", "unknown key"},
		{"missing repository url", strings.Replace(minimal, "url = \"/srv/repo\"\n", "", 1), 2, "repository.url", "missing"},
		{"missing database", strings.Replace(minimal, "database = \"postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable\"\n", "", 1), 6, "instances.hmis.database", "missing"},
		{"missing dhis2_home", strings.Replace(minimal, "dhis2_home = \"/opt/dhis2\"\n", "", 1), 6, "instances.hmis.dhis2_home", "missing"},
		{"password in URL DSN", strings.Replace(minimal, "dhis@", "dhis:secret@", 1), 7, "instances.hmis.database", "contains a password"},
		{"password in key=value DSN", strings.Replace(minimal, `"postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable"`, `"host=/run dbname=dhis2 password=x"`, 1), 7, "instances.hmis.database", "contains a password"},
		{"password in URL DSN query", strings.Replace(minimal, "sslmode=disable", "sslmode=disable&password=secret", 1), 7, "instances.hmis.database", "contains a password"},
		{"DSN without database", strings.Replace(minimal, "5432/dhis2?", "5432/?", 1), 7, "instances.hmis.database", "names no database"},
		{"bad profile", minimal + "\n[targets.staging]\ninstance = \"hmis\"\ndatabase = \"postgres://dhis@h/dhis2_staging\"\nprofile = \"prod\"\n", 13, "targets.staging.profile", `unknown profile "prod"`},
		{"bad pii", minimal + "\n[targets.t]\ninstance = \"hmis\"\ndatabase = \"postgres://dhis@h/t\"\nprofile = \"training\"\npii = \"mask\"\n", 14, "targets.t.pii", `unknown value "mask"`},
		{"bad pii uid", minimal + "\n[targets.t]\ninstance = \"hmis\"\ndatabase = \"postgres://dhis@h/t\"\nprofile = \"training\"\npii_keep_attributes = [\"w75KJ2mc4z\"]\n", 14, "targets.t.pii_keep_attributes", "not a DHIS2 uid"},
		{"pii uid kept and extra", minimal + "\n[targets.t]\ninstance = \"hmis\"\ndatabase = \"postgres://dhis@h/t\"\nprofile = \"training\"\npii_keep_attributes = [\"w75KJ2mc4zz\"]\npii_extra_attributes = [\"w75KJ2mc4zz\"]\n", 15, "targets.t.pii_extra_attributes", "both kept and extra"},
		{"target of unknown instance", minimal + "\n[targets.staging]\ninstance = \"sierra\"\ndatabase = \"postgres://dhis@h/s\"\nprofile = \"staging\"\n", 11, "targets.staging.instance", `unknown instance "sierra"`},
		{"syntax error", minimal + "[retention]\nkeep_last = = 3\n", 10, "", ""},
		{"unterminated string", "state_dir = \"/x\n[repository]\n", 1, "", ""},
		{"bad duration", minimal + "rpo = \"7x\"\n", 9, "instances.hmis.rpo", "invalid duration"},
		{"wrong type", minimal + "[retention]\nkeep_last = \"three\"\n", 10, "retention.keep_last", "incompatible types"},
		{"bad cron", minimal + "[schedule]\nsnapshot = \"0 25 * * *\"\n", 10, "schedule.snapshot", "invalid schedule"},
		{"bad overlap", minimal + "[schedule]\n\noverlap = \"queue\"\n", 11, "schedule.overlap", "unknown value"},
		{"bad archive class", minimal + "[retention]\narchive = [\"montly\"]\n", 10, "retention.archive", `unknown class "montly"`},
		{"archive without recipients", minimal + "[archive]\nendpoint = \"h:9000\"\nbucket = \"b\"\n", 9, "archive", "no recipients"},
		{"bad lock mode", minimal + "[archive]\nendpoint = \"h:9000\"\nbucket = \"b\"\nrecipients = [\"age1x\"]\nlock_mode = \"forever\"\n", 13, "archive.lock_mode", "unknown value"},
		{"bad instance name", strings.Replace(minimal, "[instances.hmis]", "[instances.\"hmis lab\"]", 1), 0, "instances.hmis lab", "invalid instance name"},
		{"bad restore_jobs", minimal + "[tuning]\nrestore_jobs = 100\n", 10, "tuning.restore_jobs", "out of range"},
		{"bad compression", minimal + "[tuning]\ncompression = \"zstd\"\n", 10, "tuning.compression", `unknown value "zstd"`},
		{"bad restic memory limit", minimal + "[tuning]\nrestic_memory_limit_mb = -2\n", 10, "tuning.restic_memory_limit_mb", "out of range"},
		{"bad incremental compression", minimal + "[tuning]\nincremental_compression = \"zstd\"\n", 10, "tuning.incremental_compression", `unknown value "zstd"`},
		{"bad cluster kind", minimal + "[instances.hmis.cluster]\nkind = \"systemd\"\n", 10, "instances.hmis.cluster.kind", `unknown kind "systemd"`},
		{"pgctl cluster without data_dir", minimal + "[instances.hmis.cluster]\nkind = \"pgctl\"\nbin_dir = \"/usr/lib/postgresql/13/bin\"\n", 0, "instances.hmis.cluster.data_dir", "missing"},
		{"debian cluster without name", minimal + "[instances.hmis.cluster]\nkind = \"debian\"\nversion = \"13\"\n", 0, "instances.hmis.cluster.version", "version and name"},
		{"bad app url", minimal + "[instances.hmis.app]\nurl = \"127.0.0.1:8080\"\n", 10, "instances.hmis.app.url", "not an http(s) URL"},
		{"outage_timeout too short", strings.Replace(minimal, "url = \"/srv/repo\"\n", "url = \"/srv/repo\"\noutage_timeout = \"10ms\"\n", 1), 4, "repository.outage_timeout", "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("/etc/dhis2-life/test.toml", []byte(tt.text))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *Error, got %T %v", err, err)
			}
			if ce.File != "/etc/dhis2-life/test.toml" {
				t.Errorf("file = %q", ce.File)
			}
			if tt.line != 0 && ce.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", ce.Line, tt.line, err)
			}
			if tt.key != "" && ce.Key != tt.key {
				t.Errorf("key = %q, want %q (%v)", ce.Key, tt.key, err)
			}
			if !strings.Contains(ce.Msg, tt.contains) {
				t.Errorf("msg = %q, want it to contain %q", ce.Msg, tt.contains)
			}
			if ce.Fix == "" {
				t.Errorf("no fix in %v", err)
			}
			if strings.Contains(err.Error(), "secret@") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{File: "/c.toml", Line: 3, Key: "repository.url", Msg: "missing", Fix: "set it"}
	if got, want := e.Error(), "/c.toml:3: repository.url: missing (set it)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e.Severity = SeverityWarning
	if !e.IsWarning() || !strings.Contains(e.Error(), ": warning: missing") {
		t.Errorf("warning not shown: %q", e.Error())
	}
}

func TestLineOf(t *testing.T) {
	text := `# top
state_dir = "/x"
[repository] # the repo
url = "/r"
[instances."hmis"]
database = "postgres://a@b/c"
[notify]
webhook.url = "http://x"
`
	tests := []struct {
		key  string
		line int
	}{
		{"state_dir", 2}, {"repository", 3}, {"repository.url", 4}, {"repository.password_file", 3},
		{"instances.hmis.database", 6}, {"instances.hmis.dhis2_home", 5}, {"notify.webhook.url", 8},
		{"daemon.metrics_listen", 0},
	}
	for _, tt := range tests {
		if got := lineOf([]byte(text), tt.key); got != tt.line {
			t.Errorf("lineOf(%q) = %d, want %d", tt.key, got, tt.line)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"7d", 7 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"36h", 36 * time.Hour, false},
		{"90s", 90 * time.Second, false},
		{"0d", 0, false},
		{" 2d ", 48 * time.Hour, false},
		{"1d30m", 24*time.Hour + 30*time.Minute, false},
		{"", 0, true},
		{"d", 0, true},
		{"7", 0, true},
		{"xd", 0, true},
		{"-1d", 0, true},
		{"-5m", 0, true},
		{"+1d", 0, true},
		{"1h2d", 0, true},
		{"1.5d", 0, true},
		{"7days", 0, true},
		{"forever", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want error", tt.in, got)
			} else if !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseDuration(%q) error %q does not quote the input", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestInstanceSelection(t *testing.T) {
	two := minimal + "\n[instances.sierra]\ndatabase = \"postgres://dhis@h/sl\"\ndhis2_home = \"/opt/sl\"\n"
	tests := []struct {
		name, text, ask, want, errHas string
	}{
		{"only one, empty name", minimal, "", "hmis", ""},
		{"only one, by name", minimal, "hmis", "hmis", ""},
		{"unknown", minimal, "x", "", `unknown instance "x"`},
		{"two, empty name", two, "", "", "2 instances are configured (hmis, sierra)"},
		{"two, by name", two, "sierra", "sierra", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			in, err := c.Instance(tt.ask)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want %q", err, tt.errHas)
				}
				return
			}
			if err != nil || in.Name != tt.want {
				t.Fatalf("got %v, %v; want %s", in, err, tt.want)
			}
		})
	}
}

func TestIncrementalCompression(t *testing.T) {
	for _, c := range []struct{ compression, incremental, want string }{
		{"", "", "max"}, {"auto", "", "max"}, {"off", "", "off"}, {"better", "", "better"},
		{"", "auto", "auto"}, {"off", "max", "max"}, {"max", "", "max"},
	} {
		if got := (Tuning{Compression: c.compression, IncrementalCompression: c.incremental}).EffectiveIncrementalCompression(); got != c.want {
			t.Errorf("compression %q, incremental_compression %q: %q, want %q", c.compression, c.incremental, got, c.want)
		}
	}
}

func TestDefaultsAndRelativePaths(t *testing.T) {
	text := strings.Replace(minimal, `"/etc/dhis2-life/repository.pass"`, `"repo.pass"`, 1)
	text = strings.Replace(text, `state_dir = "/tmp/x"`, ``, 1)
	c, err := Parse("/etc/d/c.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Repository.PasswordFile != "/etc/d/repo.pass" {
		t.Errorf("password_file = %q", c.Repository.PasswordFile)
	}
	if c.StateDir != "/var/lib/dhis2-life" || c.Tuning.TempDir != "/var/lib/dhis2-life/tmp" || c.Repository.Restic != "restic" ||
		c.Repository.Timeout.Duration != 10*time.Minute || c.Repository.OutageTimeout.Duration != 15*time.Minute || c.Tuning.RestoreJobs != 2 || c.Schedule.Overlap != "wait" || c.Notify.Interval.Duration != 6*time.Hour ||
		c.Tuning.ResticMemoryLimitMB != DefaultResticMemoryLimitMB {
		t.Errorf("defaults not applied: %+v", c)
	}
	// -1 turns restic's memory limit off and stays -1 (restic then gets no GOMEMLIMIT).
	off, err := Parse("/etc/d/c.toml", []byte(text+"\n[tuning]\nrestic_memory_limit_mb = -1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if off.Tuning.ResticMemoryLimitMB != -1 {
		t.Errorf("restic_memory_limit_mb = -1 became %d", off.Tuning.ResticMemoryLimitMB)
	}
}

func TestResolvePath(t *testing.T) {
	t.Setenv("DHIS2_LIFE_CONFIG", "")
	if got := ResolvePath(""); got != DefaultPath {
		t.Errorf("no flag, no env: %q", got)
	}
	t.Setenv("DHIS2_LIFE_CONFIG", "/env.toml")
	if got := ResolvePath(""); got != "/env.toml" {
		t.Errorf("env: %q", got)
	}
	if got := ResolvePath("/flag.toml"); got != "/flag.toml" {
		t.Errorf("flag: %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "no such file") || !strings.Contains(ce.Fix, "config example") {
		t.Fatalf("got %v", err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
	return path
}

func TestCheckSecretFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantErr string // "" = ok
	}{
		{"ok 0600", writeFile(t, filepath.Join(dir, "ok"), "s3cret\n", 0o600), ""},
		{"ok 0400", writeFile(t, filepath.Join(dir, "ro"), "s3cret", 0o400), ""},
		{"world readable", writeFile(t, filepath.Join(dir, "wr"), "s3cret", 0o644), "is mode 0644: run chmod 600 " + filepath.Join(dir, "wr")},
		{"group readable", writeFile(t, filepath.Join(dir, "gr"), "s3cret", 0o640), "is mode 0640"},
		{"empty", writeFile(t, filepath.Join(dir, "empty"), "", 0o600), "is empty"},
		{"missing", filepath.Join(dir, "nope"), "does not exist"},
		{"directory", dir, "is a directory"},
		{"unset", "", "is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSecretFile(tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var se *SecretFileError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "password file "+tt.path) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	if s, err := ReadSecretFile(filepath.Join(dir, "ok")); err != nil || s != "s3cret" {
		t.Errorf("ReadSecretFile = %q, %v", s, err)
	}
	if _, err := ReadSecretFile(writeFile(t, filepath.Join(dir, "nl"), "\n", 0o600)); err == nil {
		t.Errorf("ReadSecretFile of a lone newline succeeded")
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "wr")); err == nil {
		t.Errorf("ReadSecretFile of a 0644 file succeeded")
	}
}

// checkEnv builds a config in a temp dir with good files, then lets mutate break them.
func checkEnv(t *testing.T, extra string) (*Config, string) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "dhis2")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, "dhis.conf"), "connection.url = x\n", 0o600)
	writeFile(t, filepath.Join(dir, "repo.pass"), "pw\n", 0o600)
	// A fake restic on PATH.
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bin, "restic"), "#!/bin/sh\nexit 0\n", 0o755)
	t.Setenv("PATH", bin)
	text := `state_dir = "state"
[repository]
url = "/srv/repo"
password_file = "repo.pass"

[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable"
dhis2_home = "dhis2"
` + extra
	path := writeFile(t, filepath.Join(dir, "dhis2-life.toml"), text, 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	t.Run("all good", func(t *testing.T) {
		c, _ := checkEnv(t, "")
		calls := 0
		errs := c.Check(ctx, Probes{
			Repository: func(context.Context) error { calls++; return nil },
			Database:   func(_ context.Context, in *Instance) error { calls++; return nil },
		})
		if len(errs) != 0 || calls != 2 {
			t.Fatalf("errs %v, probe calls %d", errs, calls)
		}
	})
	t.Run("bad permissions and missing files, all reported", func(t *testing.T) {
		c, dir := checkEnv(t, "database_password_file = \"db.pass\"\n\n[notify.telegram]\ntoken_file = \"tg.token\"\nchat_id = \"1\"\n")
		writeFile(t, filepath.Join(dir, "repo.pass"), "pw\n", 0o644)
		os.Remove(filepath.Join(dir, "dhis2", "dhis.conf"))
		t.Setenv("PATH", t.TempDir())
		repoProbed := false
		errs := c.Check(ctx, Probes{Repository: func(context.Context) error { repoProbed = true; return nil }})
		want := []struct {
			key, msg, fix string
			line          int
			warn          bool
		}{
			{"repository.password_file", "password file " + filepath.Join(dir, "repo.pass") + " is mode 0644", "run chmod 600 " + filepath.Join(dir, "repo.pass"), 4, false},
			{"instances.hmis.database_password_file", "does not exist", "chmod 600", 9, false},
			{"instances.hmis.dhis2_home", "holds no dhis.conf", "DHIS2_HOME", 8, true},
			{"notify.telegram.token_file", "token file", "chmod 600", 12, false},
			{"repository.restic", "not found", "install restic", 2, false},
		}
		if len(errs) != len(want) {
			t.Fatalf("got %d problems, want %d: %v", len(errs), len(want), errs)
		}
		for i, w := range want {
			e := errs[i]
			if e.Key != w.key || !strings.Contains(e.Msg, w.msg) || !strings.Contains(e.Fix, w.fix) || e.Line != w.line || e.IsWarning() != w.warn || e.File != c.Path {
				t.Errorf("problem %d = %#v\nwant %+v", i, e, w)
			}
		}
		if fix := errs[len(errs)-1].Fix; !strings.Contains(fix, "scripts/deps.sh") || !strings.Contains(fix, MinRestic) || strings.Contains(fix, "apt-get") {
			t.Errorf("restic fix %q should name the version needed and scripts/deps.sh, not apt-get", fix)
		}
		if repoProbed {
			t.Errorf("repository probed despite an unusable password file")
		}
	})
	t.Run("state dir cannot be created", func(t *testing.T) {
		// Below a regular file nothing can be created, even by root (CI runs as root).
		c, dir := checkEnv(t, "")
		blocker := writeFile(t, filepath.Join(dir, "blocker"), "x", 0o600)
		c.StateDir = filepath.Join(blocker, "state")
		c.Tuning.TempDir = filepath.Join(c.StateDir, "tmp")
		errs := c.Check(ctx, Probes{})
		if len(errs) != 1 || errs[0].Key != "state_dir" || !strings.Contains(errs[0].Msg, "not a directory") {
			t.Fatalf("got %v", errs)
		}
	})
	t.Run("state dir is a file", func(t *testing.T) {
		c, dir := checkEnv(t, "")
		c.StateDir = writeFile(t, filepath.Join(dir, "f"), "x", 0o600)
		c.Tuning.TempDir = filepath.Join(c.StateDir, "tmp")
		errs := c.Check(ctx, Probes{})
		if len(errs) != 1 || errs[0].Key != "state_dir" || errs[0].Line != 1 || !strings.Contains(errs[0].Msg, "not a directory") {
			t.Fatalf("got %v", errs)
		}
	})
	t.Run("probe errors", func(t *testing.T) {
		c, _ := checkEnv(t, "\n[instances.sierra]\ndatabase = \"postgres://dhis@h/sl\"\ndhis2_home = \"dhis2\"\n")
		errs := c.Check(ctx, Probes{
			Repository: func(context.Context) error { return errors.New("wrong password or no key found") },
			Database: func(_ context.Context, in *Instance) error {
				if in.Name == "sierra" {
					return &Error{Msg: "connection refused", Fix: "start PostgreSQL"}
				}
				return nil
			},
		})
		if len(errs) != 2 {
			t.Fatalf("got %v", errs)
		}
		if e := errs[0]; e.Key != "repository.url" || e.Line != 3 || !strings.Contains(e.Msg, "wrong password") || e.Fix == "" {
			t.Errorf("repository probe error = %#v", e)
		}
		if e := errs[1]; e.Key != "instances.sierra.database" || e.Line != 11 || !strings.Contains(e.Msg, "connection refused") || e.Fix != "start PostgreSQL" {
			t.Errorf("database probe error = %#v", e)
		}
	})
	t.Run("archive classes without archive warn", func(t *testing.T) {
		c, _ := checkEnv(t, "\n[retention]\narchive = [\"monthly\"]\n")
		errs := c.Check(ctx, Probes{})
		if len(errs) != 1 || !errs[0].IsWarning() || errs[0].Key != "retention.archive" || errs[0].Line != 11 {
			t.Fatalf("got %v", errs)
		}
	})
}
