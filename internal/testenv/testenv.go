package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ResticVersion is the restic release the tests are written against.
const ResticVersion = "0.19.1"

// fixHint is appended to every failure caused by a missing tool.
const fixHint = "run scripts/deps.sh (make test does)"

// ToolsDir returns the directory holding restic and minio: $DHIS2_LIFE_TOOLS/bin when
// DHIS2_LIFE_TOOLS is set (the same variable scripts/deps.sh reads), else
// /var/tmp/dhis2-life-tools/bin.
func ToolsDir() string {
	if d := os.Getenv("DHIS2_LIFE_TOOLS"); d != "" {
		return filepath.Join(d, "bin")
	}
	return "/var/tmp/dhis2-life-tools/bin"
}

// BaseDir is where testenv keeps data directories of the services it starts. Each one carries
// the PID of the test binary that owns it; directories of dead owners are removed on the next
// start.
func BaseDir() string {
	if d := os.Getenv("DHIS2_LIFE_TEST_DIR"); d != "" {
		return d
	}
	return "/var/tmp/dhis2-life-test"
}

var restic struct {
	once sync.Once
	path string
	err  error
}

// Restic returns the path of restic 0.19.1, from ToolsDir or else from PATH, and fails the test
// when it is missing or another version.
func Restic(t testing.TB) string {
	t.Helper()
	restic.once.Do(func() {
		restic.path, restic.err = findTool("restic", func(p string) error {
			out, err := exec.Command(p, "version").Output()
			if err != nil {
				return fmt.Errorf("%s version: %v", p, err)
			}
			if !strings.HasPrefix(string(out), "restic "+ResticVersion+" ") {
				return fmt.Errorf("%s is %q, want restic %s", p, strings.TrimSpace(string(out)), ResticVersion)
			}
			return nil
		})
	})
	if restic.err != nil {
		t.Fatalf("testenv: restic %s: %v; %s", ResticVersion, restic.err, fixHint)
	}
	return restic.path
}

var minioBin struct {
	once sync.Once
	path string
	err  error
}

// MinIOBinary returns the path of the minio server binary (ToolsDir, else PATH).
func MinIOBinary(t testing.TB) string {
	t.Helper()
	p, err := minioBinary()
	if err != nil {
		t.Fatalf("testenv: minio server: %v; %s", err, fixHint)
	}
	return p
}

func minioBinary() (string, error) {
	minioBin.once.Do(func() {
		minioBin.path, minioBin.err = findTool("minio", nil)
	})
	return minioBin.path, minioBin.err
}

// findTool looks for name in ToolsDir, then in PATH, and accepts the first one check accepts.
func findTool(name string, check func(string) error) (string, error) {
	var errs []error
	cands := []string{filepath.Join(ToolsDir(), name)}
	if p, err := exec.LookPath(name); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			errs = append(errs, fmt.Errorf("%s is not executable", p))
			continue
		}
		if check != nil {
			if err := check(p); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		return p, nil
	}
	return "", fmt.Errorf("not found (looked in %s and PATH): %w", ToolsDir(), errors.Join(errs...))
}

// Main runs the tests of a package and then stops the services testenv started for them.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without it the services still die with the test binary (they get a parent-death signal), but
// their data directories are only removed by the next run.
func Main(m *testing.M) {
	code := m.Run()
	shutdown()
	os.Exit(code)
}

func shutdown() {
	pgShared.mu.Lock()
	if p := pgShared.pg; p != nil {
		p.stop()
	}
	pgShared.mu.Unlock()
	minioShared.mu.Lock()
	if m := minioShared.m; m != nil && m.cmd != nil {
		m.Stop()
		_ = os.RemoveAll(m.root)
	}
	minioShared.mu.Unlock()
}

// randHex returns n random bytes as hex.
func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// reserved ports are used by scripts/services.sh; never pick them.
var reserved = map[int]bool{25432: true, 29000: true, 29001: true}

// freePort returns a port in 25000–32767 (below Linux's ephemeral range) that could be
// listened on 127.0.0.1 just now. Callers retry when a server still fails to bind it.
func freePort() (int, error) {
	var b [2]byte
	for range 200 {
		_, _ = rand.Read(b[:])
		port := 25000 + (int(b[0])<<8|int(b[1]))%7768
		if reserved[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port, nil
	}
	return 0, errors.New("no free port in 25000-32767")
}

// spawner starts every child process from one goroutine locked to its OS thread that never
// exits, so the children's parent-death signal (sent when the forking thread dies) fires only
// when the test binary itself dies.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd, deathSig syscall.Signal) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = deathSig
	cmd.SysProcAttr.Setpgid = true // keep terminal signals (^C) for the test binary to handle
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawner.reqs <- r
	return <-r.done
}

// makeOwnedDir creates a fresh directory under BaseDir named prefix-<random> and records the
// test binary's PID in it. Stale directories whose owner is gone are removed first.
func makeOwnedDir(prefix string) (string, error) {
	base := BaseDir()
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	// Sticky and world-writable like /tmp, so root and non-root runs can share it.
	if fi, err := os.Stat(base); err == nil && (fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0) {
		_ = os.Chmod(base, os.ModeSticky|0o777)
	}
	sweep(base)
	dir, err := os.MkdirTemp(base, prefix+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

var sweepOnce sync.Once

// sweep removes directories under base left by test binaries that died without cleaning up.
func sweep(base string) {
	sweepOnce.Do(func() {
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			dir := filepath.Join(base, e.Name())
			b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
			if err != nil {
				continue
			}
			if pidAlive(string(b)) {
				continue
			}
			// A postgres whose parent died got SIGQUIT; do not remove a cluster that still runs
			// (data/ of StartPostgres, MAJOR/main of StartCluster, which pg_ctl daemonises).
			pids, _ := filepath.Glob(filepath.Join(dir, "*", "main", "postmaster.pid"))
			running := false
			for _, f := range append(pids, filepath.Join(dir, "data", "postmaster.pid")) {
				if pm, err := os.ReadFile(f); err == nil {
					if line, _, _ := strings.Cut(string(pm), "\n"); pidAlive(line) {
						running = true
					}
				}
			}
			if running {
				continue
			}
			_ = os.RemoveAll(dir)
		}
	})
}

func pidAlive(s string) bool {
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie is dead too (PID 1 in a container may not reap orphans promptly).
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// tail returns the last n bytes of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}

// since formats a duration for logs.
func since(t0 time.Time) string { return time.Since(t0).Round(time.Millisecond).String() }

// sanitize turns prefix into [a-z0-9_]+ (or with '-' when dash is true), at most max chars.
func sanitize(prefix string, dash bool, max int) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(prefix) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		default:
			if dash {
				sb.WriteByte('-')
			} else {
				sb.WriteByte('_')
			}
		}
	}
	s := sb.String()
	if len(s) > max {
		s = s[:max]
	}
	if s == "" {
		s = "t"
	}
	return s
}

// LockedBuffer is a log or output sink that several goroutines write (a logger's handler, a
// child process's stdout and stderr) and a test reads.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
