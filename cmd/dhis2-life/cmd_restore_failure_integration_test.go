package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestRestoreTruncatedStream: a database stream that ends early (injected by the mock
// restic) fails the restore mid-data-load; the half-restored database is dropped and the
// message says so.
func TestRestoreTruncatedStream(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	e.useMock(fmt.Sprintf("truncate-dump:%d", m.Parts["db"].Bytes*2/3))
	target := "trunc_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	r := e.run("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	oneLineError(t, r, 1, target, "was dropped")
	if dbExists(t, e.pg, target) {
		t.Errorf("half-restored database %s still exists", target)
	}
}

// TestRestoreDiskFull: restoring into a PostgreSQL whose data directory is on a small
// tmpfs fails with "No space left on device"; the half-restored database is dropped, the
// message says so, and the server is still up afterwards (PostgreSQL 15's DROP DATABASE
// checkpoints first, which PANICs on a disk with no room left: the restore drops the tables
// first). The small cluster's log is printed when it fails.
func TestRestoreDiskFull(t *testing.T) {
	e := newEnvScale(t, fixture.Gen242, 0.01)
	e.init()
	e.snapshot()
	small := startSmallCluster(t)

	// Calibrate: restore once with room to spare and measure what it writes.
	used0 := small.used(t)
	cal := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/calibrate?sslmode=disable", small.port)
	e.mustRun("restore", "latest", "--to-db", cal)
	used1 := small.used(t)
	small.exec(t, "DROP DATABASE calibrate")
	time.Sleep(200 * time.Millisecond)
	need := used1 - used0
	// Leave room for creating the database and its extensions but not for all the data and
	// indexes.
	size := small.used(t) + need*85/100
	small.resize(t, size)
	t.Logf("restore writes %d KiB; tmpfs now %d KiB with %d KiB used", need>>10, size>>10, small.used(t)>>10)

	target := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/full?sslmode=disable", small.port)
	r := e.run("restore", "latest", "--to-db", target)
	oneLineError(t, r, 1, "out of disk space", "full", "was dropped")
	if !strings.Contains(r.stderr, "dropped the half-restored tables") {
		t.Errorf("the tables were not dropped before the database:\n%s", r.stderr)
	}
	var n int
	if err := small.conn(t).QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = 'full'").Scan(&n); err != nil || n != 0 {
		t.Errorf("half-restored database still exists (%d, %v)", n, err)
	}
}

type smallCluster struct {
	port  int
	mount string
	cmd   *exec.Cmd
}

// startSmallCluster starts a throwaway PostgreSQL 15 with its data directory on a tmpfs
// (its WAL elsewhere, so a full disk fails statements instead of crashing the server).
func startSmallCluster(t *testing.T) *smallCluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("TestRestoreDiskFull mounts a tmpfs: run as root (CI does)")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	base, err := os.MkdirTemp(testenv.BaseDir(), "diskfull-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	c := &smallCluster{mount: filepath.Join(base, "tmpfs")}
	wal := filepath.Join(base, "wal")
	for _, d := range []string{c.mount, wal} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=400M,mode=0700", "tmpfs", c.mount).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs (needs root and CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", c.mount).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", c.mount, err, out)
		}
	})
	for _, d := range []string{base, c.mount, wal} {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(c.mount, "data")
	env := []string{"PATH=" + testenv.PGBinDir() + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	initdb := exec.Command(testenv.PGBin(t, "initdb"), "-D", data, "--waldir", filepath.Join(wal, "pg_wal"), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--no-locale")
	initdb.Env = env
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.port = closedPort(t)
	logf, _ := os.Create(filepath.Join(base, "postgres.log"))
	c.cmd = exec.Command(testenv.PGBin(t, "postgres"), "-D", data, "-p", strconv.Itoa(c.port), "-k", base,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off")
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		_ = c.cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(base, "postgres.log"))
			t.Logf("small cluster's log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.dsn("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(base, "postgres.log"))
			t.Fatalf("small cluster did not start: %v\n%s", err, b)
		}
	}
	return c
}

func (c *smallCluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func (c *smallCluster) conn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.dsn("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (c *smallCluster) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := c.conn(t).Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// used returns the bytes used on the tmpfs.
func (c *smallCluster) used(t *testing.T) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(c.mount, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

func (c *smallCluster) resize(t *testing.T, bytes int64) {
	t.Helper()
	opt := fmt.Sprintf("remount,size=%dk", (bytes+1023)>>10)
	if out, err := exec.Command("mount", "-o", opt, c.mount).CombinedOutput(); err != nil {
		t.Fatalf("mount -o %s: %v: %s", opt, err, out)
	}
}

// TestRestoreExtensionsNeedSuperuser: without admin_database the target role (CREATEDB, not
// superuser) creates the database but cannot create PostGIS; the error names the fix and
// the database it created is dropped again.
func TestRestoreExtensionsNeedSuperuser(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	e.snapshot()
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "admin_database") {
			kept = append(kept, l)
		}
	}
	writeFile(t, e.cfgPath, strings.Join(kept, "\n"), 0o600)
	target := "noext_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	r := e.run("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	oneLineError(t, r, 1, "admin_database", target, "was dropped")
	if dbExists(t, e.pg, target) {
		t.Errorf("database %s created by the failed restore still exists", target)
	}
}

// TestRestoreFilesWithoutFilesPart: --files-to on a set that has no file store part is
// refused before anything is written (the database is not created).
func TestRestoreFilesWithoutFilesPart(t *testing.T) {
	e := newEnv(t, "")
	if err := os.RemoveAll(e.home); err != nil {
		t.Fatal(err)
	}
	e.init()
	m := e.snapshot()
	if p := m.Parts["files"]; p.Snapshot != "" || p.Skipped == "" {
		t.Fatalf("files part %+v, want skipped with a reason", p)
	}
	target := "nofiles_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	r := e.run("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass, "--files-to", filepath.Join(e.dir, "out"))
	oneLineError(t, r, 1, "no files to restore", "--files-to")
	if dbExists(t, e.pg, target) {
		t.Errorf("database %s was created although the restore was refused", target)
	}
}
