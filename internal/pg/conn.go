package pg

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Conn describes how to reach one PostgreSQL database. DSN never carries the password;
// PasswordFile (optional) does, otherwise libpq's PGPASSFILE/~/.pgpass apply.
type Conn struct {
	DSN          string
	PasswordFile string
}

// Config parses the DSN and applies the password file.
func (c Conn) Config() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("parsing database DSN %s: %v", Redact(c.DSN), redactErr(err, c.DSN))
	}
	if c.PasswordFile != "" {
		pw, err := readPassword(c.PasswordFile)
		if err != nil {
			return nil, err
		}
		cfg.Password = pw
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	return cfg, nil
}

func readPassword(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("reading database password file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("database password file %s is mode %04o: run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading database password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Connect opens a connection.
func (c Conn) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %v", c.Describe(), redactErr(err, c.DSN))
	}
	return conn, nil
}

// bulkReadBuffer is the socket read buffer of ConnectBulk.
const bulkReadBuffer = 1 << 20

// ConnectBulk is Connect for a session that reads a lot (the dump's COPY): pgx reads the
// socket 8 KiB at a time, so a 1 MiB buffer in front of it takes a whole dump in far fewer
// read calls.
func (c Conn) ConnectBulk(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, err
	}
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, bulkReadBuffer), w)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %v", c.Describe(), redactErr(err, c.DSN))
	}
	return conn, nil
}

// Describe names the database without secrets: user@host:port/db.
func (c Conn) Describe() string {
	cfg, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return Redact(c.DSN)
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// Database returns the database name of the DSN.
func (c Conn) Database() string {
	cfg, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return ""
	}
	return cfg.Database
}

// User returns the user name of the DSN.
func (c Conn) User() string {
	cfg, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return ""
	}
	return cfg.User
}

// WithDatabase returns the same connection for another database on the same server.
func (c Conn) WithDatabase(db string) Conn {
	out := c
	if strings.HasPrefix(c.DSN, "postgres://") || strings.HasPrefix(c.DSN, "postgresql://") {
		if u, err := url.Parse(c.DSN); err == nil {
			u.Path = "/" + db
			u.RawPath = ""
			out.DSN = u.String()
			return out
		}
	}
	fields := strings.Fields(c.DSN)
	replaced := false
	for i, f := range fields {
		if strings.HasPrefix(f, "dbname=") {
			fields[i] = "dbname=" + quoteKV(db)
			replaced = true
		}
	}
	if !replaced {
		fields = append(fields, "dbname="+quoteKV(db))
	}
	out.DSN = strings.Join(fields, " ")
	return out
}

func quoteKV(s string) string {
	if s != "" && !strings.ContainsAny(s, ` '\`) {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Endpoint identifies a database on a server after resolving names: used to tell whether two
// DSNs point at the same database whatever their spelling.
type Endpoint struct {
	Hosts    []string // resolved addresses (or socket directory)
	Port     uint16
	Database string
}

// Resolve resolves the DSN's host to addresses.
func (c Conn) Resolve(ctx context.Context) (Endpoint, error) {
	cfg, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parsing database DSN %s: %v", Redact(c.DSN), redactErr(err, c.DSN))
	}
	ep := Endpoint{Port: cfg.Port, Database: cfg.Database}
	hosts := []string{cfg.Host}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") {
			ep.Hosts = append(ep.Hosts, "unix:"+filepath.Clean(h))
			// a local socket reaches the same server as loopback addresses
			ep.Hosts = append(ep.Hosts, "127.0.0.1", "::1")
			continue
		}
		addrs, err := net.DefaultResolver.LookupHost(ctx, h)
		if err != nil {
			ep.Hosts = append(ep.Hosts, strings.ToLower(h))
			continue
		}
		for _, a := range addrs {
			ip := net.ParseIP(a)
			if ip != nil && ip.IsLoopback() {
				ep.Hosts = append(ep.Hosts, "127.0.0.1", "::1")
			}
			ep.Hosts = append(ep.Hosts, a)
		}
	}
	return ep, nil
}

// Same reports whether two endpoints name the same database on the same server.
func (e Endpoint) Same(o Endpoint) bool {
	if e.Port != o.Port || e.Database != o.Database {
		return false
	}
	for _, a := range e.Hosts {
		for _, b := range o.Hosts {
			if a == b {
				return true
			}
		}
	}
	return false
}

// Redact removes any password from a DSN for messages.
func Redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")) {
		changed := false
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				changed = true
			}
		}
		if q := u.Query(); q.Has("password") { // libpq also takes ?password=
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
			changed = true
		}
		if changed {
			return u.String()
		}
		return dsn
	}
	f := strings.Fields(dsn)
	for i, kv := range f {
		if strings.HasPrefix(kv, "password=") {
			f[i] = "password=xxxxx"
		}
	}
	return strings.Join(f, " ")
}

func redactErr(err error, dsn string) string {
	s := err.Error()
	if dsn != "" {
		s = strings.ReplaceAll(s, dsn, Redact(dsn))
	}
	return s
}

// ServerVersion returns server_version_num (e.g. 150018) and server_version.
func ServerVersion(ctx context.Context, conn *pgx.Conn) (int, string, error) {
	var num, s string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num'), current_setting('server_version')").Scan(&num, &s); err != nil {
		return 0, "", fmt.Errorf("reading server version: %w", err)
	}
	n, _ := strconv.Atoi(num)
	return n, s, nil
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// QualifiedName returns "schema"."name".
func QualifiedName(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }

// SameServer reports whether two endpoints are on the same server (any database).
func (e Endpoint) SameServer(o Endpoint) bool {
	o.Database = e.Database
	return e.Same(o)
}
