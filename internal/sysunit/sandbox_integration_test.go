package sysunit_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// unitFile is the [Service] section of a unit: key → values in order.
type unitFile map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") {
			section = l
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && section == "[Service]" && !strings.HasPrefix(l, "#") {
			u[k] = append(u[k], v)
		}
	}
	return u
}

func (u unitFile) get(k string) string {
	if v := u[k]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// sandbox turns a unit's [Service] section into a bubblewrap command line with the same file
// system view systemd would give it (ProtectSystem=strict, ProtectHome, PrivateTmp,
// PrivateDevices, ReadOnlyPaths, ReadWritePaths) that then drops to User= with setpriv
// (NoNewPrivileges= kept) and runs argv with systemd's service environment.
// systemd itself cannot run here: PID 1 of the test machine is not systemd.
func sandbox(t *testing.T, u unitFile, argv ...string) *exec.Cmd {
	t.Helper()
	if u.get("ProtectSystem") != "strict" {
		t.Fatalf("unit has ProtectSystem=%q, the sandbox expects strict", u.get("ProtectSystem"))
	}
	args := []string{"--die-with-parent", "--unshare-pid", "--unshare-ipc", "--ro-bind", "/", "/", "--proc", "/proc"}
	if u.get("PrivateDevices") == "yes" {
		args = append(args, "--dev", "/dev")
	} else {
		args = append(args, "--dev-bind", "/dev", "/dev")
	}
	type mount struct{ kind, path string }
	var mounts []mount
	switch u.get("ProtectHome") {
	case "yes":
		for _, d := range []string{"/home", "/root", "/run/user"} {
			if _, err := os.Stat(d); err == nil {
				mounts = append(mounts, mount{"--tmpfs", d})
			}
		}
	case "read-only": // already read-only: / is
	default:
		t.Fatalf("unit has ProtectHome=%q", u.get("ProtectHome"))
	}
	if u.get("PrivateTmp") == "yes" {
		mounts = append(mounts, mount{"--tmpfs1777", "/tmp"}, mount{"--tmpfs1777", "/var/tmp"})
	}
	for key, kind := range map[string]string{"ReadOnlyPaths": "--ro-bind", "ReadWritePaths": "--bind"} {
		for _, v := range u[key] {
			for _, p := range strings.Fields(v) {
				optional := strings.HasPrefix(p, "-")
				p = strings.TrimPrefix(p, "-")
				if _, err := os.Stat(p); err != nil {
					if optional {
						continue
					}
					t.Fatalf("%s names %s, which does not exist: systemd would refuse to start the unit", key, p)
				}
				mounts = append(mounts, mount{kind, p})
			}
		}
	}
	// systemd drops every mount below an inaccessible path (namespace.c: drop_inaccessible):
	// ProtectHome=yes hides /home even from ReadOnlyPaths below it.
	if u.get("ProtectHome") == "yes" {
		var kept []mount
		for _, m := range mounts {
			if m.kind == "--tmpfs" || !strings.HasPrefix(m.path+"/", "/home/") && !strings.HasPrefix(m.path+"/", "/root/") && !strings.HasPrefix(m.path+"/", "/run/user/") {
				kept = append(kept, m)
			}
		}
		mounts = kept
	}
	// Like systemd, the deeper path wins: mount parents first.
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(mounts[i].path, "/") < strings.Count(mounts[j].path, "/")
	})
	for _, m := range mounts {
		if m.kind == "--tmpfs1777" { // a private /tmp as systemd makes it: sticky, world-writable
			args = append(args, "--perms", "01777", "--tmpfs", m.path)
		} else if m.kind == "--tmpfs" {
			args = append(args, m.kind, m.path)
		} else {
			args = append(args, m.kind, m.path, m.path)
		}
	}
	usr, err := user.Lookup(u.get("User"))
	if err != nil {
		t.Fatalf("User=%s: %v", u.get("User"), err)
	}
	grp, err := user.LookupGroup(u.get("Group"))
	if err != nil {
		t.Fatalf("Group=%s: %v", u.get("Group"), err)
	}
	args = append(args, "--", "setpriv", "--reuid="+usr.Uid, "--regid="+grp.Gid, "--init-groups")
	if u.get("NoNewPrivileges") == "yes" {
		args = append(args, "--no-new-privs")
	}
	args = append(args, "--", "env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME="+usr.HomeDir, "USER="+usr.Username, "LOGNAME="+usr.Username, "LANG=C.UTF-8")
	args = append(args, argv...)
	bw, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatalf("bwrap is missing: apt-get install bubblewrap (scripts/deps.sh does): %v", err)
	}
	cmd := exec.Command(bw, args...)
	if um := u.get("UMask"); um != "" {
		// bwrap and setpriv keep the umask: set it as systemd would.
		cmd = exec.Command("sh", append([]string{"-c", `umask "$0" && exec "$@"`, um, bw}, args...)...)
	}
	return cmd
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestUnitSandboxSnapshotAndClone runs the snapshot and clone jobs of the generated timer
// units as an unprivileged service user inside the units' own file system restrictions, with
// the instance's DHIS2_HOME under /home (read-only) and a clone target writing its home.
func TestUnitSandboxSnapshotAndClone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a system user and mount namespaces: run it as root (CI does)")
	}
	pg := testenv.StartPostgres(t)
	tag := randHex(4)
	svc := "d2lsbx" + tag
	run(t, "useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", svc)
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", svc).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", svc, err, out)
		}
	})
	usr, _ := user.Lookup(svc)
	uid, _ := strconv.Atoi(usr.Uid)
	gid, _ := strconv.Atoi(usr.Gid)
	// Neither under /tmp nor /var/tmp: the units give the service a private /tmp.
	base := "/srv/dhis2-life-sbx-" + tag
	home := "/home/dhis2-life-sbx-" + tag
	t.Cleanup(func() { os.RemoveAll(base); os.RemoveAll(home) })
	owned := func(p string, mode os.FileMode) string {
		if err := os.MkdirAll(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, d := range []string{base, filepath.Join(base, "bin"), filepath.Join(base, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := build(t, filepath.Join(base, "bin"))
	restic := filepath.Join(base, "bin", "restic")
	copyFile(t, testenv.Restic(t), restic, 0o755)
	state := owned(filepath.Join(base, "state"), 0o750)
	repo := owned(filepath.Join(base, "repo"), 0o750)
	clones := owned(filepath.Join(base, "clones"), 0o755)
	outside := owned(filepath.Join(base, "outside"), 0o755) // the user's, but not in the unit
	etc := filepath.Join(base, "etc")
	secret := func(name, content string) string {
		p := filepath.Join(etc, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	repoPass := secret("repository.pass", "sandbox test password\n")
	dbPass := secret("db.pass", pg.AppPassword+"\n")
	// The least-privileged snapshot role the README gives: LOGIN + pg_read_all_data.
	snapRole := "d2lsnap_" + tag
	snapPass := secret("snapshot.pass", "snap-"+tag+"\n")
	pg.AdminExec(t, "postgres", fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'snap-%s' IN ROLE pg_read_all_data`, snapRole, tag))
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pg.AdminDSN)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP ROLE IF EXISTS "+snapRole); err != nil {
			t.Errorf("dropping %s: %v", snapRole, err)
		}
	})

	// DHIS2's installation guide layout: DHIS2_HOME=/home/dhis/config, readable by the
	// service user through its group.
	dhisHome := filepath.Join(home, "config")
	prod := "sbx_prod_" + tag
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := fixture.Create(ctx, pg.AdminDSN, prod, fixture.Options{Generation: fixture.Gen242, Scale: 0.001, Home: dhisHome, Owner: pg.AppUser, Seed: 1}); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	staging := "sbx_staging_" + tag
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pg.AdminDSN)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		rows, _ := c.Query(context.Background(), `SELECT datname FROM pg_database WHERE datname LIKE 'sbx\_%' || $1 || '%' OR datname LIKE 'dhis2life\_%' || $1 || '%'`, tag)
		var dbs []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			dbs = append(dbs, n)
		}
		rows.Close()
		for _, n := range dbs {
			if _, err := c.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %q WITH (FORCE)", n)); err != nil {
				t.Error(err)
			}
		}
	})
	run(t, "chgrp", "-R", svc, home)
	run(t, "chmod", "-R", "g+rX,o-rwx", home)
	run(t, "chmod", "0755", home)

	hook := filepath.Join(base, "bin", "after-hook")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\nid -un > \"$DHIS2_HOME/hook-ran\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dsn := func(db string) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pg.AppUser, pg.Port, db)
	}
	snapDSN := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", snapRole, pg.Port, prod)
	cfgPath := filepath.Join(etc, "dhis2-life.toml")
	cfg := fmt.Sprintf(`state_dir = %q
[repository]
url = %q
password_file = %q
restic = %q
[instances.hmis]
database = %q
database_password_file = %q
dhis2_home = %q
admin_database = %q
[targets.staging]
instance = "hmis"
database = %q
database_password_file = %q
dhis2_home = %q
profile = "staging"
after_hook = [%q]
[schedule]
snapshot = "0 2 * * *"
clone_refresh = "0 3 * * 6"
`, state, repo, repoPass, restic, snapDSN, snapPass, dhisHome, pg.AdminDSN, dsn(staging), dbPass, filepath.Join(clones, "staging"), hook)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	run(t, "chgrp", svc, cfgPath)

	// A DHIS2_HOME the user cannot read is named before it costs a snapshot its file store.
	run(t, "chmod", "g-r", filepath.Join(dhisHome, "dhis.conf"))
	if out, err := exec.Command(bin, "systemd", "unit", "--config", cfgPath, "--bin", bin, "--user", svc).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "cannot read "+filepath.Join(dhisHome, "dhis.conf")) {
		t.Errorf("systemd unit with an unreadable dhis.conf: %v, want a warning\n%s", err, out)
	}
	run(t, "chmod", "g+r", filepath.Join(dhisHome, "dhis.conf"))

	units := filepath.Join(base, "units")
	if err := os.Mkdir(units, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "systemd", "unit", "--config", cfgPath, "--output", units, "--bin", bin, "--user", svc).CombinedOutput(); err != nil {
		t.Fatalf("systemd unit: %v\n%s", err, out)
	} else if strings.Contains(string(out), "warning:") {
		t.Errorf("systemd unit warned about a host prepared as the README says:\n%s", out)
	}
	snap := parseUnit(t, filepath.Join(units, "dhis2-life-snapshot.service"))
	cl := parseUnit(t, filepath.Join(units, "dhis2-life-clone-refresh.service"))
	if snap.get("ProtectHome") != "read-only" || !strings.Contains(snap.get("ReadOnlyPaths"), dhisHome) {
		t.Fatalf("snapshot unit does not fit DHIS2_HOME under /home: %v", snap)
	}
	runUnit := func(u unitFile, extra ...string) string {
		t.Helper()
		argv := strings.Fields(u.get("ExecStart"))
		argv = append(argv, extra...)
		cmd := sandbox(t, u, argv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s in the unit's sandbox: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return string(out)
	}
	t0 := time.Now()
	// init as the service user first (the README's production steps do the same).
	initUnit := parseUnit(t, filepath.Join(units, "dhis2-life-snapshot.service"))
	initUnit["ExecStart"] = []string{bin + " --config " + cfgPath + " init"}
	runUnit(initUnit)
	out0 := runUnit(snap)
	t.Logf("snapshot in the sandbox (%s):\n%s", time.Since(t0).Round(time.Millisecond), out0)
	out := runUnit(cl)
	t.Logf("clone in the sandbox (%s):\n%s", time.Since(t0).Round(time.Millisecond), out)

	// The set exists, owned by the service user; the clone's home and database are there.
	ents, err := os.ReadDir(filepath.Join(repo, "snapshots"))
	if err != nil || len(ents) != 3 {
		t.Errorf("repository snapshots: %d, %v (want db, files, manifest)", len(ents), err)
	}
	b, err := os.ReadFile(filepath.Join(clones, "staging", "hook-ran"))
	if err != nil || strings.TrimSpace(string(b)) != svc {
		t.Errorf("after_hook did not run as %s in the clone home: %q %v", svc, b, err)
	}
	if _, err := os.Stat(filepath.Join(clones, "staging", "dhis.conf")); err != nil {
		t.Errorf("clone home: %v", err)
	}
	c, err := pgx.Connect(ctx, pg.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, staging).Scan(&n); err != nil || n != 1 {
		t.Errorf("staging database %s: %d, %v", staging, n, err)
	}

	// The unit as it was before (ProtectHome=yes) cannot see a DHIS2_HOME under /home: its
	// snapshot has no file store (the set records "file store not backed up"), while the
	// generated unit's snapshot above backed it up.
	if !strings.Contains(out0, "backing up file store") {
		t.Errorf("the snapshot in the generated unit did not back up the file store:\n%s", out0)
	}
	hidden := unitFile{}
	for k, v := range snap {
		hidden[k] = v
	}
	hidden["ProtectHome"] = []string{"yes"}
	if out, err := sandbox(t, hidden, strings.Fields(snap.get("ExecStart"))...).CombinedOutput(); err == nil && strings.Contains(string(out), "backing up file store") {
		t.Errorf("with ProtectHome=yes the snapshot still saw %s: the sandbox does not hide /home\n%s", dhisHome, out)
	}

	// The restriction is real: a directory the user owns but the unit does not name stays
	// read-only, and so does DHIS2_HOME under /home even for a group-writable file.
	run(t, "chmod", "g+w", filepath.Join(dhisHome, "dhis.conf"))
	for _, p := range []string{filepath.Join(outside, "x"), filepath.Join(dhisHome, "dhis.conf")} {
		cmd := sandbox(t, snap, "sh", "-c", `echo x >> "$0"`, p)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Read-only file system") {
			t.Errorf("writing %s in the sandbox: %v %s (want Read-only file system)", p, err, out)
		}
		if err := exec.Command("setpriv", "--reuid="+usr.Uid, "--regid="+usr.Gid, "--init-groups", "sh", "-c", `: >> "$0"`, p).Run(); err != nil {
			t.Errorf("outside the sandbox the user can write %s, so the check above proves the sandbox: %v", p, err)
		}
	}
}
