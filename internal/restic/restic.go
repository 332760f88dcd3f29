package restic

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/proc"
)

// Repo is a restic repository reached through the restic binary.
type Repo struct {
	// Bin is the restic binary (path or name on PATH).
	Bin string
	// URL is the repository (RESTIC_REPOSITORY).
	URL string
	// PasswordFile holds the repository password (RESTIC_PASSWORD_FILE).
	PasswordFile string
	// Env holds extra environment (e.g. AWS_ACCESS_KEY_ID=...) read from the env file.
	Env []string
	// Timeout bounds calls other than backup, restore and dump (0 = none).
	Timeout time.Duration
	// OutageTimeout stops any call, backups and restores included, once restic has been
	// retrying failed repository requests for this long without one succeeding (0 = leave it
	// to restic, which retries each request for up to 15 minutes).
	OutageTimeout time.Duration
	// CacheDir is restic's cache directory ("" = restic's default).
	CacheDir string
	// Compression is --compression (auto|fastest|better|max|off, "" = restic's default).
	Compression string
	// PackSizeMB is --pack-size (0 = restic's default).
	PackSizeMB int
	// MemoryLimitMB sets GOMEMLIMIT for restic in MiB (0 or -1 = none).
	MemoryLimitMB int
	// Logger receives debug lines; nil = discard.
	Logger *slog.Logger
}

// Status is one of restic's --json progress lines (backup and restore).
type Status struct {
	MessageType   string   `json:"message_type"`
	SecondsElapse float64  `json:"seconds_elapsed"`
	PercentDone   float64  `json:"percent_done"`
	TotalBytes    int64    `json:"total_bytes"`
	BytesDone     int64    `json:"bytes_done"`
	BytesRestored int64    `json:"bytes_restored"`
	CurrentFiles  []string `json:"current_files"`
}

// ProgressFunc receives restic status lines.
type ProgressFunc func(Status)

// passthroughEnv lists variables restic may need from our own environment, besides every
// AWS_* variable (S3 credentials given in the environment, or what restic's own credential
// chain reads: AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, ...). Everything else (notably
// RESTIC_PASSWORD, RESTIC_REPOSITORY of the caller's shell) is dropped so the configuration
// alone decides what restic does. repository.env_file's values come later and win.
var passthroughEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "XDG_CACHE_HOME",
	"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// passthroughPrefix is the prefix of the credential variables passed on to restic.
const passthroughPrefix = "AWS_"

func (r *Repo) env() []string {
	env := make([]string, 0, 16)
	for _, k := range passthroughEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, passthroughPrefix) {
			env = append(env, kv)
		}
	}
	env = append(env, "RESTIC_REPOSITORY="+r.URL, "RESTIC_PASSWORD_FILE="+r.PasswordFile,
		"RESTIC_PROGRESS_FPS=0.5")
	if r.CacheDir != "" {
		env = append(env, "RESTIC_CACHE_DIR="+r.CacheDir)
	}
	if r.MemoryLimitMB > 0 {
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%dMiB", r.MemoryLimitMB))
	}
	return append(env, r.Env...)
}

func (r *Repo) bin() string {
	if r.Bin == "" {
		return "restic"
	}
	return r.Bin
}

func (r *Repo) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// call describes one restic invocation.
type call struct {
	op       string
	args     []string
	stdin    io.Reader
	stdout   io.Writer // raw stdout (dump); nil = parse JSON lines
	dir      string
	timeout  bool // apply r.Timeout
	progress ProgressFunc
	onLine   func(line []byte) // every stdout JSON line (when stdout is nil)
	extraEnv []string
	// background runs restic at a lower CPU priority (nice 10): a run beside the one the job
	// waits for (the repository measurement) takes the CPU that one leaves idle instead of
	// slowing it.
	background bool
}

// backgroundNice is the niceness of background restic runs.
const backgroundNice = "10"

// stopGrace is how long a cancelled restic may take to stop cleanly (and remove its lock)
// before its process group is killed.
const stopGrace = 5 * time.Second

// run executes restic; it returns stdout (when not streamed) and a typed error. A call that
// finds the repository locked removes stale locks (`restic unlock` removes only those of
// dead processes of this host and those older than 30 minutes) and tries once more: a job
// killed by repository.outage_timeout or kill -9 leaves its lock behind.
func (r *Repo) run(ctx context.Context, c call) ([]byte, error) {
	out, err := r.run1(ctx, c)
	if err == nil || !errors.Is(err, ErrLocked) || c.op == "unlock" || c.stdin != nil || ctx.Err() != nil {
		return out, err
	}
	if uerr := r.Unlock(ctx); uerr != nil {
		return out, err
	}
	r.log().Info("removed stale repository locks; trying again", "op", c.op)
	return r.run1(ctx, c)
}

func (r *Repo) run1(ctx context.Context, c call) ([]byte, error) {
	if c.timeout && r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	var stderr tailBuffer
	var outage chan struct{}
	if r.OutageTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		outage = make(chan struct{})
		stop := make(chan struct{})
		defer close(stop)
		go stderr.watch(stop, r.OutageTimeout, func() { close(outage); cancel() })
	}
	args := append([]string{"--json"}, c.args...)
	if r.OutageTimeout > 0 {
		// A server that accepts a request and never answers produces no retry line for
		// restic's default 5 minutes per attempt (and minio-go inside restic retries such a
		// request up to 10 times before restic sees an error), so the outage bound could not
		// see it for most of an hour. A request without progress is retried after a tenth of
		// the bound (2 s to 5 min), so silence ends the call after about twice the bound.
		stuck := min(max(r.OutageTimeout/10, 2*time.Second), 5*time.Minute)
		args = append([]string{"--stuck-request-timeout=" + stuck.String()}, args...)
	}
	cmd := exec.CommandContext(ctx, r.bin(), args...)
	if nice, err := exec.LookPath("nice"); err == nil && c.background {
		// nice execs restic in its own process: every thread restic starts inherits it.
		cmd = exec.CommandContext(ctx, nice, append([]string{"-n", backgroundNice, r.bin()}, args...)...)
	}
	cmd.Env = append(r.env(), c.extraEnv...)
	cmd.Dir = c.dir
	cmd.Stdin = c.stdin
	// Own process group (so a cancellation reaches restic's children) and SIGKILL when
	// dhis2-life dies, even by SIGKILL: a killed job leaves no restic storing parts.
	cmd.SysProcAttr = proc.Attr(true)
	// On cancellation ask restic to stop cleanly (it removes its lock on SIGINT), then kill its
	// whole process group (restic and the producer it runs) when it has not ended after
	// stopGrace: against storage that accepts requests and never answers, restic's clean-up
	// would wait for its stuck-request timeout, many times over. After an outage its clean-up
	// could only retry against the dead endpoint: kill at once (the lock it leaves is stale,
	// and restic removes stale locks of this host itself).
	var killGroup *time.Timer
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		if isClosed(outage) {
			return syscall.Kill(-pgid, syscall.SIGKILL)
		}
		killGroup = time.AfterFunc(stopGrace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		return syscall.Kill(-pgid, syscall.SIGINT)
	}
	cmd.WaitDelay = stopGrace + 5*time.Second
	cmd.Stderr = &stderr
	var out bytes.Buffer
	var pr *io.PipeReader
	var pw *io.PipeWriter
	parseDone := make(chan struct{})
	if c.stdout != nil {
		cmd.Stdout = c.stdout
		close(parseDone)
	} else {
		pr, pw = io.Pipe()
		cmd.Stdout = pw
		go func() {
			defer close(parseDone)
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
			for sc.Scan() {
				line := sc.Bytes()
				if c.progress != nil && bytes.HasPrefix(line, []byte(`{"message_type":"status"`)) {
					var st Status
					if json.Unmarshal(line, &st) == nil {
						c.progress(st)
					}
					continue
				}
				if c.onLine != nil {
					c.onLine(line)
				}
				out.Write(line)
				out.WriteByte('\n')
			}
			_, _ = io.Copy(io.Discard, pr)
		}()
	}
	start := time.Now()
	r.log().Debug("restic", "op", c.op, "args", strings.Join(c.args, " "))
	err := cmd.Run()
	if killGroup != nil {
		killGroup.Stop()
	}
	if pw != nil {
		pw.Close()
	}
	<-parseDone
	r.log().Debug("restic done", "op", c.op, "seconds", time.Since(start).Seconds())
	if err == nil {
		return out.Bytes(), nil
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	e := &Error{Op: c.op, ExitCode: code, Message: stderr.message(), kind: kindOf(code)}
	if e.kind == nil && readsData(c.op) && damaged(e.Message) {
		e.kind = ErrDamaged
	}
	if isClosed(outage) {
		e.kind = ErrUnreachable
		e.Message = stderr.outageMessage(r.OutageTimeout)
		return out.Bytes(), e
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			e.kind = ErrTimeout
			if e.Message == "" {
				e.Message = fmt.Sprintf("no answer within %s", r.Timeout)
			}
		} else {
			e.kind = ErrInterrupted
		}
	}
	if e.Message == "" && code == -1 {
		e.Message = err.Error()
	}
	return out.Bytes(), e
}

// readsData reports whether op reads stored data (where missing or altered data is damage,
// not a usage error).
func readsData(op string) bool {
	switch op {
	case "dump", "restore", "check", "ls", "cat":
		return true
	}
	return false
}

func isClosed(c chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// tailBuffer keeps the end of restic's stderr, remembers an exit_error message and tracks
// restic's backend retries ("Save(<data/…>) returned error, retrying after 2s: …").
type tailBuffer struct {
	mu       sync.Mutex
	buf      []byte
	exitErr  string
	lastLine string
	firstErr string // the first per-item error ("open files/x: permission denied")
	// retrySince is when restic started retrying without a success since (zero: not retrying).
	retrySince time.Time
	retries    int
	retryErr   string // the last retried request's error
}

// retryMark and retryOK are how restic's backend retry loop reports on stderr (plain text,
// also under --json).
var (
	retryMark = []byte(" returned error, retrying after ")
	retryOK   = []byte(" operation successful after ")
)

// watch calls fire once restic has been retrying for longer than limit, checking up to once
// a second until stop is closed.
func (t *tailBuffer) watch(stop <-chan struct{}, limit time.Duration, fire func()) {
	every := min(max(limit/10, time.Millisecond), time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			t.mu.Lock()
			since := t.retrySince
			t.mu.Unlock()
			if !since.IsZero() && now.Sub(since) >= limit {
				fire()
				return
			}
		}
	}
}

// outageMessage describes an outage that made run stop restic.
func (t *tailBuffer) outageMessage(limit time.Duration) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("the repository did not answer for %s (%d retries by restic; last error: %s); stopped after repository.outage_timeout, check the endpoint and network",
		limit, t.retries, t.retryErr)
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		t.line(t.buf[:i])
		t.buf = t.buf[i+1:]
	}
	if len(t.buf) > 64*1024 {
		t.buf = t.buf[len(t.buf)-64*1024:]
	}
	return len(p), nil
}

func (t *tailBuffer) line(l []byte) {
	l = bytes.TrimSpace(l)
	if len(l) == 0 {
		return
	}
	if i := bytes.Index(l, retryMark); i >= 0 {
		if t.retrySince.IsZero() {
			t.retrySince = time.Now()
		}
		t.retries++
		rest := l[i+len(retryMark):]
		if j := bytes.Index(rest, []byte(": ")); j >= 0 {
			rest = rest[j+2:]
		}
		t.retryErr = string(rest)
		if len(t.retryErr) > 300 {
			t.retryErr = t.retryErr[:300] + "…"
		}
	} else if bytes.Contains(l, retryOK) {
		t.retrySince = time.Time{}
	}
	if bytes.HasPrefix(l, []byte("{")) {
		var m struct {
			MessageType string `json:"message_type"`
			Message     string `json:"message"`
			Error       struct {
				Message string `json:"message"`
			} `json:"error"`
			Item string `json:"item"`
		}
		if json.Unmarshal(l, &m) == nil {
			switch m.MessageType {
			case "exit_error":
				t.exitErr = m.Message
				return
			case "error":
				t.lastLine = strings.TrimSpace(m.Error.Message + " " + m.Item)
				if t.firstErr == "" {
					t.firstErr = strings.TrimSpace(m.Error.Message)
				}
				return
			}
		}
	}
	t.lastLine = string(l)
}

func (t *tailBuffer) message() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > 0 {
		t.line(t.buf)
		t.buf = nil
	}
	msg := t.exitErr
	if msg == "" {
		msg = t.lastLine
	}
	if t.firstErr != "" && !strings.Contains(msg, t.firstErr) {
		msg += " (first: " + t.firstErr + ")"
	}
	msg = strings.TrimSpace(strings.ReplaceAll(msg, "\n", " "))
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// Version returns restic's version string, e.g. "0.19.1".
func (r *Repo) Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, r.bin(), "version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s version: %w (install restic 0.19.1: scripts/deps.sh)", r.bin(), err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return "", fmt.Errorf("unexpected `restic version` output %q", out)
	}
	return f[1], nil
}

// CheckVersion fails unless restic is at least min (e.g. "0.18.1").
func (r *Repo) CheckVersion(ctx context.Context, min string) (string, error) {
	v, err := r.Version(ctx)
	if err != nil {
		return "", err
	}
	if versionLess(v, min) {
		return v, fmt.Errorf("restic %s is too old: dhis2-life needs restic >= %s (install with scripts/deps.sh)", v, min)
	}
	return v, nil
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.TrimFunc(pa[i], func(r rune) bool { return r < '0' || r > '9' }))
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
