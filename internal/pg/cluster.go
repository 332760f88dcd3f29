package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster kinds.
const (
	KindPGCtl  = "pgctl"  // a data directory controlled with pg_ctl
	KindDebian = "debian" // a postgresql-common cluster (/etc/postgresql/V/NAME, pg_ctlcluster)
)

// Cluster is a PostgreSQL cluster on this host that dhis2-life stops, starts and upgrades.
// Its zero value is not useful; build it with PGCtlCluster or DebianCluster.
type Cluster struct {
	Kind    string `json:"kind"`
	Major   int    `json:"major"`
	Name    string `json:"name,omitempty"` // debian cluster name
	DataDir string `json:"data_dir"`
	ConfDir string `json:"conf_dir"` // holds postgresql.conf and pg_hba.conf
	BinDir  string `json:"bin_dir"`
	RunAs   string `json:"run_as,omitempty"`
	Port    int    `json:"port"`
}

// DebianConfRoot and DebianDataRoot are postgresql-common's directories.
const (
	DebianConfRoot = "/etc/postgresql"
	DebianDataRoot = "/var/lib/postgresql"
)

// PGCtlCluster describes a plain data directory; its major version is read from PG_VERSION.
func PGCtlCluster(dataDir, binDir, runAs string, port int) (Cluster, error) {
	c := Cluster{Kind: KindPGCtl, DataDir: dataDir, ConfDir: dataDir, BinDir: binDir, RunAs: runAs, Port: port}
	v, err := DataDirMajor(dataDir)
	if err != nil {
		return c, err
	}
	c.Major = v
	return c, nil
}

// DebianCluster describes the postgresql-common cluster VERSION/NAME, reading its data
// directory from /etc/postgresql/VERSION/NAME/postgresql.conf.
func DebianCluster(version, name, runAs string, port int) (Cluster, error) {
	major, err := strconv.Atoi(version)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster version %q is not a major version such as 13", version)
	}
	c := Cluster{Kind: KindDebian, Major: major, Name: name, RunAs: runAs, Port: port,
		ConfDir: filepath.Join(DebianConfRoot, version, name),
		BinDir:  fmt.Sprintf("/usr/lib/postgresql/%d/bin", major),
		DataDir: filepath.Join(DebianDataRoot, version, name)}
	if c.RunAs == "" {
		c.RunAs = "postgres"
	}
	if v, ok, err := ConfValue(filepath.Join(c.ConfDir, "postgresql.conf"), "data_directory"); err != nil {
		return c, fmt.Errorf("cluster %s/%s: %w (see pg_lsclusters)", version, name, err)
	} else if ok {
		c.DataDir = v
	}
	return c, nil
}

// String names the cluster as a human would.
func (c Cluster) String() string {
	if c.Kind == KindDebian {
		return fmt.Sprintf("cluster %d/%s (%s)", c.Major, c.Name, c.DataDir)
	}
	return fmt.Sprintf("cluster %s (PostgreSQL %d)", c.DataDir, c.Major)
}

// BinDirFor returns the server programs' directory of another major version: BinDir with its
// version path element replaced, else Debian's /usr/lib/postgresql/MAJOR/bin.
func (c Cluster) BinDirFor(major int) string {
	old := strconv.Itoa(c.Major)
	parts := strings.Split(c.BinDir, string(filepath.Separator))
	for i, p := range parts {
		if p == old {
			parts[i] = strconv.Itoa(major)
			return strings.Join(parts, string(filepath.Separator))
		}
	}
	return fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
}

// DataDirMajor reads a data directory's major version (PG_VERSION).
func DataDirMajor(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return 0, fmt.Errorf("reading the data directory's PG_VERSION: %w (is data_dir a PostgreSQL data directory?)", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s/PG_VERSION holds %q, not a major version", dataDir, bytes.TrimSpace(b))
	}
	return v, nil
}

// Command builds an exec.Cmd running name (a path) as RunAs: directly when that is the
// current user (or RunAs is empty), with runuser as root, else with sudo -n.
func (c Cluster) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return AsUser(ctx, c.RunAs, name, args...)
}

// AsUser builds an exec.Cmd running name as user (see Cluster.Command). As root the child
// switches to the user itself (no runuser), so it can be given a parent-death signal.
func AsUser(ctx context.Context, runAs, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	if runAs == "" {
		return cmd
	}
	if u, err := user.Current(); err == nil && u.Username == runAs {
		return cmd
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup(runAs); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			// Supplementary groups as a login has them: Debian clusters read their TLS key
			// through the ssl-cert group.
			groups := []uint32{}
			if ids, err := u.GroupIds(); err == nil {
				for _, g := range ids {
					if n, err := strconv.Atoi(g); err == nil {
						groups = append(groups, uint32(n))
					}
				}
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
			cmd.Env = append(os.Environ(), "HOME="+u.HomeDir, "USER="+runAs, "LOGNAME="+runAs)
			return cmd
		}
	}
	return exec.CommandContext(ctx, "sudo", append([]string{"-n", "-u", runAs, "--", name}, args...)...)
}

// run runs a program as RunAs and returns a wrapped error with the tail of its output.
func (c Cluster) run(ctx context.Context, what, name string, args ...string) error {
	cmd := c.Command(ctx, name, args...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w: %s", what, filepath.Base(name), strings.Join(args, " "), err, lastLines(out, 6))
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Running reports whether a postmaster runs on the data directory (pg_ctl status).
func (c Cluster) Running(ctx context.Context) (bool, error) {
	if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	cmd := c.Command(ctx, filepath.Join(c.BinDir, "pg_ctl"), "status", "-D", c.DataDir)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return false, nil
	}
	return false, fmt.Errorf("checking %s: %w: %s", c, err, lastLines(out, 3))
}

// Start starts the cluster and waits until it accepts connections; a running cluster is left
// alone.
func (c Cluster) Start(ctx context.Context) error {
	if up, err := c.Running(ctx); err != nil || up {
		return err
	}
	if c.Kind == KindDebian {
		return c.run(ctx, "starting "+c.String(), "pg_ctlcluster", strconv.Itoa(c.Major), c.Name, "start")
	}
	return c.run(ctx, "starting "+c.String(), filepath.Join(c.BinDir, "pg_ctl"), "start", "-D", c.DataDir,
		"-l", filepath.Join(c.DataDir, "dhis2-life-server.log"), "-w", "-t", "300")
}

// Stop stops the cluster (fast shutdown) and waits; a stopped cluster is left alone.
func (c Cluster) Stop(ctx context.Context) error {
	if up, err := c.Running(ctx); err != nil || !up {
		return err
	}
	if c.Kind == KindDebian {
		return c.run(ctx, "stopping "+c.String(), "pg_ctlcluster", strconv.Itoa(c.Major), c.Name, "stop", "-m", "fast")
	}
	return c.run(ctx, "stopping "+c.String(), filepath.Join(c.BinDir, "pg_ctl"), "stop", "-D", c.DataDir, "-m", "fast", "-w", "-t", "300")
}

// ConfFile returns the path of one of the cluster's configuration files.
func (c Cluster) ConfFile(name string) string { return filepath.Join(c.ConfDir, name) }

// SetConf sets key = value in the cluster's postgresql.conf: earlier settings of key are
// commented out and one line marked "dhis2-life" is appended. Setting the same value again
// changes nothing. The file keeps its owner and mode.
func (c Cluster) SetConf(key, value string) error {
	return SetConfValue(c.ConfFile("postgresql.conf"), key, value)
}

var confLine = regexp.MustCompile(`^\s*([A-Za-z_.]+)\s*=?\s*(.*)$`)

// SetConfValue sets key = value in a postgresql.conf-style file (see Cluster.SetConf).
func SetConfValue(path, key, value string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if v, ok, _ := ConfValue(path, key); ok && v == value {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i, l := range lines {
		if m := confLine.FindStringSubmatch(l); m != nil && m[1] == key {
			lines[i] = "#" + l + " # replaced by dhis2-life"
		}
	}
	lines = append(lines, fmt.Sprintf("%s = %s # set by dhis2-life", key, quoteConf(value)))
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".dhis2-life.tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), fi.Mode().Perm()); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if st, ok := statOwner(fi); ok {
		_ = os.Chown(tmp, st.uid, st.gid)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

func quoteConf(v string) string {
	if _, err := strconv.Atoi(v); err == nil {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// ConfValue returns the last setting of key in a postgresql.conf-style file (quotes and
// trailing comments removed); ok is false when the key is not set there.
func ConfValue(path, key string) (value string, ok bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		m := confLine.FindStringSubmatch(l)
		if m == nil || m[1] != key {
			continue
		}
		v := strings.TrimSpace(m[2])
		if strings.HasPrefix(v, "'") {
			if end := strings.Index(v[1:], "'"); end >= 0 {
				v = v[1 : end+1]
			}
		} else if i := strings.Index(v, "#"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		value, ok = v, true
	}
	return value, ok, nil
}

// WaitReady polls the cluster's port with pg_isready until it accepts connections.
func (c Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "pg_isready"), "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-q")
		if cmd.Run() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections on port %d after %s", c, c.Port, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
