package restic

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mockRestic returns the scripted mock in testdata/mock-restic.
func mockRestic(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "mock-restic", "restic")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("mock restic: %v", err)
	}
	return p
}

func mockRepo(t *testing.T, mode string) (*Repo, string) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "calls.log")
	return &Repo{Bin: mockRestic(t), URL: filepath.Join(dir, "repo"), PasswordFile: pw,
		Env: []string{"MOCK_RESTIC_MODE=" + mode, "MOCK_RESTIC_LOG=" + log}}, log
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		code int
		kind error
		hint string
	}{
		{3, ErrIncomplete, "not trusted"},
		{10, ErrNoRepository, "dhis2-life init"},
		{11, ErrLocked, "dhis2-life unlock"},
		{12, ErrWrongPassword, "password_file"},
		{1, nil, ""},
	}
	for _, c := range cases {
		r, _ := mockRepo(t, "exit:"+itoa(c.code)+":scripted message "+itoa(c.code))
		_, err := r.Snapshots(context.Background())
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("exit %d: error %v is not an *Error", c.code, err)
		}
		if e.ExitCode != c.code || e.Op != "snapshots" {
			t.Errorf("exit %d: got ExitCode %d Op %q", c.code, e.ExitCode, e.Op)
		}
		if c.kind != nil && !errors.Is(err, c.kind) {
			t.Errorf("exit %d: errors.Is(%v) false: %v", c.code, c.kind, err)
		}
		for _, k := range []error{ErrIncomplete, ErrNoRepository, ErrLocked, ErrWrongPassword, ErrTimeout} {
			if k != c.kind && errors.Is(err, k) {
				t.Errorf("exit %d: also matches %v", c.code, k)
			}
		}
		if e.Message != "scripted message "+itoa(c.code) {
			t.Errorf("exit %d: message %q, want the exit_error JSON message", c.code, e.Message)
		}
		if !strings.Contains(err.Error(), c.hint) || strings.Contains(err.Error(), "\n") {
			t.Errorf("exit %d: error %q lacks hint %q or is not one line", c.code, err, c.hint)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestExistsMapsNoRepository(t *testing.T) {
	r, _ := mockRepo(t, "exit:10:repository does not exist")
	ok, err := r.Exists(context.Background())
	if ok || err != nil {
		t.Fatalf("Exists on exit 10: %v, %v; want false, nil", ok, err)
	}
	r, _ = mockRepo(t, "exit:12:wrong password or no key found")
	if _, err := r.Exists(context.Background()); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("Exists on exit 12: %v", err)
	}
}

func TestIncompleteBackupKeepsSummary(t *testing.T) {
	// A script that prints a summary with a snapshot ID and exits 3, as restic does when
	// some source files could not be read.
	dir := t.TempDir()
	bin := filepath.Join(dir, "restic")
	script := "#!/bin/sh\necho '{\"message_type\":\"summary\",\"snapshot_id\":\"abc123\",\"total_bytes_processed\":5}'\n" +
		"echo '{\"message_type\":\"error\",\"error\":{\"message\":\"open x: permission denied\"},\"during\":\"archival\",\"item\":\"x\"}' >&2\n" +
		"echo 'Warning: at least one source file could not be read' >&2\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Repo{Bin: bin, URL: dir, PasswordFile: "/dev/null"}
	sum, err := r.BackupPaths(context.Background(), dir, []string{"x"}, BackupOptions{})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("exit 3: %v, want ErrIncomplete", err)
	}
	if sum == nil || sum.SnapshotID != "abc123" {
		t.Fatalf("summary of the incomplete snapshot: %+v (the caller must be able to forget it)", sum)
	}
	if !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("error does not name the unreadable file's problem: %v", err)
	}
}

func TestHangTimesOut(t *testing.T) {
	r, _ := mockRepo(t, "hang")
	r.Timeout = 500 * time.Millisecond
	t0 := time.Now()
	_, err := r.Snapshots(context.Background())
	d := time.Since(t0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("hang: %v, want ErrTimeout", err)
	}
	if d > 20*time.Second {
		t.Errorf("hang ended after %s", d)
	}
	if !strings.Contains(err.Error(), "repository.timeout") {
		t.Errorf("timeout error has no hint: %v", err)
	}
	// The process group is gone: no sleep of ours survives.
	time.Sleep(100 * time.Millisecond)
	if n := countChildren(t, "sleep 3600"); n != 0 {
		t.Errorf("%d hung mock processes survive the timeout", n)
	}
}

func TestHangInterruptedByCaller(t *testing.T) {
	r, _ := mockRepo(t, "hang")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	err := r.Dump(ctx, "latest", "/x", &strings.Builder{}) // Dump has no r.Timeout
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("cancelled dump: %v, want ErrInterrupted", err)
	}
}

// countChildren counts live processes of this test binary's process tree whose command
// line contains s.
func countChildren(t *testing.T, s string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(f) > 2 && f[0] != "Z" && processIsOurs(f[1]) {
			n++
		}
	}
	return n
}

// processIsOurs reports whether a process with parent ppid is our direct child, or was
// reparented to init after its parent was killed (a stray).
func processIsOurs(ppid string) bool {
	return ppid == strconv.Itoa(os.Getpid()) || ppid == "1"
}

func TestExitErrorParsing(t *testing.T) {
	var tb tailBuffer
	lines := "{\"message_type\":\"status\",\"percent_done\":0.5}\n" +
		"some plain line\n" +
		"{\"message_type\":\"exit_error\",\"code\":12,\"message\":\"Fatal: wrong password or no key found\\n\"}\n" +
		"trailing noise"
	// Write in odd-sized pieces: lines split across writes must still parse.
	for i := 0; i < len(lines); i += 7 {
		j := min(i+7, len(lines))
		if _, err := tb.Write([]byte(lines[i:j])); err != nil {
			t.Fatal(err)
		}
	}
	if got := tb.message(); got != "Fatal: wrong password or no key found" {
		t.Errorf("message %q, want the exit_error message", got)
	}
	var plain tailBuffer
	_, _ = plain.Write([]byte("Fatal: repository does not exist: unable to open config file\n"))
	if got := plain.message(); !strings.Contains(got, "unable to open config file") {
		t.Errorf("plain stderr message %q", got)
	}
	var long tailBuffer
	_, _ = long.Write([]byte(strings.Repeat("x", 2000) + "\n"))
	if got := long.message(); len(got) > 510 {
		t.Errorf("message not bounded: %d bytes", len(got))
	}
}

func TestVersionCheck(t *testing.T) {
	r, _ := mockRepo(t, "exit:1")
	v, err := r.CheckVersion(context.Background(), "0.18.1")
	if err != nil || v != "0.19.1" {
		t.Fatalf("CheckVersion: %q, %v", v, err)
	}
	if _, err := r.CheckVersion(context.Background(), "0.20.0"); err == nil || !strings.Contains(err.Error(), "too old") {
		t.Errorf("CheckVersion against 0.20.0: %v", err)
	}
	r.Bin = "/nonexistent/restic"
	if _, err := r.Version(context.Background()); err == nil || !strings.Contains(err.Error(), "install restic") {
		t.Errorf("missing restic: %v", err)
	}
}

func TestPasswordNeverInArgv(t *testing.T) {
	r, log := mockRepo(t, "exit:1")
	_, _ = r.Snapshots(context.Background(), "dhis2-life", "instance:x")
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "--json snapshots --no-lock --tag dhis2-life,instance:x") {
		t.Errorf("argv %q", b)
	}
	if strings.Contains(string(b), r.PasswordFile) {
		t.Errorf("password file passed in argv: %q", b)
	}
}

func TestEnvMemoryLimitAndNoInheritedSecrets(t *testing.T) {
	t.Setenv("RESTIC_PASSWORD", "from-the-shell")
	r := &Repo{URL: "/repo", PasswordFile: "/pw", MemoryLimitMB: 96}
	env := strings.Join(r.env(), "\n")
	if !strings.Contains(env, "GOMEMLIMIT=96MiB") {
		t.Errorf("GOMEMLIMIT not passed: %s", env)
	}
	if strings.Contains(env, "from-the-shell") {
		t.Error("RESTIC_PASSWORD of the calling shell reached restic")
	}
	for _, none := range []int{0, -1} { // -1: tuning.restic_memory_limit_mb = -1 (no limit)
		if strings.Contains(strings.Join((&Repo{URL: "/repo", MemoryLimitMB: none}).env(), "\n"), "GOMEMLIMIT=") {
			t.Errorf("GOMEMLIMIT set with MemoryLimitMB %d", none)
		}
	}
}

func TestRetryTracking(t *testing.T) {
	var tb tailBuffer
	tb.Write([]byte("Save(<data/0a1b2c>) returned error, retrying after 1.2s: Put \"http://x/y\": dial tcp 127.0.0.1:9: connect: connection refused\n"))
	if tb.retrySince.IsZero() || tb.retries != 1 {
		t.Fatalf("retry not tracked: since=%v retries=%d", tb.retrySince, tb.retries)
	}
	if !strings.HasPrefix(tb.retryErr, `Put "http://x/y": dial tcp`) {
		t.Errorf("retried error = %q", tb.retryErr)
	}
	tb.Write([]byte("Save(<data/0a1b2c>) operation successful after 1 retries\n"))
	if !tb.retrySince.IsZero() {
		t.Fatal("a success did not end the outage")
	}
	// The watchdog fires only while retries go on.
	fired := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	tb.Write([]byte("Load(<index/aa>, 0, 0) returned error, retrying after 2s: connection reset\n"))
	go tb.watch(stop, 50*time.Millisecond, func() { close(fired) })
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("watchdog did not fire during an outage")
	}
	if m := tb.outageMessage(50 * time.Millisecond); !strings.Contains(m, "2 retries") || !strings.Contains(m, "connection reset") {
		t.Errorf("outage message %q", m)
	}
}
