package sysunit_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/sysunit"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// build compiles dhis2-life into dir.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "dhis2-life")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/dhis2-life/dhis2-life/cmd/dhis2-life").CombinedOutput()
	if err != nil {
		t.Fatalf("building dhis2-life: %v\n%s", err, out)
	}
	return bin
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "dhis2-life.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitFromConfig checks the read-only/read-write split the config asks for.
func TestUnitFromConfig(t *testing.T) {
	dir := t.TempDir()
	sudo := filepath.Join(dir, "bin", "sudo")
	if err := os.MkdirAll(filepath.Dir(sudo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sudo, []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`state_dir = "/srv/d2l/state"
[repository]
url = "/srv/d2l/repo"
password_file = "/etc/dhis2-life/repository.pass"
[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2"
dhis2_home = "/home/dhis/config"
[targets.staging]
instance = "hmis"
database = "postgres://dhis@127.0.0.1:5432/dhis2_staging"
dhis2_home = "/srv/dhis2-clones/staging"
profile = "staging"
before_hook = [%q, "systemctl", "stop", "dhis2-staging"]
[daemon]
textfile_dir = "/var/lib/prometheus/node-exporter"
[tuning]
temp_dir = "/srv/d2l/state/tmp"
`, sudo))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	unit, sb, err := sysunit.Service(cfg, sysunit.Options{Bin: "/usr/bin/dhis2-life"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"User=dhis2-life",
		"ExecStart=/usr/bin/dhis2-life --config " + cfgPath + " daemon",
		"ProtectSystem=strict",
		"ProtectHome=read-only",
		"ReadOnlyPaths=" + dir + " /home/dhis/config",
		"ReadWritePaths=/srv/d2l/state /var/lib/prometheus/node-exporter /srv/d2l/repo /srv/dhis2-clones -/run/sudo",
		"#   dhis2-life ALL=(root) NOPASSWD: /usr/bin/systemctl stop dhis2-staging",
	}
	for _, w := range want {
		if !strings.Contains(unit, w+"\n") {
			t.Errorf("unit lacks %q:\n%s", w, unit)
		}
	}
	for _, bad := range []string{"NoNewPrivileges", "CapabilityBoundingSet", "PrivateTmp"} {
		if strings.Contains(unit, "\n"+bad+"=") {
			t.Errorf("unit with a sudo hook (and paths under /tmp) has %s", bad)
		}
	}
	if !sb.Sudo || len(sb.Warnings) == 0 {
		t.Errorf("sandbox: sudo %v, warnings %q", sb.Sudo, sb.Warnings)
	}

	// Without /home, /tmp or sudo the unit is as tight as it gets.
	cfg2, err := config.Parse("/etc/dhis2-life/dhis2-life.toml", []byte(`[repository]
url = "s3:http://127.0.0.1:9000/b/hmis"
password_file = "/etc/dhis2-life/repository.pass"
[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2"
dhis2_home = "/opt/dhis2"
`))
	if err != nil {
		t.Fatal(err)
	}
	unit, _, err = sysunit.Service(cfg2, sysunit.Options{Bin: "/usr/bin/dhis2-life"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
		"ReadOnlyPaths=/etc/dhis2-life /opt/dhis2", "ReadWritePaths=/var/lib/dhis2-life", "StateDirectory=dhis2-life"} {
		if !strings.Contains(unit, w+"\n") {
			t.Errorf("unit lacks %q:\n%s", w, unit)
		}
	}
	// A path systemd cannot name is refused, not mangled.
	cfg2.Instances["hmis"].DHIS2Home = "/opt/dhis 2"
	if _, _, err := sysunit.Service(cfg2, sysunit.Options{Bin: "/usr/bin/dhis2-life"}); err == nil || !strings.Contains(err.Error(), "/opt/dhis 2") {
		t.Errorf("path with a space: %v", err)
	}
}

// TestSystemdAnalyzeVerify writes the units with the CLI and has systemd check them.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is missing: apt-get install systemd (scripts/deps.sh does): %v", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "units")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, dir, `state_dir = "/srv/d2l/state"
[repository]
url = "/srv/d2l/repo"
password_file = "/etc/dhis2-life/repository.pass"
[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2"
dhis2_home = "/home/dhis/config"
[targets.staging]
instance = "hmis"
database = "postgres://dhis@127.0.0.1:5432/dhis2_staging"
dhis2_home = "/srv/dhis2-clones/staging"
profile = "staging"
[schedule]
snapshot = "0 2 * * *"
verify = "0 4 * * 0"
clone_refresh = "@every 6h"
`)
	binary := build(t, dir)
	cmd := exec.Command(binary, "systemd", "unit", "--config", cfgPath, "--output", out, "--bin", binary)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if b, err := cmd.Output(); err != nil {
		t.Fatalf("systemd unit: %v\n%s%s", err, b, stderr.String())
	}
	files, _ := filepath.Glob(filepath.Join(out, "*"))
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	if got := strings.Join(names, " "); got != "dhis2-life-clone-refresh.service dhis2-life-clone-refresh.timer dhis2-life-snapshot.service dhis2-life-snapshot.timer dhis2-life-verify.service dhis2-life-verify.timer dhis2-life.service" {
		t.Fatalf("units written: %s", got)
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.HasSuffix(f, ".service") && (!strings.Contains(string(b), "ProtectHome=read-only\n") || !strings.Contains(string(b), "ReadWritePaths=/srv/d2l/state /srv/d2l/repo /srv/dhis2-clones\n")) {
			t.Errorf("%s lacks the sandbox:\n%s", f, b)
		}
	}
	// systemd-analyze works without a running systemd (it loads the files itself); it exits 0
	// on mere warnings (unknown keys, relative paths), so its output must be empty too.
	// --man=no: the man pages named in Documentation= are checked by the .deb test, which
	// installs them.
	v := exec.Command(sa, append([]string{"verify", "--man=no"}, files...)...)
	b, err := v.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(b)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, b)
	}
	// The check can fail: a unit with a typo is reported.
	bad := filepath.Join(out, "dhis2-life.service")
	u, _ := os.ReadFile(bad)
	if err := os.WriteFile(bad, bytes.Replace(u, []byte("ProtectSystem="), []byte("ProtectSystm="), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := exec.Command(sa, "verify", "--man=no", bad).CombinedOutput(); !strings.Contains(string(b), "ProtectSystm") {
		t.Errorf("systemd-analyze verify did not report a bad key: %s", b)
	}
}
