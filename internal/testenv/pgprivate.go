package testenv

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// NewPostgres starts a PostgreSQL 15 cluster of the test's own (like StartPostgres's, with the
// app role and replication allowed for the superuser on loopback), with extra server settings
// ("name=value"). It is stopped and removed when the test ends. Use it for tests that change
// server settings or restart, stop or crash the server (WAL archiving, PITR).
func NewPostgres(t testing.TB, conf ...string) *Postgres {
	t.Helper()
	if _, err := os.Stat(filepath.Join(PGBinDir(), "postgres")); err != nil {
		t.Fatalf("testenv: PostgreSQL 15 is not installed (%v); %s", err, fixHint)
	}
	root, err := makeOwnedDir("pg")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{
		Host: "127.0.0.1", AppUser: "dhis", AppPassword: randHex(16), SocketDir: root,
		DataDir: filepath.Join(root, "data"), root: root, logPath: filepath.Join(root, "postgres.log"),
		extraConf: conf,
	}
	t0 := time.Now()
	if err := p.start(); err != nil {
		p.stop()
		t.Fatalf("testenv: own PostgreSQL: %v", err)
	}
	t.Cleanup(p.stop)
	t.Logf("testenv: own PostgreSQL %s on port %d in %s, ready in %s", p.Version, p.Port, p.DataDir, since(t0))
	return p
}

// LogPath is the server log of a cluster started by testenv.
func (p *Postgres) LogPath() string { return p.logPath }

// Restart stops the cluster (fast shutdown) and starts it again on the same port, e.g. after
// ALTER SYSTEM of a setting that needs a restart. Only for clusters from NewPostgres.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	p.halt(t, syscall.SIGINT)
	p.Start(t)
}

// Crash kills the postmaster with SIGKILL (its backends exit on their own), as a power cut
// would; Start runs crash recovery. Only for clusters from NewPostgres.
func (p *Postgres) Crash(t testing.TB) {
	t.Helper()
	p.halt(t, syscall.SIGKILL)
	// Backends notice the postmaster's death within a moment; wait until the pid file's owner
	// is gone and shared memory is released.
	time.Sleep(500 * time.Millisecond)
}

// Start starts a cluster stopped by Crash (or Restart's first half) on its port.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	cred, err := credential()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + PGBinDir() + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}
	var lastErr error
	for range 50 { // a crashed cluster's backends may hold the port or shared memory briefly
		if lastErr = p.run(p.Port, cred, env); lastErr == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("testenv: start PostgreSQL on port %d again: %v", p.Port, lastErr)
}

func (p *Postgres) halt(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if p.external || p.cmd == nil {
		t.Fatal("testenv: only clusters from NewPostgres can be restarted or crashed")
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("testenv: PostgreSQL did not stop within 60s after %v", sig)
	}
	p.cmd = nil
}
