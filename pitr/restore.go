package pitr

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	Instance *config.Instance
	Repo     *restic.Repo
	Log      *slog.Logger
	// Target is the time to recover to (inclusive).
	Target time.Time
	// DataDir receives the cluster; it must not exist or be empty.
	DataDir string
	Port    int
	// Pause leaves the cluster paused in recovery at the target (read-only, inspect, then
	// SELECT pg_wal_replay_resume() to promote); otherwise it is promoted.
	Pause bool
	// RestoreCommand is restore_command (`dhis2-life wal fetch %f %p --instance N`).
	RestoreCommand string
	// Scratch makes a private cluster for drills: no TCP listener, sockets in SocketDir only,
	// local connections trusted.
	Scratch   bool
	SocketDir string
	// Now is the clock (nil = time.Now).
	Now func() time.Time
}

// RestoreResult is what Restore did.
type RestoreResult struct {
	Instance string    `json:"instance"`
	Base     string    `json:"base_backup"`
	BaseTime time.Time `json:"base_backup_finished"`
	Target   time.Time `json:"target"`
	DataDir  string    `json:"data_dir"`
	Port     int       `json:"port"`
	State    string    `json:"state"` // "promoted" | "paused"
	// Reached is the commit time of the last transaction replayed (when PostgreSQL said).
	Reached *time.Time `json:"reached,omitempty"`
	Seconds float64    `json:"seconds"`
	LogFile string     `json:"log_file"`
	// ServerMajor is the PostgreSQL major version of the base backup (for Stop).
	ServerMajor int `json:"server_major"`
}

// ErrStoppedEarly means recovery ran out of archived WAL before the target.
var ErrStoppedEarly = errors.New("recovery stopped before the target")

// StoppedEarlyError says where recovery stopped and which WAL file was missing.
type StoppedEarlyError struct {
	Target  time.Time
	Reached *time.Time
	Missing string
	LogFile string
}

func (e *StoppedEarlyError) Error() string {
	reached := "no transaction was replayed"
	if e.Reached != nil {
		reached = "the last reachable time is " + e.Reached.UTC().Format("2006-01-02 15:04:05.000000Z07:00")
	}
	missing := "a WAL file is missing from the archive"
	if e.Missing != "" {
		missing = "WAL file " + e.Missing + " is missing from the archive"
	}
	return fmt.Sprintf("recovery to %s stopped early: %s; %s (restore again into an empty directory with --pitr at or before that time; server log %s)",
		e.Target.UTC().Format(time.RFC3339), missing, reached, e.LogFile)
}

func (e *StoppedEarlyError) Unwrap() error { return ErrStoppedEarly }

// Restore restores the instance's newest base backup finished before the target into DataDir,
// configures recovery to the target with restore_command, starts the cluster on Port and waits
// until it is promoted (or paused at the target).
func Restore(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	t0 := time.Now()
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if o.Target.After(now()) {
		return nil, fmt.Errorf("target %s is in the future: recovery could never reach it", o.Target.UTC().Format(time.RFC3339))
	}
	if o.Port <= 0 || o.Port > 65535 {
		return nil, fmt.Errorf("--port %d is not a port", o.Port)
	}
	bases, err := ListBase(ctx, o.Repo, o.Instance.Name)
	if err != nil {
		return nil, err
	}
	b := newestBefore(bases, o.Target)
	if b == nil {
		if len(bases) == 0 {
			return nil, fmt.Errorf("instance %s has no base backup: take one with `dhis2-life base-backup --instance %s`", o.Instance.Name, o.Instance.Name)
		}
		return nil, fmt.Errorf("no base backup of instance %s finished before %s: the oldest finished at %s",
			o.Instance.Name, o.Target.UTC().Format(time.RFC3339), bases[0].Finished.Format(time.RFC3339))
	}
	if err := emptyDir(o.DataDir); err != nil {
		return nil, err
	}
	owner, err := clusterOwner(o.Instance)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.DataDir, err)
	}
	if err := owner.chown(o.DataDir); err != nil {
		return nil, err
	}
	_ = os.Chmod(o.DataDir, 0o700)
	o.Log.Info("restoring base backup", "base", b.ID, "finished", b.Finished, "target", o.Target, "data_dir", o.DataDir)
	if err := extractBase(ctx, o.Repo, b, o.DataDir, owner); err != nil {
		return nil, err
	}
	logFile := filepath.Join(o.DataDir, "dhis2-life-pitr.log")
	if err := configureRecovery(o, owner); err != nil {
		return nil, err
	}
	binDir := o.Instance.PGBinDir
	if binDir == "" {
		binDir = fmt.Sprintf("/usr/lib/postgresql/%d/bin", b.Server.VersionNum/10000)
	}
	res := &RestoreResult{Instance: o.Instance.Name, Base: b.ID, BaseTime: b.Finished, Target: o.Target.UTC(),
		DataDir: o.DataDir, Port: o.Port, LogFile: logFile, ServerMajor: b.Server.VersionNum / 10000}
	start := exec.CommandContext(ctx, filepath.Join(binDir, "pg_ctl"), "-D", o.DataDir, "-l", logFile, "-w", "-t", "86400", "start")
	start.Env = []string{"PATH=" + binDir + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}
	start.SysProcAttr = &syscall.SysProcAttr{Credential: owner.cred}
	out, startErr := start.CombinedOutput()
	// When pg_ctl failed the server is not running: read the log once for why.
	state, reached, missing, err := waitRecovery(ctx, logFile, o.Pause, startErr != nil)
	res.Reached = reached
	if err != nil {
		if errors.Is(err, ErrStoppedEarly) {
			return res, &StoppedEarlyError{Target: o.Target, Reached: reached, Missing: missing, LogFile: logFile}
		}
		if startErr != nil {
			return res, fmt.Errorf("starting the restored cluster: %v: %s; %v (server log %s)", startErr, bytes.TrimSpace(out), err, logFile)
		}
		return res, err
	}
	res.State = state
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// Stop stops a cluster started by Restore (fast shutdown).
func Stop(ctx context.Context, in *config.Instance, dataDir string, serverMajor int) error {
	owner, err := clusterOwner(in)
	if err != nil {
		return err
	}
	binDir := in.PGBinDir
	if binDir == "" {
		binDir = fmt.Sprintf("/usr/lib/postgresql/%d/bin", serverMajor)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_ctl"), "-D", dataDir, "-m", "fast", "-w", "stop")
	cmd.Env = []string{"PATH=" + binDir + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: owner.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stopping the cluster in %s: %v: %s", dataDir, err, bytes.TrimSpace(out))
	}
	return nil
}

var (
	lastXactRe = regexp.MustCompile(`last completed transaction was at log time (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d)`)
	missingRe  = regexp.MustCompile(`wal fetch: ([0-9A-F]{24}) is not in the WAL archive`)
)

// waitRecovery follows the server log until recovery is promoted or paused, or fails.
func waitRecovery(ctx context.Context, logFile string, pause, once bool) (state string, reached *time.Time, missing string, err error) {
	for {
		b, _ := os.ReadFile(logFile)
		s := string(b)
		if m := lastXactRe.FindAllStringSubmatch(s, -1); m != nil {
			if t, perr := time.Parse("2006-01-02 15:04:05.999999-07", m[len(m)-1][1]); perr == nil {
				reached = &t
			}
		}
		switch {
		case strings.Contains(s, "recovery ended before configured recovery target was reached"):
			if m := missingRe.FindAllStringSubmatch(s, -1); m != nil {
				missing = m[len(m)-1][1]
			}
			return "", reached, missing, ErrStoppedEarly
		case pause && strings.Contains(s, "pausing at the end of recovery"):
			return "paused", reached, "", nil
		case !pause && strings.Contains(s, "database system is ready to accept connections"):
			return "promoted", reached, "", nil
		case strings.Contains(s, "database system is shut down"):
			return "", reached, "", fmt.Errorf("the restored cluster shut down during recovery: %s", lastLines(s, 5))
		case once:
			return "", reached, "", fmt.Errorf("the restored cluster is not running: %s", lastLines(s, 5))
		}
		select {
		case <-ctx.Done():
			return "", reached, "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// configureRecovery writes recovery settings (and a minimal configuration where the base
// backup has none, as on Debian where it lives in /etc/postgresql) and recovery.signal.
func configureRecovery(o RestoreOptions, owner *osUser) error {
	dir := o.DataDir
	write := func(name, content string, appendTo bool) error {
		p := filepath.Join(dir, name)
		flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if appendTo {
			flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		f, err := os.OpenFile(p, flags, 0o600)
		if err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		_, err = f.WriteString(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		return owner.chown(p)
	}
	if _, err := os.Stat(filepath.Join(dir, "postgresql.conf")); os.IsNotExist(err) {
		if err := write("postgresql.conf", "# written by dhis2-life restore --pitr (the base backup had none)\n", false); err != nil {
			return err
		}
	}
	_, statErr := os.Stat(filepath.Join(dir, "pg_hba.conf"))
	switch {
	case o.Scratch:
		hba := "# written by dhis2-life (PITR drill): sockets only, in a private directory\nlocal all all trust\n"
		if err := write("pg_hba.conf", hba, false); err != nil {
			return err
		}
	case os.IsNotExist(statErr):
		hba := "# written by dhis2-life restore --pitr (the base backup had none)\nlocal all all peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
		if err := write("pg_hba.conf", hba, false); err != nil {
			return err
		}
	}
	for _, d := range []string{"pg_wal", "pg_wal/archive_status"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if err := owner.chown(p); err != nil {
			return err
		}
	}
	action := "promote"
	if o.Pause {
		action = "pause"
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	var b strings.Builder
	fmt.Fprintf(&b, "\n# added by dhis2-life restore --pitr\n")
	fmt.Fprintf(&b, "restore_command = %s\n", q(o.RestoreCommand))
	fmt.Fprintf(&b, "recovery_target_time = %s\n", q(o.Target.UTC().Format("2006-01-02 15:04:05.999999+00")))
	fmt.Fprintf(&b, "recovery_target_inclusive = on\nrecovery_target_action = %s\n", q(action))
	// The restored cluster must never archive into the production cluster's archive.
	b.WriteString("archive_mode = off\narchive_command = ''\n")
	fmt.Fprintf(&b, "port = %d\nhot_standby = on\nlogging_collector = off\nlc_messages = 'C'\nlog_timezone = 'UTC'\n", o.Port)
	if o.Scratch {
		fmt.Fprintf(&b, "listen_addresses = ''\nunix_socket_directories = %s\nssl = off\n", q(o.SocketDir))
	} else {
		b.WriteString("listen_addresses = '127.0.0.1'\n")
		if o.SocketDir != "" {
			fmt.Fprintf(&b, "unix_socket_directories = %s\n", q(o.SocketDir))
		}
	}
	if err := write("postgresql.auto.conf", b.String(), true); err != nil {
		return err
	}
	return write("recovery.signal", "", false)
}

// extractBase streams the base backup's tar from restic into dir.
func extractBase(ctx context.Context, repo *restic.Repo, b *BaseManifest, dir string, owner *osUser) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := repo.Dump(ctx, b.Part.Snapshot, "/"+BaseFile, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	err := untar(pr, dir, owner)
	if err != nil {
		pr.CloseWithError(err)
	} else {
		_, _ = io.Copy(io.Discard, pr)
	}
	if derr := <-done; derr != nil && err == nil {
		err = fmt.Errorf("reading base backup %s from the repository: %w", b.ID, derr)
	}
	return err
}

func untar(r io.Reader, dir string, owner *osUser) error {
	tr := tar.NewReader(r)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the base backup tar: %w", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("base backup tar holds an unsafe path %q", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm()&0o700|0o600)
			if err != nil {
				return fmt.Errorf("restoring %s: %w", p, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("restoring %s: %w", p, err)
			}
			n++
		case tar.TypeSymlink:
			return fmt.Errorf("base backup holds a symbolic link %s -> %s (tablespaces are not supported by restore --pitr)", h.Name, h.Linkname)
		default:
			continue
		}
		if err := owner.chown(p); err != nil {
			return err
		}
	}
	if n == 0 {
		return errors.New("the base backup tar holds no files")
	}
	return nil
}

// emptyDir refuses an existing non-empty directory.
func emptyDir(dir string) error {
	if dir == "" {
		return errors.New("name the data directory to restore into (--to-data-dir DIR)")
	}
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty: restore --pitr only writes into a new or empty directory", dir)
	}
	return nil
}

// osUser is the owner of a restored cluster.
type osUser struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil when that is the current user
}

func (u *osUser) chown(p string) error {
	if u.cred == nil {
		return nil
	}
	if err := os.Lchown(p, u.uid, u.gid); err != nil {
		return fmt.Errorf("giving %s to %s: %w", p, u.name, err)
	}
	return nil
}

// clusterOwner is wal.run_as, else "postgres" when running as root, else the current user.
func clusterOwner(in *config.Instance) (*osUser, error) {
	name := ""
	if in.WAL != nil {
		name = in.WAL.RunAs
	}
	if name == "" && os.Geteuid() == 0 {
		name = "postgres"
	}
	if name == "" {
		return &osUser{name: "current user", uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("cluster owner %q: %v (set instances.%s.wal.run_as)", name, err, in.Name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == os.Geteuid() {
		return &osUser{name: name, uid: uid, gid: gid}, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("restoring a cluster owned by %s needs root (or run dhis2-life as %s)", name, name)
	}
	return &osUser{name: name, uid: uid, gid: gid, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}, nil
}
