package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL cluster of one test, laid out as hosts have it (ROOT/MAJOR/main)
// and run by pg_ctl as a daemon, so the code under test can stop, start and pg_upgrade it.
// Its postgresql.conf names the port, listen address and socket directory. The superuser
// "postgres" is trusted on loopback and the socket; AppUser authenticates with AppPassword.
type Cluster struct {
	Major       int
	Name        string // postgresql-common cluster name ("" for a pg_ctl cluster)
	ConfDir     string // postgresql-common: /etc/postgresql/MAJOR/NAME
	Root        string // holds MAJOR/main, owned by RunAs
	DataDir     string
	BinDir      string
	Port        int
	SocketDir   string
	RunAs       string // "postgres" when the tests run as root, else ""
	AdminDSN    string
	AppUser     string
	AppPassword string
}

// ClusterBinDir returns the server programs' directory of a major version.
func ClusterBinDir(major int) string { return fmt.Sprintf("/usr/lib/postgresql/%d/bin", major) }

// StartCluster initialises and starts a private cluster of the given major (13 or 15) with
// PostGIS, pg_trgm and btree_gin available. It is stopped (whatever major then runs in
// Root) and removed when the test ends. A missing PostgreSQL fails the test.
func StartCluster(t testing.TB, major int) *Cluster {
	t.Helper()
	bin := ClusterBinDir(major)
	for _, name := range []string{"postgres", "initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Fatalf("testenv: PostgreSQL %d is not installed (%v); %s", major, err, fixHint)
		}
	}
	if _, err := os.Stat(fmt.Sprintf("/usr/share/postgresql/%d/extension/postgis.control", major)); err != nil {
		t.Fatalf("testenv: PostGIS for PostgreSQL %d is not installed (%v); %s", major, err, fixHint)
	}
	root, err := makeOwnedDir("cl")
	if err != nil {
		t.Fatal(err)
	}
	// Socket paths must stay short: keep a symlink-free short socket dir in root.
	c := &Cluster{Major: major, Root: root, BinDir: bin, AppUser: "dhis", AppPassword: randHex(16),
		DataDir: filepath.Join(root, strconv.Itoa(major), "main"), SocketDir: root}
	cred, err := credential()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		c.RunAs = "postgres"
		for _, d := range []string{root, filepath.Dir(c.DataDir)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { c.stopAll() })
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("testenv: %s %v: %v\n%s", name, args, err, out)
		}
	}
	run("initdb", "-D", c.DataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--no-locale")
	hba := "# written by internal/testenv\nlocal all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
	writeOwned(t, filepath.Join(c.DataDir, "pg_hba.conf"), hba, cred)
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		c.Port = port
		conf := fmt.Sprintf("\n# testenv\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\npassword_encryption = 'scram-sha-256'\n", port, c.SocketDir)
		f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(conf)
		f.Close()
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "start", "-D", c.DataDir, "-l", filepath.Join(root, "server.log"), "-w", "-t", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		if attempt >= 3 {
			t.Fatalf("testenv: starting PostgreSQL %d: %v\n%s\n%s", major, err, out, tail(filepath.Join(root, "server.log"), 2000))
		}
	}
	c.AdminDSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.AdminDSN)
	if err != nil {
		t.Fatalf("testenv: connecting to PostgreSQL %d: %v", major, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'", c.AppUser, c.AppPassword)); err != nil {
		t.Fatal(err)
	}
	p := &Postgres{Host: "127.0.0.1", Port: c.Port}
	if err := p.checkExtensions(ctx, conn); err != nil {
		t.Fatal(err)
	}
	t.Logf("testenv: PostgreSQL %d cluster %s on 127.0.0.1:%d (pg_ctl)", major, c.DataDir, c.Port)
	return c
}

func writeOwned(t testing.TB, path, content string, cred *syscall.Credential) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// Postgres returns the cluster as a Postgres (for CreateDB, AdminExec, ...).
func (c *Cluster) Postgres() *Postgres {
	return &Postgres{Port: c.Port, Host: "127.0.0.1", AdminDSN: c.AdminDSN, AppUser: c.AppUser, AppPassword: c.AppPassword,
		SocketDir: c.SocketDir, DataDir: c.DataDir, external: true}
}

// stopAll stops every cluster under Root (the original and any upgraded copy) and removes Root.
func (c *Cluster) stopAll() {
	dirs, _ := filepath.Glob(filepath.Join(c.Root, "*", "main"))
	cred, _ := credential()
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postmaster.pid")); err != nil {
			continue
		}
		major, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		cmd := exec.Command(filepath.Join(ClusterBinDir(major), "pg_ctl"), "stop", "-D", d, "-m", "immediate", "-w", "-t", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
		_ = cmd.Run()
	}
	_ = os.RemoveAll(c.Root)
}

// StartDebianCluster creates and starts a postgresql-common cluster MAJOR/dl<random>
// (/etc/postgresql/MAJOR/NAME, /var/lib/postgresql/MAJOR/NAME, pg_ctlcluster), as DHIS2's
// install guides lay clusters out. It needs root. The cluster, and a cluster of the same
// name of any other major (an upgrade's green), are dropped when the test ends.
func StartDebianCluster(t testing.TB, major int) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("testenv: postgresql-common clusters need root (pg_createcluster); run the tests as root as CI does")
	}
	for _, b := range []string{"pg_createcluster", "pg_ctlcluster", "pg_dropcluster"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("testenv: %s missing (postgresql-common): %v; %s", b, err, fixHint)
		}
	}
	name := "dl" + randHex(4)
	c := &Cluster{Major: major, Name: name, BinDir: ClusterBinDir(major), RunAs: "postgres", AppUser: "dhis", AppPassword: randHex(16),
		DataDir: filepath.Join("/var/lib/postgresql", strconv.Itoa(major), name), ConfDir: filepath.Join("/etc/postgresql", strconv.Itoa(major), name),
		SocketDir: "/var/run/postgresql"}
	t.Cleanup(func() {
		for _, v := range []string{"13", "14", "15", "16", "17"} {
			if _, err := os.Stat(filepath.Join("/etc/postgresql", v, name)); err == nil {
				_ = exec.Command("pg_dropcluster", "--stop", v, name).Run()
			}
			_ = os.RemoveAll(filepath.Join("/var/lib/postgresql", v, name))
		}
	})
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c.Port = port
	if out, err := exec.Command("pg_createcluster", "-p", strconv.Itoa(port), "--start-conf", "manual", strconv.Itoa(major), name, "--", "--no-sync", "-E", "UTF8", "--no-locale").CombinedOutput(); err != nil {
		t.Fatalf("testenv: pg_createcluster %d %s: %v\n%s", major, name, err, out)
	}
	cred, _ := credential()
	writeOwned(t, filepath.Join(c.ConfDir, "pg_hba.conf"), "# written by internal/testenv\nlocal all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n", cred)
	f, err := os.OpenFile(filepath.Join(c.ConfDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("\n# testenv\nlisten_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\npassword_encryption = 'scram-sha-256'\n")
	f.Close()
	if out, err := exec.Command("pg_ctlcluster", strconv.Itoa(major), name, "start").CombinedOutput(); err != nil {
		t.Fatalf("testenv: pg_ctlcluster %d %s start: %v\n%s", major, name, err, out)
	}
	c.AdminDSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.AdminDSN)
	if err != nil {
		t.Fatalf("testenv: connecting to cluster %d/%s: %v", major, name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'", c.AppUser, c.AppPassword)); err != nil {
		t.Fatal(err)
	}
	if err := (&Postgres{Host: "127.0.0.1", Port: c.Port}).checkExtensions(ctx, conn); err != nil {
		t.Fatal(err)
	}
	t.Logf("testenv: postgresql-common cluster %d/%s on 127.0.0.1:%d", major, name, c.Port)
	return c
}
