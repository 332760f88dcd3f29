package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/snapshot"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestSnapshotDedup: a second snapshot of an unchanged database adds little, and one after a
// simulated DHIS2 day adds much less than the first. The figures go to the test log.
func TestSnapshotDedup(t *testing.T) {
	// Scale 0.1: the stream must span many restic chunks (~1 MiB each) for dedup to show.
	e := newEnvScale(t, fixture.Gen242, 0.1)
	e.init()
	first := e.snapshot()
	second := e.snapshot()
	if err := fixture.SimulateDay(t.Context(), e.pg.AdminDSNFor(e.db), 1, fixture.Options{Generation: fixture.Gen242, Home: e.home, Seed: 1}); err != nil {
		t.Fatalf("simulate day: %v", err)
	}
	third := e.snapshot()
	f, s, d := first.Parts["db"], second.Parts["db"], third.Parts["db"]
	// The first set of the instance uses tuning.compression (restic's default here); the
	// next ones tuning.incremental_compression, "max" by default.
	if f.Compression != "" || s.Compression != "max" || d.Compression != "max" || third.Parts["files"].Compression != "max" {
		t.Errorf("db part compression: first %q, second %q, third %q (files %q); want \"\" then max", f.Compression, s.Compression, d.Compression, third.Parts["files"].Compression)
	}
	pct := func(n int64) float64 { return 100 * float64(n) / float64(f.AddedPacked) }
	t.Logf("FIGURES db stream %d bytes (%d rows, %d tables); first set added %d packed (%.1fs); unchanged: %d packed (%.1f%%, %.1fs); after a simulated day (stream %d bytes): %d packed (%.1f%%, %.1fs); files part first %d packed, after the day %d packed",
		f.Bytes, first.TotalRows(), len(first.Tables), f.AddedPacked, f.Seconds, s.AddedPacked, pct(s.AddedPacked), s.Seconds,
		d.Bytes, d.AddedPacked, pct(d.AddedPacked), d.Seconds, first.Parts["files"].AddedPacked, third.Parts["files"].AddedPacked)
	if f.Bytes < 4<<20 {
		t.Errorf("db stream is only %d bytes: too small to measure dedup", f.Bytes)
	}
	// restic's chunks average 1 MiB (512 KiB..8 MiB): at test scale the stream is a few chunks,
	// and two of them always change (pg_dump's archive header holds its start time; the
	// trailer holds the snapshot time). So this asserts chunks, not percentages: an unchanged
	// database re-stores at most those 2 chunks; a simulated day (0.5% new rows in a new
	// period, 0.1% updates in the last 3) about a quarter of them. A dump in physical row
	// order re-stores ~43% a day (DESIGN.md), so the limits below still catch a regression.
	blobs := func(set string) (added, total float64) {
		for _, s := range e.resticSnapshots("set:"+set, "part:db") {
			sum, _ := s["summary"].(map[string]any)
			added, _ = sum["data_blobs"].(float64)
		}
		return added, 0
	}
	b1, _ := blobs(first.ID)
	b2, _ := blobs(second.ID)
	b3, _ := blobs(third.ID)
	t.Logf("FIGURES new data blobs (chunks) of the db part: first %v, unchanged %v, after a day %v", b1, b2, b3)
	if b1 < 5 {
		t.Errorf("first db part has only %v chunks", b1)
	}
	if b2 > 2 {
		t.Errorf("second snapshot of an unchanged database stored %v new chunks, want <= 2 (header and trailer)", b2)
	}
	if b3 > 0.35*b1 {
		t.Errorf("snapshot after a simulated day stored %v new chunks of %v, want <= 35%%", b3, b1)
	}
	// In bytes, those chunks weigh what the chunker makes them: each repository gets a random
	// chunker polynomial, so the same 2 chunks were 4.8% of the first set in one run and
	// 13.8% in another (chunks are 512 KiB..8 MiB). The chunk counts above are the precise
	// check; bytes only have to stay well under a full re-upload.
	if pct(s.AddedPacked) >= 50 {
		t.Errorf("second snapshot of an unchanged database added %d bytes packed (%.1f%% of the first), want < 50%%", s.AddedPacked, pct(s.AddedPacked))
	}
	if pct(d.AddedPacked) >= 50 {
		t.Errorf("snapshot after a simulated day added %d bytes packed (%.1f%% of the first), want < 50%%", d.AddedPacked, pct(d.AddedPacked))
	}
	if third.TotalRows() <= first.TotalRows() {
		t.Errorf("simulated day did not add rows: %d then %d", first.TotalRows(), third.TotalRows())
	}
}

func newEnvScale(t *testing.T, gen string, scale float64) *env {
	t.Helper()
	e := newEnv(t, "")
	dropDB(t, e.pg, e.db)
	_ = os.RemoveAll(e.home)
	e.gen = gen
	e.db = createFixture(t, e.pg, gen, e.home, scale)
	e.writeConfig()
	return e
}

// useMock makes the config's restic the scripted mock in mode (it execs the real restic for
// everything it does not script).
func (e *env) useMock(mode string) string {
	e.t.Helper()
	mock := filepath.Join(repoRoot(e.t), "testdata", "mock-restic", "restic")
	if _, err := os.Stat(mock); err != nil {
		e.t.Fatal(err)
	}
	log := filepath.Join(e.dir, "mock-restic.log")
	s3env, err := os.ReadFile(e.s3.EnvFile(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	e.envFile = filepath.Join(e.dir, "mock.env")
	writeFile(e.t, e.envFile, string(s3env)+fmt.Sprintf("MOCK_RESTIC_REAL=%s\nMOCK_RESTIC_MODE=%s\nMOCK_RESTIC_LOG=%s\n", testenv.Restic(e.t), mode, log), 0o600)
	e.restic = mock
	e.writeConfig()
	return log
}

// TestSnapshotIncompleteFiles: restic exit 3 (a source file could not be read) fails the
// snapshot; nothing is recorded and the parts already stored are forgotten.
func TestSnapshotIncompleteFiles(t *testing.T) {
	e := newEnv(t, fixture.Gen240)
	e.init()
	log := e.useMock("incomplete-files")
	r := e.run("snapshot")
	oneLineError(t, r, 1, "file store", "could not be read")
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "backup") {
		t.Fatalf("the mock restic was not used for backup:\n%s", b)
	}
	if got := e.snapshotsJSON(); len(got) != 0 {
		t.Errorf("failed snapshot recorded: %d sets", len(got))
	}
	e.mustRun("catalog", "rebuild")
	if got := e.snapshotsJSON(); len(got) != 0 {
		t.Errorf("catalog rebuild found %d sets after a failed snapshot", len(got))
	}
	if snaps := e.resticSnapshots("dhis2-life"); len(snaps) != 0 {
		t.Errorf("parts of the failed set left in the repository: %d restic snapshots", len(snaps))
	}
}

// TestSnapshotBusy: a second snapshot while one runs is refused with a clear message.
func TestSnapshotBusy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.init()
	lk, err := lock.Acquire(filepath.Join(e.stateDir, "locks"), testInstance, "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	r := e.run("snapshot")
	lk.Release()
	oneLineError(t, r, 1, "busy", testInstance, fmt.Sprint(os.Getpid()))
	if got := e.snapshotsJSON(); len(got) != 0 {
		t.Errorf("refused snapshot recorded %d sets", len(got))
	}
	e.snapshot()
}

// processRunning reports whether a process whose command line mentions cfg (and sub, when
// given) runs: the test's own dhis2-life processes, restic's children included via the env.
func processRunning(cfg, sub string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(b)
		if strings.Contains(s, cfg) && (sub == "" || strings.Contains(s, sub)) {
			if st, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat")); err == nil {
				if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
					continue
				}
			}
			return true
		}
	}
	return false
}

// TestSnapshotOldPgDump: a pg_dump older than the server is refused, naming both versions.
func TestSnapshotOldPgDump(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fixture.Gen240)
	e.init()
	bin := filepath.Join(e.dir, "oldpg")
	writeFile(t, filepath.Join(bin, "pg_dump"), "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 13.0'; exit 0; fi\necho 'fake pg_dump must not dump' >&2\nexit 1\n", 0o755)
	e.instanceExtra = append(e.instanceExtra, fmt.Sprintf("pg_bin_dir = %q", bin))
	e.writeConfig()
	r := e.run("snapshot")
	oneLineError(t, r, 1, "pg_dump", "13", "15")
	if got := e.snapshotsJSON(); len(got) != 0 {
		t.Errorf("failed snapshot recorded %d sets", len(got))
	}
	if snaps := e.resticSnapshots("dhis2-life"); len(snaps) != 0 {
		t.Errorf("failed snapshot left %d restic snapshots", len(snaps))
	}
}

// TestSnapshotDatabaseUnreachable: a database nobody listens for fails fast with its name.
func TestSnapshotDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.init()
	port := closedPort(t)
	cfg, _ := os.ReadFile(e.cfgPath)
	bad := strings.Replace(string(cfg), fmt.Sprintf("127.0.0.1:%d/%s", e.pg.Port, e.db), fmt.Sprintf("127.0.0.1:%d/%s", port, e.db), 1)
	writeFile(t, e.cfgPath, bad, 0o600)
	r := e.run("snapshot")
	oneLineError(t, r, 1, "database", fmt.Sprint(port))
	if r.dur > 20*time.Second {
		t.Errorf("took %s", r.dur)
	}
	if snaps := e.resticSnapshots("dhis2-life"); len(snaps) != 0 {
		t.Errorf("failed snapshot left %d restic snapshots", len(snaps))
	}
}

// TestSnapshotSymlinkedFileStore: DHIS2_HOME/files is often a symlink to a bigger disk.
// restic stores a symlink path as the link itself, so the file store must still be backed up
// by content, restored as a directory, and pass the drill.
func TestSnapshotSymlinkedFileStore(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	real := filepath.Join(e.dir, "bigdisk", "dhis2-files")
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(e.home, "files"), real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(e.home, "files")); err != nil {
		t.Fatal(err)
	}
	e.init()
	m := e.snapshot()
	if m.Files == nil || m.Files.Container != "files" || len(m.Files.Paths) < 3 {
		t.Fatalf("files part paths %+v", m.Files)
	}
	out := filepath.Join(e.dir, "restored")
	e.mustRun("restore", "latest", "--files-to", out)
	if st, err := os.Lstat(filepath.Join(out, "files")); err != nil || !st.IsDir() {
		t.Fatalf("restored files/ is not a directory: %v %v", st, err)
	}
	src, dst := treeSums(t, real), treeSums(t, filepath.Join(out, "files"))
	if len(src) < 2 || len(src) != len(dst) {
		t.Fatalf("file store has %d files, restored %d", len(src), len(dst))
	}
	for p, c := range src {
		if dst[p] != c {
			t.Fatalf("restored %s differs from the file store", p)
		}
	}
	r := e.mustRun("verify", "latest", "--json")
	if !strings.Contains(r.stdout, `"ok": true`) {
		t.Fatalf("drill of a symlinked file store failed:\n%s", r.stdout)
	}
}

// TestSnapshotPendingSweep: a snapshot lists the repository for parts that a killed or failed
// run stored but never recorded only when the catalogue says a set was left pending (or the
// previous job's lock is stale, TestKills); it then forgets them and clears the mark.
func TestSnapshotPendingSweep(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	// The file store part runs beside the database stream, but starts only once the dump's
	// snapshot is taken: restic's time of the part is after the set's (the dump's) time.
	var files []struct {
		Time time.Time `json:"time"`
	}
	e.resticJSON(&files, "snapshots", "--json", "--tag", "set:"+m.ID+",part:files")
	if len(files) != 1 || !files[0].Time.After(m.Time) {
		t.Fatalf("file store part %+v of set %s (dump at %s): want one, taken after the dump's snapshot", files, m.ID, m.Time)
	}
	host, _ := os.Hostname()
	orphan := "20260101T000000Z-dead"
	cmd := exec.Command(testenv.Restic(t), "--no-cache", "--json", "backup", "--stdin", "--stdin-filename", "dhis2-db.stream",
		"--host", host, "--tag", "dhis2-life", "--tag", "set:"+orphan, "--tag", "instance:"+testInstance, "--tag", "part:db")
	cmd.Env = append([]string{"RESTIC_REPOSITORY=" + e.repoURL, "RESTIC_PASSWORD_FILE=" + e.passFile, "PATH=/usr/bin:/bin"}, e.s3.Env()...)
	cmd.Stdin = strings.NewReader("a part whose run died before its manifest")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storing an orphaned part: %v: %s", err, out)
	}
	orphanParts := func() int {
		var snaps []map[string]any
		e.resticJSON(&snaps, "snapshots", "--json", "--tag", "set:"+orphan)
		return len(snaps)
	}
	pending := func() (snapshot.PendingRecord, bool) {
		cat, err := catalog.Open(catalog.Path(e.stateDir))
		if err != nil {
			t.Fatal(err)
		}
		var rec snapshot.PendingRecord
		ok, err := cat.GetJSON(snapshot.BucketPending, testInstance, &rec)
		if err != nil {
			t.Fatal(err)
		}
		return rec, ok
	}

	// A clean previous run left no mark: the snapshot does not list the repository.
	e.snapshot()
	if n := orphanParts(); n != 1 {
		t.Fatalf("without a pending mark the orphaned part should be left to retention; %d parts remain", n)
	}
	if rec, ok := pending(); ok {
		t.Fatalf("a recorded set is still marked pending: %+v", rec)
	}

	// A run that died after storing it left its set marked pending: the next snapshot forgets it.
	cat, err := catalog.Open(catalog.Path(e.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.PutJSON(snapshot.BucketPending, testInstance, snapshot.PendingRecord{Set: orphan, Started: time.Now().UTC(), PID: 1}); err != nil {
		t.Fatal(err)
	}
	r := e.run("snapshot")
	if r.code != 0 {
		t.Fatalf("snapshot: %s", r)
	}
	if !strings.Contains(r.stderr, "forgot the parts of a set a killed snapshot left behind") {
		t.Errorf("the sweep is not logged:\n%s", r.stderr)
	}
	if n := orphanParts(); n != 0 {
		t.Fatalf("the orphaned part of the pending set is still in the repository (%d)", n)
	}
	if rec, ok := pending(); ok {
		t.Fatalf("the mark stays after a recorded set: %+v", rec)
	}
}
