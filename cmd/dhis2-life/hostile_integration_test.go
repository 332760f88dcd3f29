package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// Tests of issue 10's "found when tried as a hostile user would": each failed before its fix.

// started is a dhis2-life process running in the background.
type started struct {
	cmd *exec.Cmd
	out *lockedBuf
}

// start runs the CLI in the background with extra environment.
func (e *env) start(extraEnv []string, args ...string) *started {
	e.t.Helper()
	cmd := exec.Command(testBinary, append([]string{"--config", e.cfgPath}, args...)...)
	cmd.Env = append(cliEnv(), extraEnv...)
	out := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return &started{cmd: cmd, out: out}
}

// wait waits for the process and returns its exit code (-1 when killed by a signal).
func (s *started) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = s.cmd.Process.Kill()
		<-done
		t.Fatalf("dhis2-life did not end within %s:\n%s", limit, s.out)
	}
	return s.cmd.ProcessState.ExitCode()
}

// pidsOf returns the PIDs of live processes whose command line mentions cfg and sub.
func pidsOf(cfg, sub string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), cfg) || (sub != "" && !strings.Contains(string(b), sub)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat")); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// silentListener accepts TCP connections on loopback and never answers; it returns host:port.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// TestRepositoryPasswordFileMode: a world-readable repository password file is refused by
// init, snapshot, verify and restore (as env_file is), with the chmod fix in the message.
func TestRepositoryPasswordFileMode(t *testing.T) {
	e := newEnv(t, "")
	e.init()
	if err := os.Chmod(e.passFile, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init"}, {"snapshot"}, {"verify", "latest"}, {"restore", "latest", "--to-db", e.dsnFor("x_" + randName())}} {
		r := e.run(args...)
		oneLineError(t, r, 2, "password_file", e.passFile, "0644", "chmod 600 "+e.passFile)
	}
}

// TestDamagedCatalogueCLI: a truncated or emptied catalog.db makes commands fail with one
// line naming the file (no panic, not silently replaced); `catalog rebuild` moves it aside
// and rebuilds the sets from the bucket, saying what could not come back.
func TestDamagedCatalogueCLI(t *testing.T) {
	e := newEnv(t, "")
	e.init()
	m := e.snapshot()
	path := filepath.Join(e.stateDir, "catalog.db")
	for _, damage := range []string{"truncated", "empty"} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		size := fi.Size() / 3
		if damage == "empty" {
			size = 0
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"snapshots"}, {"status"}, {"snapshot"}} {
			r := e.run(args...)
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") {
				t.Fatalf("%s catalogue: dhis2-life %s panicked:\n%s", damage, args[0], r)
			}
			if r.code == 0 {
				t.Fatalf("%s catalogue: dhis2-life %s succeeded\n%s", damage, args[0], r)
			}
			if !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "catalog rebuild") {
				t.Fatalf("%s catalogue: error does not name %s and the fix:\n%s", damage, path, r)
			}
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != size {
			t.Fatalf("%s catalogue was changed by the failed commands: %v %v", damage, fi, err)
		}
		r := e.mustRun("catalog", "rebuild")
		if !strings.Contains(r.stdout, "damaged") || !strings.Contains(r.stdout, "keep marks") {
			t.Errorf("catalog rebuild does not say it set the damaged file aside and what is lost:\n%s", r)
		}
		aside, _ := filepath.Glob(path + ".damaged-*")
		if len(aside) == 0 {
			t.Fatalf("the damaged catalogue was not kept:\n%s", r)
		}
		if got := e.snapshotsJSON(); len(got) != 1 || got[0].ID != m.ID {
			t.Fatalf("after rebuild: %d sets, want set %s", len(got), m.ID)
		}
		for _, a := range aside {
			os.Remove(a)
		}
	}
}

// lockRepository runs a restic backup reading stdin, which holds a (non-exclusive) lock on
// the repository until stdin is closed; kill ends it without removing its lock.
func (e *env) lockRepository(t *testing.T) (release func(), kill func()) {
	t.Helper()
	cmd := exec.Command(testenv.Restic(t), "--no-cache", "backup", "--stdin", "--stdin-filename", "hold", "--tag", "holder")
	cmd.Env = append([]string{"RESTIC_REPOSITORY=" + e.repoURL, "RESTIC_PASSWORD_FILE=" + e.passFile, "PATH=/usr/bin:/bin"}, e.s3.Env()...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// restic reads stdin only after it holds its lock; a first write is consumed then.
	if _, err := io.WriteString(in, "held\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the repository lock", func() bool {
		return len(e.resticLocks(t)) > 0
	})
	return func() { in.Close(); _ = cmd.Wait() }, func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }
}

// resticLocks lists the repository's lock files.
func (e *env) resticLocks(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command(testenv.Restic(t), "--no-cache", "list", "locks", "--no-lock")
	cmd.Env = append([]string{"RESTIC_REPOSITORY=" + e.repoURL, "RESTIC_PASSWORD_FILE=" + e.passFile, "PATH=/usr/bin:/bin"}, e.s3.Env()...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("restic list locks: %v", err)
	}
	return strings.Fields(string(out))
}

// TestDrillAfterStaleLock: a restic killed without removing its lock (as an outage_timeout
// or kill -9 leaves it) does not make the next drill fail its repository check.
func TestDrillAfterStaleLock(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	e.snapshot()
	_, kill := e.lockRepository(t)
	kill()
	if len(e.resticLocks(t)) == 0 {
		t.Fatal("the killed restic left no lock: the test proves nothing")
	}
	r := e.run("verify", "latest", "--json")
	if r.code != 0 {
		t.Fatalf("drill after a stale lock: %s", r)
	}
	if rep := parseVerify(t, r); !rep.OK {
		t.Fatalf("drill after a stale lock failed:\n%s", r)
	}
}

// TestDrillWhileRepositoryBusy: a drill while another job writes to the repository waits for
// restic check's lock instead of recording a failed drill.
func TestDrillWhileRepositoryBusy(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	e.snapshot()
	release, _ := e.lockRepository(t)
	v := e.start(nil, "verify", "latest", "--json")
	time.Sleep(4 * time.Second) // the drill's check now waits for the lock
	release()
	if code := v.wait(t, 4*time.Minute); code != 0 {
		t.Fatalf("drill while the repository was busy: exit %d\n%s", code, v.out)
	}
	var rep verifyReport
	if err := json.Unmarshal([]byte(v.out.String()[strings.Index(v.out.String(), "{"):]), &rep); err != nil || !rep.OK {
		t.Fatalf("drill while the repository was busy: ok=%v %v\n%s", rep.OK, err, v.out)
	}
}

// TestSignalsInterrupt: SIGINT or SIGTERM to snapshot exits 130 and records nothing; SIGINT
// to verify exits 130 and records no failed drill.
func TestSignalsInterrupt(t *testing.T) {
	e := newEnvScale(t, fixture.Gen242, 0.01)
	e.init()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		s := e.start(nil, "snapshot")
		waitFor(t, 30*time.Second, "the dump producer", func() bool { return len(pidsOf(e.cfgPath, "dump-stream")) > 0 })
		_ = s.cmd.Process.Signal(sig)
		if code := s.wait(t, time.Minute); code != 130 {
			t.Errorf("snapshot stopped by %v: exit %d, want 130\n%s", sig, code, s.out)
		}
		if got := e.snapshotsJSON(); len(got) != 0 {
			t.Fatalf("interrupted snapshot recorded %d sets", len(got))
		}
	}
	e.snapshot()
	v := e.start(nil, "verify", "latest")
	waitFor(t, time.Minute, "the drill's restore", func() bool {
		ents, _ := filepath.Glob(filepath.Join(e.stateDir, "tmp", "drill-files-*"))
		return len(ents) > 0
	})
	time.Sleep(300 * time.Millisecond)
	_ = v.cmd.Process.Signal(syscall.SIGINT)
	if code := v.wait(t, time.Minute); code != 130 {
		t.Errorf("verify stopped by SIGINT: exit %d, want 130\n%s", code, v.out)
	}
	if strings.Contains(v.out.String(), "FAILED") {
		t.Errorf("an interrupted drill was reported FAILED:\n%s", v.out)
	}
	r := e.run("status", "--json")
	var st struct {
		Instances map[string]struct {
			LastDrill *struct {
				OK bool `json:"ok"`
			} `json:"last_drill"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	if d := st.Instances[testInstance].LastDrill; d != nil && !d.OK {
		t.Errorf("status shows the interrupted drill as a failed one:\n%s", r.stdout)
	}
}

// TestConfigCheckHostile: a config with 200,000 instances is refused at once (it grew
// `config check` to 1.8 GB), and `config check` honours SIGTERM while it probes.
func TestConfigCheckHostile(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %q\n[repository]\nurl = %q\npassword_file = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "repo"), filepath.Join(dir, "pass"))
	for i := 0; i < 200000; i++ {
		fmt.Fprintf(&b, "[instances.i%d]\ndatabase = \"postgres://d@127.0.0.1:1/d\"\ndhis2_home = \"/tmp\"\n", i)
	}
	big := filepath.Join(dir, "big.toml")
	writeFile(t, big, b.String(), 0o600)
	r := runCLI(t, 20*time.Second, "--config", big, "config", "check")
	oneLineError(t, r, 2, big, "bytes")
	if r.dur > 5*time.Second {
		t.Errorf("refusing a huge config took %s", r.dur)
	}
	// The instance count alone is bounded too.
	b.Reset()
	fmt.Fprintf(&b, "state_dir = %q\n[repository]\nurl = %q\npassword_file = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "repo"), filepath.Join(dir, "pass"))
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "[instances.i%d]\n", i)
	}
	many := filepath.Join(dir, "many.toml")
	writeFile(t, many, b.String(), 0o600)
	oneLineError(t, runCLI(t, 20*time.Second, "--config", many, "config", "check"), 2, "instances", "at most")

	// A database that accepts connections but never answers: each probe waits its 10 s.
	ln := silentListener(t)
	b.Reset()
	writeFile(t, filepath.Join(dir, "pass"), "x\n", 0o600)
	fmt.Fprintf(&b, "state_dir = %q\n[repository]\nurl = %q\npassword_file = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "repo"), filepath.Join(dir, "pass"))
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&b, "[instances.i%d]\ndatabase = \"postgres://d@%s/d?sslmode=disable\"\ndhis2_home = %q\n", i, ln, dir)
	}
	slow := filepath.Join(dir, "slow.toml")
	writeFile(t, slow, b.String(), 0o600)
	cmd := exec.Command(testBinary, "--config", slow, "config", "check")
	cmd.Env = cliEnv()
	var out lockedBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	t0 := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	s := &started{cmd: cmd, out: &out}
	code := s.wait(t, 30*time.Second)
	if code != 130 || time.Since(t0) > 3*time.Second {
		t.Errorf("config check after SIGTERM: exit %d after %s, want 130 at once\n%s", code, time.Since(t0).Round(time.Millisecond), out.String())
	}
}

// TestChildrenGetNoS3Secret: the dump producer and pg_dump do not inherit the S3 secret
// key (restic needs it; they do not).
func TestChildrenGetNoS3Secret(t *testing.T) {
	e := newEnvScale(t, fixture.Gen242, 0.01)
	e.init()
	bin := filepath.Join(e.dir, "pgbin")
	envOut := filepath.Join(e.dir, "pg_dump.env")
	writeFile(t, filepath.Join(bin, "pg_dump"), fmt.Sprintf("#!/bin/sh\nenv >> %q\nexec %q \"$@\"\n", envOut, filepath.Join(testenv.PGBinDir(), "pg_dump")), 0o755)
	e.instanceExtra = append(e.instanceExtra, fmt.Sprintf("pg_bin_dir = %q", bin))
	e.writeConfig()
	secret := ""
	for _, kv := range e.s3.Env() {
		if v, ok := strings.CutPrefix(kv, "AWS_SECRET_ACCESS_KEY="); ok {
			secret = v
		}
	}
	if secret == "" {
		t.Fatal("the test MinIO has no AWS_SECRET_ACCESS_KEY")
	}
	s := e.start(nil, "snapshot")
	var environ []string
	waitFor(t, time.Minute, "the dump producer", func() bool {
		for _, pid := range pidsOf(e.cfgPath, "dump-stream") {
			// restic's own command line names the producer too: only the producer counts.
			if cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !strings.HasPrefix(string(cl), testBinary+"\x00") {
				continue
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && len(b) > 0 {
				environ = strings.Split(string(b), "\x00")
				return true
			}
		}
		return false
	})
	if code := s.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", code, s.out)
	}
	for _, kv := range environ {
		if strings.HasPrefix(kv, "AWS_") || strings.Contains(kv, secret) {
			t.Errorf("the dump producer's environment holds %s", strings.SplitN(kv, "=", 2)[0])
		}
	}
	b, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatalf("pg_dump did not run: %v", err)
	}
	if strings.Contains(string(b), "AWS_") || strings.Contains(string(b), secret) {
		t.Errorf("pg_dump's environment holds S3 credentials")
	}
}

// TestFailedRestoreRemovesFiles: a restore that fails mid-way removes what it wrote to
// --files-to (and only that), so the same command can run again.
func TestFailedRestoreRemovesFiles(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	target := "trunc_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	filesTo := filepath.Join(e.dir, "restored-files")
	// An existing, empty directory and a new one: what the restore wrote goes, the
	// directory the user made stays.
	for _, pre := range []bool{false, true} {
		os.RemoveAll(filesTo)
		if pre {
			if err := os.Mkdir(filesTo, 0o750); err != nil {
				t.Fatal(err)
			}
		}
		e.useMock(fmt.Sprintf("truncate-dump:%d", m.Parts["db"].Bytes*2/3))
		r := e.run("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass, "--files-to", filesTo)
		oneLineError(t, r, 1, "was dropped", filesTo, "removed")
		ents, err := os.ReadDir(filesTo)
		switch {
		case pre && (err != nil || len(ents) != 0):
			t.Fatalf("the user's --files-to directory: %d entries left, %v", len(ents), err)
		case !pre && !os.IsNotExist(err):
			t.Fatalf("the --files-to directory the failed restore created is still there (%v)", err)
		}
		e.restic = testenv.Restic(t)
		e.envFile = e.s3.EnvFile(t)
		e.writeConfig()
		e.mustRun("restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass, "--files-to", filesTo)
		if _, err := os.Stat(filepath.Join(filesTo, "dhis.conf")); err != nil {
			t.Fatalf("re-run restored no dhis.conf: %v", err)
		}
		dropDB(t, e.pg, target)
	}
}
