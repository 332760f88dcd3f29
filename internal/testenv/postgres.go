package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a running PostgreSQL 15 cluster with PostGIS. Host and Port are for TCP on
// loopback; the superuser "postgres" is trusted there, AppUser must authenticate with
// AppPassword (scram-sha-256), as DHIS2's own user does in production.
type Postgres struct {
	Port        int
	Host        string
	AdminDSN    string // the postgres superuser on database postgres, no password (trust)
	AppUser     string // LOGIN CREATEDB, password-authenticated
	AppPassword string
	SocketDir   string // Unix socket directory (empty for an external cluster that did not say)
	DataDir     string // empty for an external cluster
	Version     string // server_version, e.g. "15.18 (Debian 15.18-0+deb12u1)"

	external  bool
	extraConf []string // "name=value" server settings (NewPostgres)
	root      string   // owned dir holding DataDir, the socket and the log
	logPath   string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// PGBinDir is the directory of PostgreSQL's programs (postgres, initdb, pg_dump, pg_restore…):
// $DHIS2_LIFE_PG_BIN, else /usr/lib/postgresql/15/bin.
func PGBinDir() string {
	if d := os.Getenv("DHIS2_LIFE_PG_BIN"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// PGBin returns the path of one of PostgreSQL's programs, failing the test when it is missing.
func PGBin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(PGBinDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testenv: PostgreSQL 15 program %s missing: %v; %s", name, err, fixHint)
	}
	return p
}

var pgShared struct {
	mu      sync.Mutex
	started bool
	pg      *Postgres
	err     error
}

// StartPostgres returns the cluster shared by all tests of the test binary, starting it on
// first use. With DHIS2_LIFE_TEST_PG_PORT set it uses that running cluster instead (see
// scripts/services.sh env). Tests must not stop it; Main does after the last test. Tests get
// isolation from CreateDB.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	pgShared.mu.Lock()
	defer pgShared.mu.Unlock()
	if !pgShared.started {
		pgShared.started = true
		t0 := time.Now()
		pgShared.pg, pgShared.err = startPostgres()
		if pgShared.err == nil {
			where := "started in " + pgShared.pg.DataDir
			if pgShared.pg.external {
				where = "external (DHIS2_LIFE_TEST_PG_PORT)"
			}
			t.Logf("testenv: PostgreSQL %s on %s:%d, %s, ready in %s", pgShared.pg.Version,
				pgShared.pg.Host, pgShared.pg.Port, where, since(t0))
		}
	}
	if pgShared.err != nil {
		t.Fatalf("testenv: PostgreSQL: %v", pgShared.err)
	}
	return pgShared.pg
}

func startPostgres() (*Postgres, error) {
	if port := os.Getenv("DHIS2_LIFE_TEST_PG_PORT"); port != "" {
		return externalPostgres(port)
	}
	bin := PGBinDir()
	for _, name := range []string{"postgres", "initdb"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("PostgreSQL 15 is not installed (%v); %s", err, fixHint)
		}
	}
	root, err := makeOwnedDir("pg")
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		Host:        "127.0.0.1",
		AppUser:     "dhis",
		AppPassword: randHex(16),
		SocketDir:   root,
		DataDir:     filepath.Join(root, "data"),
		root:        root,
		logPath:     filepath.Join(root, "postgres.log"),
	}
	if err := p.start(); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// credential returns the uid/gid to run PostgreSQL as: the postgres user when running as root
// (initdb and postgres refuse root), else nil (the current user).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres system user (from the postgresql-15 package): %v; %s", err, fixHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (p *Postgres) start() error {
	cred, err := credential()
	if err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(p.root, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	env := []string{"PATH=" + PGBinDir() + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}

	// initdb
	initdb := exec.Command(filepath.Join(PGBinDir(), "initdb"), "-D", p.DataDir, "-U", "postgres",
		"-A", "trust", "--no-sync", "-E", "UTF8", "--no-locale")
	initdb.Env = env
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %v\n%s", p.DataDir, err, out)
	}
	hba := "# written by internal/testenv\n" +
		"local all all trust\n" +
		"host all postgres 127.0.0.1/32 trust\n" +
		"local replication all trust\n" +
		"host replication postgres 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	hbaPath := filepath.Join(p.DataDir, "pg_hba.conf")
	if err := os.WriteFile(hbaPath, []byte(hba), 0o600); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(hbaPath, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}

	// postgres, retried on another port when the chosen one was taken in the meantime
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		lastErr = p.run(port, cred, env)
		if lastErr == nil {
			break
		}
		if !errors.Is(lastErr, errPortTaken) {
			return lastErr
		}
	}
	if lastErr != nil {
		return lastErr
	}

	// the app role, and proof that PostGIS and the contrib extensions DHIS2 needs work
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&p.Version); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'", p.AppUser, p.AppPassword)); err != nil {
		return err
	}
	return p.checkExtensions(ctx, conn)
}

var errPortTaken = errors.New("port taken")

// run starts postgres on port and waits until it accepts connections.
func (p *Postgres) run(port int, cred *syscall.Credential, env []string) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(PGBinDir(), "postgres"), "-D", p.DataDir,
		"-p", strconv.Itoa(port), "-k", p.SocketDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	for _, kv := range p.extraConf {
		cmd.Args = append(cmd.Args, "-c", kv)
	}
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	// SIGQUIT = immediate shutdown if the test binary dies without calling Main's teardown.
	if err := spawn(cmd, syscall.SIGQUIT); err != nil {
		return fmt.Errorf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited, p.Port = cmd, exited, port
	p.AdminDSN = p.AdminDSNFor("postgres")

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			p.cmd = nil
			log := tail(p.logPath, 2000)
			if strings.Contains(log, "could not bind") || strings.Contains(log, "in use") {
				return errPortTaken
			}
			return fmt.Errorf("postgres exited during startup (%v); log %s:\n%s", cmd.ProcessState, p.logPath, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.AdminDSN)
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 60s: %v; log %s:\n%s", err, p.logPath, tail(p.logPath, 2000))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// checkExtensions creates postgis, pg_trgm and btree_gin in a scratch database.
func (p *Postgres) checkExtensions(ctx context.Context, admin *pgx.Conn) error {
	db := "testenv_ext_check_" + randHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return err
	}
	defer admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") //nolint:errcheck
	conn, err := pgx.Connect(ctx, p.AdminDSNFor(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, ext := range []string{"postgis", "pg_trgm", "btree_gin"} {
		if _, err := conn.Exec(ctx, "CREATE EXTENSION "+ext); err != nil {
			return fmt.Errorf("extension %s is not available in the PostgreSQL at %s:%d (%v); "+
				"PostGIS comes from postgresql-15-postgis-3, pg_trgm and btree_gin from postgresql-contrib; %s",
				ext, p.Host, p.Port, err, fixHint)
		}
	}
	return nil
}

// externalPostgres describes the cluster named by DHIS2_LIFE_TEST_PG_* (scripts/services.sh env).
func externalPostgres(portS string) (*Postgres, error) {
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, fmt.Errorf("DHIS2_LIFE_TEST_PG_PORT=%q: %v", portS, err)
	}
	p := &Postgres{
		external:  true,
		Port:      port,
		Host:      envOr("DHIS2_LIFE_TEST_PG_HOST", "127.0.0.1"),
		AppUser:   envOr("DHIS2_LIFE_TEST_PG_APP_USER", "dhis"),
		SocketDir: os.Getenv("DHIS2_LIFE_TEST_PG_SOCKET_DIR"),
	}
	p.AppPassword = os.Getenv("DHIS2_LIFE_TEST_PG_APP_PASSWORD")
	if f := os.Getenv("DHIS2_LIFE_TEST_PG_APP_PASSWORD_FILE"); p.AppPassword == "" && f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("DHIS2_LIFE_TEST_PG_APP_PASSWORD_FILE: %v", err)
		}
		p.AppPassword = strings.TrimSpace(string(b))
	}
	if p.AppPassword == "" {
		return nil, errors.New("DHIS2_LIFE_TEST_PG_PORT is set but neither DHIS2_LIFE_TEST_PG_APP_PASSWORD nor _FILE is; use eval \"$(scripts/services.sh env)\"")
	}
	p.AdminDSN = envOr("DHIS2_LIFE_TEST_PG_ADMIN_DSN", p.AdminDSNFor("postgres"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminDSN)
	if err != nil {
		return nil, fmt.Errorf("cluster from DHIS2_LIFE_TEST_PG_PORT=%d: %v (is scripts/services.sh start running?)", port, err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&p.Version); err != nil {
		return nil, err
	}
	return p, p.checkExtensions(ctx, conn)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// stop shuts the cluster down (fast) and removes its directory; a no-op for external clusters.
func (p *Postgres) stop() {
	if p.external {
		return
	}
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.exited:
			case <-time.After(5 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		p.cmd = nil
	}
	if p.root != "" {
		_ = os.RemoveAll(p.root)
	}
}

func (p *Postgres) dsn(user, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(user),
		Host:     fmt.Sprintf("%s:%d", p.Host, p.Port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// AdminDSNFor returns the superuser's DSN for database db (trusted, no password).
func (p *Postgres) AdminDSNFor(db string) string { return p.dsn("postgres", db) }

// AppDSNFor returns the app user's DSN for database db. It holds no password: pass AppPassword
// through PassFile (PGPASSFILE, or passfile= in the DSN) as production does.
func (p *Postgres) AppDSNFor(db string) string { return p.dsn(p.AppUser, db) }

// PassFile writes a 0600 pgpass file for the app user in t.TempDir and returns its path.
func (p *Postgres) PassFile(t testing.TB) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pgpass")
	line := fmt.Sprintf("%s:%d:*:%s:%s\n", p.Host, p.Port, p.AppUser, p.AppPassword)
	if err := os.WriteFile(f, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// AppDSNWithPassFile returns AppDSNFor(db) with passfile= pointing at a fresh PassFile; pgx and
// libpq both read it.
func (p *Postgres) AppDSNWithPassFile(t testing.TB, db string) string {
	t.Helper()
	return p.AppDSNFor(db) + "&passfile=" + url.QueryEscape(p.PassFile(t))
}

// CreateDB creates a fresh empty database with a unique name starting with prefix, owned by
// AppUser, and drops it (WITH FORCE) when the test ends.
func (p *Postgres) CreateDB(t testing.TB, prefix string) string {
	t.Helper()
	name := sanitize(prefix, false, 40) + "_" + randHex(5)
	p.AdminExec(t, "postgres", fmt.Sprintf(`CREATE DATABASE %q OWNER %q`, name, p.AppUser))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, p.AdminDSN)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return name
}

// AdminConn opens a superuser connection to db, closed when the test ends.
func (p *Postgres) AdminConn(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminDSNFor(db))
	if err != nil {
		t.Fatalf("testenv: connect to %s as postgres: %v", db, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// AdminExec runs SQL as the superuser in db (e.g. CREATE EXTENSION postgis), failing the test
// on error.
func (p *Postgres) AdminExec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminDSNFor(db))
	if err != nil {
		t.Fatalf("testenv: connect to %s as postgres: %v", db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("testenv: %s: %v", sql, err)
	}
}

// Env returns libpq environment variables (PGHOST, PGPORT, PGUSER=postgres, PGDATABASE) for
// running PostgreSQL's programs (pg_dump, psql…) against db as the superuser.
func (p *Postgres) Env(db string) []string {
	return []string{
		"PGHOST=" + p.Host, "PGPORT=" + strconv.Itoa(p.Port), "PGUSER=postgres",
		"PGDATABASE=" + db, "PGSSLMODE=disable",
	}
}
