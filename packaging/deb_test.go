package packaging_test

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

// paths the package creates; none may exist before the test (it would overwrite or delete a
// real installation), and none may remain after it.
var installed = []string{"/usr/bin/dhis2-life", "/etc/dhis2-life", "/var/lib/dhis2-life", "/var/backups/dhis2-life",
	"/lib/systemd/system/dhis2-life.service", "/usr/share/dhis2-life", "/usr/share/doc/dhis2-life",
	"/usr/share/man/man1/dhis2-life.1.gz", "/usr/share/bash-completion/completions/dhis2-life",
	"/usr/share/zsh/vendor-completions/_dhis2-life", "/etc/systemd/system/dhis2-life.service"}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// sh runs a command and returns its combined output; dpkg waits for a lock held by an apt
// run elsewhere on the machine.
func sh(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	for try := 0; ; try++ {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && name == "dpkg" && bytes.Contains(out, []byte("lock")) && try < 60 {
			time.Sleep(2 * time.Second)
			continue
		}
		return string(out), err
	}
}

func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := sh(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func status(t *testing.T) string {
	out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "dhis2-life").Output()
	return strings.TrimSpace(string(out))
}

// TestDebInstallRemovePurge builds the .deb, lints it, installs it with dpkg on this machine,
// uses it as the service user, then removes and purges it, checking what stays and what goes.
func TestDebInstallRemovePurge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test installs a .deb with dpkg: run it as root (CI does)")
	}
	for _, tool := range []string{"dpkg-deb", "lintian", "systemd-analyze", "man"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/deps.sh installs it (%v)", tool, err)
		}
	}
	if s := status(t); s != "" && !strings.Contains(s, "not-installed") {
		t.Fatalf("dhis2-life is already known to dpkg (%q): this test would replace a real installation; purge it first", s)
	}
	for _, p := range installed {
		if exists(p) {
			t.Fatalf("%s exists: this test would overwrite or delete it; remove it first", p)
		}
	}
	_, userErr := user.Lookup("dhis2-life")
	userExisted := userErr == nil
	t.Cleanup(func() {
		if s := status(t); s != "" && !strings.Contains(s, "not-installed") {
			if out, err := sh(t, "dpkg", "--purge", "dhis2-life"); err != nil {
				t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
			}
		}
		for _, p := range installed {
			_ = os.RemoveAll(p)
		}
		if !userExisted {
			_, _ = sh(t, "userdel", "dhis2-life")
			_, _ = sh(t, "groupdel", "dhis2-life")
		}
	})

	dir := t.TempDir()
	out := must(t, "deb/build.sh", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	deb := lines[len(lines)-1]
	if !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("build.sh printed %q", out)
	}
	version := strings.TrimSpace(must(t, "dpkg-deb", "-f", deb, "Version"))

	// lintian takes half a minute: it runs while the package is exercised.
	type lint struct {
		out string
		err error
	}
	lintDone := make(chan lint, 1)
	go func() {
		cmd := exec.Command("lintian", "--fail-on", "error", deb)
		o, err := cmd.CombinedOutput()
		lintDone <- lint{string(o), err}
	}()

	must(t, "dpkg", "-i", deb)
	if s := status(t); s != "install ok installed" {
		t.Fatalf("dpkg status after -i: %q", s)
	}
	if v := must(t, "/usr/bin/dhis2-life", "--version"); !strings.Contains(v, version) {
		t.Errorf("--version %q does not name the package version %s", v, version)
	}
	usr, err := user.Lookup("dhis2-life")
	if err != nil {
		t.Fatalf("postinst did not create the dhis2-life user: %v", err)
	}
	if pw := must(t, "getent", "passwd", "dhis2-life"); !strings.HasSuffix(strings.TrimSpace(pw), ":/usr/sbin/nologin") {
		t.Errorf("dhis2-life user: %s", pw)
	}
	uid, _ := strconv.Atoi(usr.Uid)
	gid, _ := strconv.Atoi(usr.Gid)
	for _, c := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"/etc/dhis2-life", os.ModeDir | 0o750, 0, gid},
		{"/etc/dhis2-life/dhis2-life.toml", 0o640, 0, gid},
		{"/var/lib/dhis2-life", os.ModeDir | 0o750, uid, gid},
		{"/var/backups/dhis2-life", os.ModeDir | 0o750, uid, gid},
		{"/usr/share/dhis2-life/grafana-dashboard.json", 0o644, 0, 0},
		{"/usr/share/dhis2-life/prometheus-alerts.yml", 0o644, 0, 0},
		{"/usr/share/bash-completion/completions/dhis2-life", 0o644, 0, 0},
		{"/usr/share/zsh/vendor-completions/_dhis2-life", 0o644, 0, 0},
	} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("after install: %v", err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode() != c.mode || int(sys.Uid) != c.uid || int(sys.Gid) != c.gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", c.path, st.Mode(), sys.Uid, sys.Gid, c.mode, c.uid, c.gid)
		}
	}
	if cf := must(t, "dpkg-query", "-W", "-f=${Conffiles}", "dhis2-life"); !strings.Contains(cf, "/etc/dhis2-life/dhis2-life.toml") {
		t.Errorf("conffiles: %q", cf)
	}
	if p := strings.TrimSpace(must(t, "man", "-w", "dhis2-life-snapshot")); p != "/usr/share/man/man1/dhis2-life-snapshot.1.gz" {
		t.Errorf("man -w dhis2-life-snapshot: %q", p)
	}

	// The shipped unit and one written from the installed example pass systemd-analyze,
	// including the man pages named in Documentation=.
	units := filepath.Join(dir, "units")
	if err := os.Mkdir(units, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, "/usr/bin/dhis2-life", "systemd", "unit", "--output", units)
	gen, _ := filepath.Glob(filepath.Join(units, "*"))
	if len(gen) == 0 {
		t.Fatal("systemd unit wrote nothing")
	}
	for _, u := range append([]string{"/lib/systemd/system/dhis2-life.service"}, gen...) {
		if o, err := sh(t, "systemd-analyze", "verify", u); err != nil || strings.TrimSpace(o) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, o)
		}
	}

	// The README's first steps, as the service user: a password file, init, config check.
	pass := "/etc/dhis2-life/repository.pass"
	if err := os.WriteFile(pass, []byte("deb test password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(pass, uid, gid); err != nil {
		t.Fatal(err)
	}
	asUser := func(args ...string) (string, error) {
		a := append([]string{"-u", "dhis2-life", "--", "env", "PATH=" + testenv.ToolsDir() + ":/usr/bin:/bin", "/usr/bin/dhis2-life"}, args...)
		return sh(t, "runuser", a...)
	}
	testenv.Restic(t) // restic 0.19.1 must be in ToolsDir
	if o, err := asUser("init"); err != nil {
		t.Fatalf("init as dhis2-life: %v\n%s", err, o)
	}
	if !exists("/var/backups/dhis2-life/repo/config") {
		t.Fatal("init did not create the example's local repository")
	}
	o, err := asUser("config", "check")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("config check of the example (no database here): %v, want exit 2\n%s", err, o)
	}
	// Only what this machine lacks may be reported: the database and DHIS2_HOME.
	for _, l := range strings.Split(strings.TrimSpace(o), "\n") {
		if strings.HasPrefix(l, "dhis2-life: ") {
			continue
		}
		if !strings.Contains(l, "instances.hmis.database: database check failed") && !strings.Contains(l, "instances.hmis.dhis2_home: warning") {
			t.Errorf("config check of the installed example: %s", l)
		}
	}

	// remove: program gone, config, state and backups stay.
	must(t, "dpkg", "-r", "dhis2-life")
	if s := status(t); s != "deinstall ok config-files" {
		t.Errorf("dpkg status after -r: %q", s)
	}
	for _, p := range []string{"/usr/bin/dhis2-life", "/lib/systemd/system/dhis2-life.service", "/usr/share/dhis2-life", "/usr/share/man/man1/dhis2-life.1.gz"} {
		if exists(p) {
			t.Errorf("%s stays after remove", p)
		}
	}
	for _, p := range []string{"/etc/dhis2-life/dhis2-life.toml", pass, "/var/lib/dhis2-life/catalog.db", "/var/backups/dhis2-life/repo/config"} {
		if !exists(p) {
			t.Errorf("%s is gone after remove (only purge may delete it)", p)
		}
	}

	// purge: config and state go; the backups and the user stay.
	o = must(t, "dpkg", "--purge", "dhis2-life")
	if s := status(t); s != "" && !strings.Contains(s, "not-installed") {
		t.Errorf("dpkg status after --purge: %q", s)
	}
	for _, p := range []string{"/etc/dhis2-life", "/var/lib/dhis2-life", "/etc/systemd/system/dhis2-life.service"} {
		if exists(p) {
			t.Errorf("%s stays after purge", p)
		}
	}
	if !exists("/var/backups/dhis2-life/repo/config") || !strings.Contains(o, "kept /var/backups/dhis2-life") {
		t.Errorf("purge deleted the backups or did not say it kept them:\n%s", o)
	}
	if _, err := user.Lookup("dhis2-life"); err != nil {
		t.Errorf("purge removed the system user: %v", err)
	}

	l := <-lintDone
	if l.err != nil || strings.Contains(l.out, "\nE: ") || strings.HasPrefix(l.out, "E: ") {
		t.Errorf("lintian --fail-on error: %v\n%s", l.err, l.out)
	} else {
		t.Logf("lintian (no errors):\n%s", l.out)
	}
}
