package testenv_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestRestic(t *testing.T) {
	p := testenv.Restic(t)
	out, err := exec.Command(p, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "restic "+testenv.ResticVersion) {
		t.Fatalf("restic version: %q", out)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	if pg2 := testenv.StartPostgres(t); pg2 != pg {
		t.Fatal("StartPostgres started a second cluster")
	}
	if !strings.HasPrefix(pg.Version, "15.") {
		t.Errorf("server version %q, want 15.x", pg.Version)
	}
	db := pg.CreateDB(t, "TestPostgres")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The superuser is trusted and can create PostGIS in the new database.
	pg.AdminExec(t, db, "CREATE EXTENSION postgis")
	var gis string
	if err := pg.AdminConn(t, db).QueryRow(ctx, "SELECT postgis_lib_version()").Scan(&gis); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostGIS %s", gis)

	// The app user logs in with its password (scram) …
	conn, err := pgx.Connect(ctx, pg.AppDSNWithPassFile(t, db))
	if err != nil {
		t.Fatalf("app login with password: %v", err)
	}
	var owner, method string
	if err := conn.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != pg.AppUser {
		t.Errorf("database owner %q, want %q", owner, pg.AppUser)
	}
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = current_user").Scan(&method); err == nil {
		t.Errorf("app user can read pg_authid: it must not be a superuser")
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int primary key, name text)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := pg.AdminConn(t, "postgres").QueryRow(ctx, "SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = $1", pg.AppUser).Scan(&method); err != nil {
		t.Fatal(err)
	}
	if method != "SCRAM-SHA-256" {
		t.Errorf("app password stored as %q, want SCRAM-SHA-256", method)
	}

	// … and is refused without it or with a wrong one.
	if c, err := pgx.Connect(ctx, pg.AppDSNFor(db)+"&passfile=/nonexistent"); err == nil {
		c.Close(ctx)
		t.Fatal("app user logged in without a password")
	} else {
		t.Logf("without password: %v", err)
	}
	cfg, err := pgx.ParseConfig(pg.AppDSNFor(db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = "wrong"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Fatal("app user logged in with a wrong password")
	}

	// PostgreSQL's own programs work against it.
	cmd := exec.Command(testenv.PGBin(t, "pg_dump"), "--schema-only")
	cmd.Env = append(os.Environ(), pg.Env(db)...)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("CREATE TABLE public.t")) {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
}

func TestCreateDBDropped(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	var name string
	t.Run("inner", func(t *testing.T) { name = pg.CreateDB(t, "dropped-Me") })
	if !strings.HasPrefix(name, "dropped_me_") {
		t.Errorf("database name %q", name)
	}
	var n int
	if err := pg.AdminConn(t, "postgres").QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestMinIOBuckets(t *testing.T) {
	t.Parallel()
	m := testenv.StartMinIO(t)
	c := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	plain := m.Bucket(t, "Plain_Bucket", false)
	if _, _, _, _, err := c.GetObjectLockConfig(ctx, plain); err == nil {
		t.Errorf("bucket %s without object lock has an object-lock config", plain)
	}
	if _, err := c.PutObject(ctx, plain, "x/y", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	locked := m.Bucket(t, "locked", true)
	enabled, _, _, _, err := c.GetObjectLockConfig(ctx, locked)
	if err != nil || enabled != "Enabled" {
		t.Fatalf("object lock config of %s: %q, %v", locked, enabled, err)
	}
	v, err := c.GetBucketVersioning(ctx, locked)
	if err != nil || !v.Enabled() {
		t.Errorf("versioning of locked bucket: %+v, %v", v, err)
	}

	env, err := os.ReadFile(m.EnvFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := "AWS_ACCESS_KEY_ID=" + m.AccessKey + "\nAWS_SECRET_ACCESS_KEY=" + m.SecretKey + "\n"; string(env) != want {
		t.Errorf("env file %q", env)
	}
}

// TestResticOnMinIO proves restic 0.19.1 and the MinIO server work together.
func TestResticOnMinIO(t *testing.T) {
	t.Parallel()
	restic := testenv.Restic(t)
	m := testenv.StartMinIO(t)
	repo := m.ResticRepo(m.Bucket(t, "restic", false), "repo")
	pw := t.TempDir() + "/pw"
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(restic, append([]string{"-r", repo, "--password-file", pw, "--no-cache", "--json"}, args...)...)
		cmd.Env = append(os.Environ(), m.Env()...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("restic %s: %v\n%s", args[0], err, out)
		}
		return string(out)
	}
	run("init")
	run("backup", "--stdin-from-command", "--stdin-filename", "x", "--", "echo", "hello")
	if out := run("snapshots"); !strings.Contains(out, `"paths":["/x"]`) {
		t.Errorf("snapshots: %s", out)
	}
}

func TestMinIOOutage(t *testing.T) {
	t.Parallel()
	m := testenv.NewMinIO(t)
	c := m.Client(t)
	b := m.Bucket(t, "outage", false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.PutObject(ctx, b, "before", strings.NewReader("1"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	endpoint := m.Endpoint

	m.Stop()
	short, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if _, err := c.StatObject(short, b, "before", minio.StatObjectOptions{}); err == nil {
		t.Fatal("StatObject succeeded while MinIO was stopped")
	}

	m.Start(t)
	if m.Endpoint != endpoint {
		t.Fatalf("endpoint changed from %s to %s", endpoint, m.Endpoint)
	}
	if _, err := c.StatObject(ctx, b, "before", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("object lost across restart: %v", err)
	}
	m.Start(t) // no-op when running
}
