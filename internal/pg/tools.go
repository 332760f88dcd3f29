package pg

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/proc"
)

// Tool is a PostgreSQL client program (pg_dump, pg_restore, psql) bound to a database.
type Tool struct {
	Path string   // binary
	Args []string // connection arguments (no password)
	Env  []string // extra environment (PGPASSFILE)
}

// ToolFor returns the named client program for the server major version (Debian layout
// /usr/lib/postgresql/MAJOR/bin first, then PATH) with connection arguments for c. When c
// has a password file, a temporary passfile (0600) is written in tmpDir; call cleanup.
func ToolFor(name string, serverMajor int, c Conn, tmpDir string) (*Tool, func(), error) {
	return ToolIn("", name, serverMajor, c, tmpDir)
}

// ToolIn is ToolFor preferring binDir (an instance's pg_bin_dir) when it is not empty.
func ToolIn(binDir, name string, serverMajor int, c Conn, tmpDir string) (*Tool, func(), error) {
	path := ""
	if binDir != "" {
		path = filepath.Join(binDir, name)
		if _, err := os.Stat(path); err != nil {
			return nil, func() {}, fmt.Errorf("%s not found in pg_bin_dir %s: %v", name, binDir, err)
		}
	}
	if path == "" && serverMajor > 0 {
		p := fmt.Sprintf("/usr/lib/postgresql/%d/bin/%s", serverMajor, name)
		if _, err := os.Stat(p); err == nil {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, func() {}, fmt.Errorf("%s not found (install postgresql-client-%d)", name, serverMajor)
		}
		path = p
	}
	t := &Tool{Path: path, Args: []string{"--dbname=" + c.DSN}}
	cleanup := func() {}
	if c.PasswordFile != "" {
		cfg, err := c.Config()
		if err != nil {
			return nil, cleanup, err
		}
		if err := os.MkdirAll(tmpDir, 0o700); err != nil {
			return nil, cleanup, fmt.Errorf("creating temp dir: %w", err)
		}
		f, err := os.CreateTemp(tmpDir, proc.TempName("pgpass"))
		if err != nil {
			return nil, cleanup, fmt.Errorf("writing temporary passfile: %w", err)
		}
		esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
		fmt.Fprintf(f, "*:*:*:%s:%s\n", esc.Replace(cfg.User), esc.Replace(cfg.Password))
		f.Close()
		cleanup = func() { os.Remove(f.Name()) }
		t.Env = append(t.Env, "PGPASSFILE="+f.Name())
	}
	return t, cleanup, nil
}

// Command builds an exec.Cmd running the tool with args after the connection arguments.
func (t *Tool) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, t.Path, append(append([]string{}, t.Args...), args...)...)
	// Storage credentials stay with dhis2-life and restic; the tool dies with its parent.
	cmd.Env = append(proc.CleanEnv(os.Environ()), t.Env...)
	cmd.SysProcAttr = proc.Attr(false)
	return cmd
}

// MajorVersion runs `tool --version` and returns its major version (e.g. 15).
func (t *Tool) MajorVersion(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, t.Path, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("running %s --version: %w", filepath.Base(t.Path), err)
	}
	m := regexp.MustCompile(`(\d+)(\.\d+)?`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("cannot read version from %q", bytes.TrimSpace(out))
	}
	return strconv.Atoi(string(m[1]))
}

// CheckDumpVersion fails when pg_dump is older than the server.
func CheckDumpVersion(ctx context.Context, t *Tool, serverMajor int) error {
	v, err := t.MajorVersion(ctx)
	if err != nil {
		return err
	}
	if v < serverMajor {
		return fmt.Errorf("%s is version %d but the server is PostgreSQL %d: install postgresql-client-%d (pg_dump must not be older than the server)", t.Path, v, serverMajor, serverMajor)
	}
	return nil
}

// QuoteLiteral quotes a string as an SQL literal.
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// TerminateOthers ends the other sessions on database db (via an admin connection).
func TerminateOthers(ctx context.Context, admin *pgx.Conn, db string) (int, error) {
	var n int
	err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("terminating sessions on %s: %w", db, err)
	}
	return n, nil
}

// Sessions lists other client sessions on db as "user@client (application)"; autovacuum
// workers are left out (PostgreSQL ends them itself for DROP and RENAME DATABASE).
func Sessions(ctx context.Context, admin *pgx.Conn, db string) ([]string, error) {
	rows, err := admin.Query(ctx, `SELECT coalesce(usename,'?') || '@' || coalesce(client_addr::text, 'local') || ' (' || coalesce(nullif(application_name,''),'-') || ')' FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`, db)
	if err != nil {
		return nil, fmt.Errorf("listing sessions on %s: %w", db, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// SettledSessions is Sessions, asked again for up to wait while sessions remain: the backend
// of a connection that was just closed (one of our own included) lingers for a moment in
// pg_stat_activity, and must not be taken for someone using the database.
func SettledSessions(ctx context.Context, admin *pgx.Conn, db string, wait time.Duration) ([]string, error) {
	deadline := time.Now().Add(wait)
	for {
		s, err := Sessions(ctx, admin, db)
		if err != nil || len(s) == 0 || time.Now().After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return s, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
