package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// workDir makes a short temporary directory owned by the cluster's user: pg_upgrade's
// working directory and socket directory (socket paths must stay under ~100 bytes).
func workDir(c pg.Cluster) (string, error) {
	d, err := os.MkdirTemp("", "dl-upg-")
	if err != nil {
		return "", fmt.Errorf("creating pg_upgrade's work directory: %w", err)
	}
	if err := chownTo(d, c.RunAs); err != nil {
		os.RemoveAll(d)
		return "", err
	}
	return d, nil
}

func chownTo(path, runAs string) error {
	if runAs == "" || os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(runAs)
	if err != nil {
		return fmt.Errorf("cluster user %s: %w", runAs, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, runAs, err)
	}
	return nil
}

// mkdirOwned creates dir and its missing parents, owned by runAs.
func mkdirOwned(dir, runAs string) error {
	var created []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		created = append(created, p)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, p := range created {
		if err := chownTo(p, runAs); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// initCluster creates an empty cluster of the new major with blue's settings.
func initCluster(ctx context.Context, c pg.Cluster, s InitSettings, debianPort int) error {
	initArgs := []string{"-U", s.Superuser, "-E", s.Encoding, "--lc-collate", s.Collate, "--lc-ctype", s.Ctype}
	if s.Checksums {
		initArgs = append(initArgs, "-k")
	}
	if c.Kind == pg.KindDebian {
		args := append([]string{"-p", strconv.Itoa(debianPort), "--start-conf", "manual", strconv.Itoa(c.Major), c.Name, "--"}, initArgs...)
		out, err := exec.CommandContext(ctx, "pg_createcluster", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_createcluster %d %s: %w: %s", c.Major, c.Name, err, lastN(strings.TrimSpace(string(out)), 400))
		}
		return nil
	}
	if err := mkdirOwned(c.DataDir, c.RunAs); err != nil {
		return err
	}
	cmd := c.Command(ctx, filepath.Join(c.BinDir, "initdb"), append([]string{"-D", c.DataDir}, initArgs...)...)
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", c.DataDir, err, lastN(strings.TrimSpace(string(out)), 400))
	}
	return nil
}

// pgUpgradeCmd builds pg_upgrade's command line.
func pgUpgradeCmd(ctx context.Context, r pg.Cluster, g pg.Cluster, s InitSettings, method, dir string, oldPort, newPort int, check bool) *exec.Cmd {
	args := []string{"-b", r.BinDir, "-B", g.BinDir, "-d", r.DataDir, "-D", g.DataDir,
		"-p", strconv.Itoa(oldPort), "-P", strconv.Itoa(newPort), "-U", s.Superuser, "-s", dir, "-j", "2"}
	switch method {
	case "link":
		args = append(args, "--link")
	case "clone":
		args = append(args, "--clone")
	}
	if r.Kind == pg.KindDebian {
		args = append(args, "-o", "-c config_file="+r.ConfFile("postgresql.conf"))
	}
	if g.Kind == pg.KindDebian && !check {
		args = append(args, "-O", "-c config_file="+g.ConfFile("postgresql.conf"))
	}
	if check {
		args = append(args, "--check")
	}
	cmd := g.Command(ctx, filepath.Join(g.BinDir, "pg_upgrade"), args...)
	cmd.Dir = dir
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return cmd
}

// checkUpgrade runs `pg_upgrade --check` against the live blue and a scratch new cluster.
func checkUpgrade(ctx context.Context, p *PlanReport) error {
	dir, err := workDir(p.Blue)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scratch := p.Green
	scratch.Kind = pg.KindPGCtl
	scratch.DataDir = filepath.Join(dir, "check")
	scratch.ConfDir = scratch.DataDir
	if err := initCluster(ctx, scratch, p.Init, 0); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := pgUpgradeCmd(ctx, p.Blue, scratch, p.Init, p.Method, dir, p.Blue.Port, port, true)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_upgrade --check: %w: %s", err, failureLines(out, dir))
	}
	return nil
}

// failureLines picks pg_upgrade's failure lines (and the log it names) from its output.
func failureLines(out []byte, dir string) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasSuffix(l, "ok") || strings.HasPrefix(l, "Performing") || strings.HasPrefix(l, "------") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > 6 {
		keep = keep[len(keep)-6:]
	}
	return strings.Join(keep, " | ")
}

// runPGUpgrade makes green from blue; a repeated call first undoes a half-done attempt.
func runPGUpgrade(ctx context.Context, o Options, r *Record) error {
	if err := undoPGUpgrade(ctx, o, r); err != nil {
		return err
	}
	dir, err := workDir(r.Blue)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmpPort, err := freePort()
	if err != nil {
		return err
	}
	if err := initCluster(ctx, r.Green, r.Init, tmpPort); err != nil {
		return err
	}
	ports := [2]int{}
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	cmd := pgUpgradeCmd(ctx, r.Blue, r.Green, r.Init, r.Method, dir, ports[0], ports[1], false)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting pg_upgrade: %w", err)
	}
	r.UpgradePID = cmd.Process.Pid
	if err := put(o.Catalog, r); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return err
	}
	if os.Getenv(KillEnv) == "pg_upgrade:mid" {
		go func() {
			// SIGKILL once pg_upgrade has reached its restore or transfer phase.
			for i := 0; i < 600; i++ {
				if s := out.String(); strings.Contains(s, "Restoring database schemas") || strings.Contains(s, "Copying user relation") || strings.Contains(s, "Linking user relation") {
					killAt("pg_upgrade:mid")
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	err = cmd.Wait()
	r.UpgradePID = 0
	if err != nil {
		return fmt.Errorf("pg_upgrade: %w: %s", err, failureLines([]byte(out.String()), dir))
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// undoPGUpgrade returns blue and green's place to the state before pg_upgrade: a pg_upgrade
// left running by a killed dhis2-life is killed, servers it started are stopped cleanly,
// a link-mode blue gets its pg_control back and green is removed.
func undoPGUpgrade(ctx context.Context, o Options, r *Record) error {
	if pid := r.UpgradePID; pid > 0 {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "pg_upgrade" {
			o.say("  killing the pg_upgrade (pid %d) left by an earlier run", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 100; i++ {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		r.UpgradePID = 0
	}
	if r.GreenStarted && r.Method == "link" {
		return errLinkRollback
	}
	green := r.Green
	green.Kind = pg.KindPGCtl // its servers are pg_upgrade's: stop them by data directory
	if _, err := os.Stat(green.DataDir); err == nil {
		if err := green.Stop(ctx); err != nil {
			return err
		}
	}
	blue := r.Blue
	blue.Kind = pg.KindPGCtl
	if err := blue.Stop(ctx); err != nil {
		return err
	}
	if r.Method == "link" {
		old := filepath.Join(r.Blue.DataDir, "global", "pg_control.old")
		cur := filepath.Join(r.Blue.DataDir, "global", "pg_control")
		if _, err := os.Stat(old); err == nil {
			if _, err := os.Stat(cur); errors.Is(err, os.ErrNotExist) {
				if err := os.Rename(old, cur); err != nil {
					return fmt.Errorf("restoring blue's pg_control: %w", err)
				}
				o.say("  restored blue's global/pg_control (pg_upgrade --link had renamed it)")
			}
		}
	}
	if err := ensureCleanShutdown(ctx, r.Blue); err != nil {
		return err
	}
	return removeGreen(ctx, r)
}

// ensureCleanShutdown starts and stops blue when its last shutdown was not clean (pg_upgrade
// needs a cleanly shut down source).
func ensureCleanShutdown(ctx context.Context, c pg.Cluster) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "pg_controldata"), c.DataDir)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		return nil // not readable as this user: pg_upgrade will say so
	}
	if bytes.Contains(out, []byte("Database cluster state:               shut down\n")) {
		return nil
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	return c.Stop(ctx)
}

// removeGreen deletes green's data directory (and its postgresql-common cluster).
func removeGreen(ctx context.Context, r *Record) error {
	g := r.Green
	if g.DataDir == "" || g.DataDir == r.Blue.DataDir {
		return fmt.Errorf("refusing to remove green's data directory %q (it is blue's or empty)", g.DataDir)
	}
	if g.Kind == pg.KindDebian {
		if _, err := os.Stat(g.ConfDir); err == nil {
			if out, err := exec.CommandContext(ctx, "pg_dropcluster", "--stop", strconv.Itoa(g.Major), g.Name).CombinedOutput(); err != nil {
				return fmt.Errorf("pg_dropcluster %d %s: %w: %s", g.Major, g.Name, err, lastN(string(out), 300))
			}
		}
	}
	if err := os.RemoveAll(g.DataDir); err != nil {
		return fmt.Errorf("removing green's data directory: %w", err)
	}
	return nil
}

// carried are postgresql.conf settings green takes over from blue.
var carried = []string{"listen_addresses", "unix_socket_directories", "max_connections", "shared_buffers",
	"work_mem", "maintenance_work_mem", "effective_cache_size", "max_locks_per_transaction", "max_wal_size",
	"min_wal_size", "checkpoint_completion_target", "random_page_cost", "timezone", "log_timezone", "datestyle",
	"default_text_search_config", "fsync", "synchronous_commit", "full_page_writes", "jit", "shared_preload_libraries"}

// switchPort gives green blue's port, settings and access rules; blue keeps its data
// directory, stopped (postgresql-common: start.conf manual).
func switchPort(r *Record) error {
	bconf, gconf := r.Blue.ConfFile("postgresql.conf"), r.Green.ConfFile("postgresql.conf")
	for _, k := range carried {
		if k == "unix_socket_directories" && r.Green.Kind == pg.KindDebian {
			continue
		}
		v, ok, err := pg.ConfValue(bconf, k)
		if err != nil {
			return err
		}
		if ok {
			if err := pg.SetConfValue(gconf, k, v); err != nil {
				return err
			}
		}
	}
	if err := pg.SetConfValue(gconf, "port", strconv.Itoa(r.Blue.Port)); err != nil {
		return err
	}
	for _, f := range []string{"pg_hba.conf", "pg_ident.conf"} {
		if err := copyKeepOwner(r.Blue.ConfFile(f), r.Green.ConfFile(f)); err != nil {
			return err
		}
	}
	if r.Blue.Kind == pg.KindDebian {
		bs := r.Blue.ConfFile("start.conf")
		if r.BlueStartConf == "" {
			b, err := os.ReadFile(bs)
			if err != nil {
				return fmt.Errorf("reading blue's start.conf: %w", err)
			}
			r.BlueStartConf = string(b)
		}
		if err := os.WriteFile(r.Green.ConfFile("start.conf"), []byte(r.BlueStartConf), 0o644); err != nil {
			return fmt.Errorf("writing green's start.conf: %w", err)
		}
		if err := os.WriteFile(bs, []byte("manual\n"), 0o644); err != nil {
			return fmt.Errorf("writing blue's start.conf: %w", err)
		}
	}
	return nil
}

// copyKeepOwner copies src over dst; dst keeps its owner and mode.
func copyKeepOwner(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("reading %s: %w", src, err)
	}
	defer in.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return f.Close()
}

// Rollback returns the instance to blue: after a failed or killed upgrade, or after done
// (copy and clone; link restores the rollback point).
func Rollback(ctx context.Context, o Options) (*Record, error) {
	r, err := Latest(o.Catalog, o.Instance.Name)
	if err != nil {
		return nil, fmt.Errorf("nothing to roll back: %w", err)
	}
	if !r.Open() && r.State != StateDone {
		return r, fmt.Errorf("upgrade %s is %s: there is nothing to roll back", r.ID, r.State)
	}
	o.say("rolling back upgrade %s (%s at step %s) to PostgreSQL %d", r.ID, r.State, r.Step, r.From)
	if err := rollback(ctx, o, r); err != nil {
		return r, fmt.Errorf("rollback of upgrade %s failed: %w", r.ID, err)
	}
	return r, nil
}

func rollback(ctx context.Context, o Options, r *Record) (err error) {
	r.Rollback = nil
	note := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		r.Rollback = append(r.Rollback, s)
		o.say("rollback: %s", s)
	}
	defer func() {
		if err != nil {
			r.State = StateFailed
			if r.Error == "" {
				r.Error = "rollback: " + err.Error()
			}
			err = errors.Join(err, put(o.Catalog, r))
		}
	}()
	in := o.Instance
	wasDone := r.State == StateDone
	if r.Started(StepAppStart) {
		if err := hook(ctx, in.App.Stop, "stop"); err != nil {
			return err
		}
		note("app stopped (it ran on green)")
	}
	if r.Method == "link" && r.GreenStarted {
		if err := restorePoint(ctx, o, r, note); err != nil {
			return err
		}
	} else if r.Started(StepPGUpgrade) {
		if _, err := os.Stat(r.Green.DataDir); err == nil {
			if err := r.Green.Stop(ctx); err != nil {
				return err
			}
		}
		if err := undoPGUpgrade(ctx, o, r); err != nil {
			return err
		}
		note("green stopped and removed")
	}
	if r.Blue.Kind == pg.KindDebian && r.BlueStartConf != "" {
		if err := os.WriteFile(r.Blue.ConfFile("start.conf"), []byte(r.BlueStartConf), 0o644); err != nil {
			return fmt.Errorf("restoring blue's start.conf: %w", err)
		}
	}
	if err := r.Blue.Start(ctx); err != nil {
		return err
	}
	if err := r.Blue.WaitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	note("blue (PostgreSQL %d, %s) runs on port %d", r.From, r.Blue.DataDir, r.Blue.Port)
	if rows := r.BlueRows[dbName(in)]; rows != nil && !(r.Method == "link" && r.GreenStarted) {
		now, err := countRows(ctx, in)
		if err != nil {
			return err
		}
		if err := compareRows(rows, now); err != nil {
			return fmt.Errorf("blue after rollback: %w", err)
		}
		note("blue's row counts equal those before the upgrade (%d tables)", len(rows))
	}
	if r.Started(StepAppStop) {
		if err := hook(ctx, in.App.Start, "start"); err != nil {
			return err
		}
		if err := health(ctx, in.App.URL, o.healthTimeout()); err != nil {
			return err
		}
		note("app started on blue")
	}
	if wasDone {
		note("changes made on green after the upgrade finished are not in blue")
	}
	r.State = StateRolledBack
	return put(o.Catalog, r)
}

// Finalize removes blue's data directory of the instance's finished upgrade, when it has
// been done for at least olderThan.
func Finalize(ctx context.Context, o Options, olderThan time.Duration) (*Record, error) {
	r, err := Latest(o.Catalog, o.Instance.Name)
	if err != nil {
		return nil, fmt.Errorf("nothing to finalize: %w", err)
	}
	if r.State != StateDone || r.Done == nil {
		return r, fmt.Errorf("upgrade %s is %s, not done: finalize only after `dhis2-life upgrade resume` finished it (or roll it back)", r.ID, r.State)
	}
	if age := o.now().Sub(*r.Done); age < olderThan {
		return r, fmt.Errorf("upgrade %s finished %s ago, less than --older-than %s: wait, or pass a shorter --older-than", r.ID, age.Round(time.Second), days(olderThan))
	}
	if r.Blue.DataDir == r.Green.DataDir || r.Blue.DataDir == "" {
		return r, fmt.Errorf("refusing to remove blue's data directory %q: it is green's or empty", r.Blue.DataDir)
	}
	blue := r.Blue
	blue.Kind = pg.KindPGCtl
	if up, err := blue.Running(ctx); err != nil || up {
		return r, fmt.Errorf("blue (%s) is running: stop it before finalize", r.Blue.DataDir)
	}
	if r.Blue.Kind == pg.KindDebian {
		if out, err := exec.CommandContext(ctx, "pg_dropcluster", strconv.Itoa(r.Blue.Major), r.Blue.Name).CombinedOutput(); err != nil {
			return r, fmt.Errorf("pg_dropcluster %d %s: %w: %s", r.Blue.Major, r.Blue.Name, err, lastN(string(out), 300))
		}
	}
	if err := os.RemoveAll(r.Blue.DataDir); err != nil {
		return r, fmt.Errorf("removing blue's data directory: %w", err)
	}
	r.State = StateFinalized
	o.say("upgrade %s finalized: blue's data directory %s removed", r.ID, r.Blue.DataDir)
	return r, put(o.Catalog, r)
}

// restorePoint brings a link-mode blue back after green has started (blue's data directory
// shares its files with green and is no longer consistent): blue's directory is moved aside,
// a fresh cluster of the old major takes its place with blue's configuration, the roles are
// copied from green and the rollback point's set is restored into the instance database.
func restorePoint(ctx context.Context, o Options, r *Record, note func(string, ...any)) error {
	if o.RestoreSet == nil || r.PointSet == "" {
		return fmt.Errorf("%w and there is no rollback point to restore", errLinkRollback)
	}
	in := o.Instance
	aside := r.Blue.DataDir + ".linked-" + r.ID
	// Roles are cluster-wide and not in the set: take them from green (pg_upgrade carried
	// them over). They stay in memory only; green is removed last, so a repeated rollback
	// reads them again.
	if err := r.Green.Start(ctx); err != nil {
		return fmt.Errorf("starting green to copy its roles: %w", err)
	}
	if err := r.Green.WaitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	roles, err := dumpRoles(ctx, in, r.Green.BinDir, r.To)
	if err != nil {
		return err
	}
	if err := r.Green.Stop(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(aside); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(r.Blue.DataDir, aside); err != nil {
			return fmt.Errorf("moving blue's linked data directory aside: %w", err)
		}
		note("blue's linked data directory moved to %s", aside)
	}
	if _, err := os.Stat(filepath.Join(r.Blue.DataDir, "PG_VERSION")); err != nil {
		if err := os.RemoveAll(r.Blue.DataDir); err != nil {
			return err
		}
		fresh := r.Blue
		fresh.Kind = pg.KindPGCtl
		if err := initCluster(ctx, fresh, r.Init, 0); err != nil {
			return err
		}
		if r.Blue.Kind == pg.KindPGCtl {
			for _, f := range []string{"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf"} {
				if err := copyKeepOwner(filepath.Join(aside, f), filepath.Join(r.Blue.DataDir, f)); err != nil {
					return err
				}
			}
		}
		note("new PostgreSQL %d cluster initialised in %s with blue's configuration", r.From, r.Blue.DataDir)
	}
	if err := r.Blue.Start(ctx); err != nil {
		return err
	}
	if err := r.Blue.WaitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := loadRoles(ctx, in, r.Blue.BinDir, r.From, roles); err != nil {
		return err
	}
	excluded, err := o.RestoreSet(ctx, r.PointSet)
	if err != nil {
		return fmt.Errorf("restoring rollback point %s (set %s): %w", r.Point, r.PointSet, err)
	}
	note("rollback point %s (set %s) restored into %s", r.Point, r.PointSet, dbName(in))
	if rows := r.BlueRows[dbName(in)]; rows != nil {
		if now, err := countRows(ctx, in); err == nil {
			kept := map[string]int64{}
			for k, n := range rows {
				kept[k] = n
			}
			for _, k := range excluded {
				delete(kept, k)
				delete(now, k)
			}
			if err := compareRows(kept, now); err != nil {
				note("rows written between the rollback point and the app stop are not back (%v)", err)
			} else {
				note("row counts equal those before the upgrade, except %d regenerable tables the set leaves out", len(excluded))
			}
		}
	}
	if err := removeGreen(ctx, r); err != nil {
		return err
	}
	if err := os.RemoveAll(aside); err != nil {
		return fmt.Errorf("removing %s: %w", aside, err)
	}
	note("green and blue's linked data directory removed")
	return nil
}

// dumpRoles returns `pg_dumpall --roles-only` of the cluster the admin connection reaches.
func dumpRoles(ctx context.Context, in *config.Instance, binDir string, major int) (string, error) {
	c := adminConn(in)
	tool, cleanup, err := pg.ToolIn(binDir, "pg_dumpall", major, c, os.TempDir())
	defer cleanup()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := tool.Command(ctx, "--roles-only")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pg_dumpall --roles-only: %w: %s", err, lastN(stderr.String(), 300))
	}
	return string(out), nil
}

// loadRoles runs a roles dump on the fresh cluster; roles that exist already are skipped.
func loadRoles(ctx context.Context, in *config.Instance, binDir string, major int, roles string) error {
	if roles == "" {
		return nil
	}
	c := adminConn(in)
	tool, cleanup, err := pg.ToolIn(binDir, "psql", major, c, os.TempDir())
	defer cleanup()
	if err != nil {
		return err
	}
	cmd := tool.Command(ctx, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", "-")
	cmd.Stdin = strings.NewReader(roles)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("loading roles into blue: %w: %s", err, lastN(string(out), 300))
	}
	return nil
}

// days formats whole days as "7d", other durations as Go does.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
