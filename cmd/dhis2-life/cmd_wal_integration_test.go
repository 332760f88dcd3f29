package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/pitr"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// pitrEnv is a private PostgreSQL cluster (archive_command runs dhis2-life as the postgres OS
// user), a private MinIO (stopped to simulate outages), a DHIS2 fixture database and a config
// readable by the postgres user.
type pitrEnv struct {
	*env
	own *testenv.Postgres
}

func newPITREnv(t *testing.T) *pitrEnv {
	t.Helper()
	p := testenv.NewPostgres(t)
	m := testenv.NewMinIO(t)
	// archive_command runs as the cluster's OS user: the config, the password and env files and
	// the drill directory must be reachable by it.
	dir, err := os.MkdirTemp("/var/tmp", "dhis2-life-pitr-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := &env{t: t, pg: p, s3: m, dir: dir, gen: fixture.Gen242}
	e.restic = testenv.Restic(t)
	e.stateDir = filepath.Join(dir, "state")
	e.repoURL = m.ResticRepo(m.Bucket(t, "pitr", false), "repo")
	e.envFile = filepath.Join(dir, "s3.env")
	writeFile(t, e.envFile, strings.Join(m.Env(), "\n")+"\n", 0o600)
	e.passFile = filepath.Join(dir, "repository.pass")
	writeFile(t, e.passFile, "correct horse battery staple\n", 0o600)
	e.dbPass = filepath.Join(dir, "db.pass")
	writeFile(t, e.dbPass, p.AppPassword+"\n", 0o600)
	e.home = filepath.Join(dir, "dhis2-home")
	e.db = createFixture(t, p, fixture.Gen242, e.home, 0.001)
	e.instanceExtra = []string{"", "[instances.hmis.wal]", `archive_timeout = "2s"`, `wal_max_lag = "4s"`, `drill_margin = "1s"`, fmt.Sprintf("drill_dir = %q", dir),
		"", "[daemon]", fmt.Sprintf("metrics_listen = \"127.0.0.1:%d\"", freeTestPort(t))}
	e.writeConfig()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range []string{dir, e.cfgPath, e.envFile, e.passFile, e.dbPass} {
			if err := os.Chown(f, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &pitrEnv{env: e, own: p}
}

func (e *pitrEnv) admin() *pgx.Conn { return e.own.AdminConn(e.t, e.db) }

func (e *pitrEnv) switchWAL(c *pgx.Conn) string {
	e.t.Helper()
	var name string
	if err := c.QueryRow(context.Background(), `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&name); err != nil {
		e.t.Fatal(err)
	}
	return name
}

// waitArchived waits until PostgreSQL reports segment (or a later one) archived.
func (e *pitrEnv) waitArchived(c *pgx.Conn, segment string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var last *string
		if err := c.QueryRow(context.Background(), `SELECT last_archived_wal FROM pg_stat_archiver`).Scan(&last); err != nil {
			e.t.Fatal(err)
		}
		if last != nil && len(*last) == 24 && *last >= segment {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(e.own.LogPath())
			e.t.Fatalf("segment %s not archived within %s (last archived %v); server log tail:\n%s", segment, within, last, tailString(string(b), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// writeLoad inserts DHIS2 data values, each stamped (created, lastupdated) with the time of its
// own autocommit INSERT, until stopped.
type writeLoad struct {
	stop    chan struct{}
	done    chan struct{}
	rows    atomic.Int64
	errOnce sync.Once
	err     error
}

func startWriteLoad(t *testing.T, dsn string) *writeLoad {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Every (data element, org unit, period) combination not yet holding a value.
	rows, err := conn.Query(ctx, `SELECT d.dataelementid, p.periodid, o.organisationunitid, c.coc
		FROM dataelement d CROSS JOIN period p CROSS JOIN organisationunit o
		CROSS JOIN (SELECT min(categoryoptioncomboid) AS coc FROM categoryoptioncombo) c
		WHERE NOT EXISTS (SELECT 1 FROM datavalue v WHERE v.dataelementid = d.dataelementid AND v.periodid = p.periodid
		  AND v.sourceid = o.organisationunitid AND v.categoryoptioncomboid = c.coc AND v.attributeoptioncomboid = c.coc)
		LIMIT 20000`)
	if err != nil {
		t.Fatal(err)
	}
	var combos [][4]int64
	for rows.Next() {
		var k [4]int64
		if err := rows.Scan(&k[0], &k[1], &k[2], &k[3]); err != nil {
			t.Fatal(err)
		}
		combos = append(combos, k)
	}
	if rows.Err() != nil || len(combos) < 1000 {
		t.Fatalf("write load: %d free data value combinations (%v)", len(combos), rows.Err())
	}
	w := &writeLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer conn.Close(ctx)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			k := combos[i%len(combos)]
			_, err := conn.Exec(ctx, `INSERT INTO datavalue (dataelementid, periodid, sourceid, categoryoptioncomboid,
				attributeoptioncomboid, value, storedby, created, lastupdated, deleted)
				VALUES ($1, $2, $3, $4, $4, $5, 'pitr-load', clock_timestamp(), clock_timestamp(), false)`, k[0], k[1], k[2], k[3], strconv.Itoa(i))
			if err != nil {
				w.errOnce.Do(func() { w.err = err })
				return
			}
			w.rows.Add(1)
		}
	}()
	return w
}

func (w *writeLoad) Stop(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if w.err != nil {
		t.Fatalf("write load: %v", w.err)
	}
}

func loadCount(t *testing.T, c *pgx.Conn, upTo time.Time) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM datavalue WHERE storedby = 'pitr-load' AND created <= $1::timestamptz::timestamp`, upTo).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPITR drives point-in-time recovery end to end on a real cluster: wal setup, archiving by
// archive_command, a base backup into restic, a drill and a restore to a time, and the faults
// (bucket unreachable while PostgreSQL archives; a segment missing from the archive).
func TestPITR(t *testing.T) {
	e := newPITREnv(t)
	e.mustRun("init")

	// 1. Set-up: shown, applied, then in effect after a restart.
	r := e.mustRun("wal", "setup", "--instance", testInstance)
	if !strings.Contains(r.stdout, "change archive_mode") || !strings.Contains(r.stdout, "--apply") {
		t.Fatalf("wal setup plan:\n%s", r)
	}
	r = e.mustRun("wal", "setup", "--instance", testInstance, "--apply", "--json")
	var plan pitr.SetupPlan
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || !plan.Applied || !plan.RestartNeeded || !strings.Contains(plan.ArchiveCommand, "wal push %p --instance hmis") {
		t.Fatalf("wal setup --apply: %+v %v\n%s", plan, err, r)
	}
	e.own.Restart(t)
	r = e.mustRun("wal", "setup", "--instance", testInstance, "--json")
	plan = pitr.SetupPlan{}
	_ = json.Unmarshal([]byte(r.stdout), &plan)
	for _, s := range plan.Settings {
		if s.Change {
			t.Fatalf("after apply and restart, %s still differs: %+v", s.Name, s)
		}
	}
	c := e.admin()
	ctx := context.Background()
	seg := e.switchWAL(c)
	e.waitArchived(c, seg, 30*time.Second)

	// 2. Base backup while DHIS2 writes.
	load := startWriteLoad(t, e.own.AdminDSNFor(e.db))
	stopped := false
	defer func() {
		if !stopped {
			load.Stop(t)
		}
	}()
	time.Sleep(time.Second)
	r = e.mustRun("base-backup", "--instance", testInstance, "--json")
	var base pitr.BaseManifest
	if err := json.Unmarshal([]byte(r.stdout), &base); err != nil || base.StartLSN == "" || base.StopLSN == "" || base.Timeline != 1 || base.StartWAL == "" || base.Part.Snapshot == "" {
		t.Fatalf("base-backup: %+v %v\n%s", base, err, r)
	}
	t.Logf("base backup %s: %s..%s, %d bytes in %.1fs", base.ID, base.StartLSN, base.StopLSN, base.Part.Bytes, base.Part.Seconds)
	if snaps := e.resticSnapshots("part:base"); len(snaps) != 1 {
		t.Fatalf("restic snapshots tagged part:base: %d", len(snaps))
	}
	if sets := e.snapshotsJSON(); len(sets) != 0 {
		t.Fatalf("a base backup must not appear as a logical snapshot set: %+v", sets)
	}

	// Writes go on; the target lies between commits, with segments switched on the way.
	for range 3 {
		time.Sleep(700 * time.Millisecond)
		e.switchWAL(c)
	}
	target := time.Now()
	time.Sleep(1500 * time.Millisecond)
	load.Stop(t)
	stopped = true
	last := e.switchWAL(c)
	e.waitArchived(c, last, 30*time.Second)
	// A row is stamped just before its INSERT commits: those stamped up to a second before the
	// target must be restored, none stamped after it may be.
	wantBefore := loadCount(t, c, target.Add(-time.Second))
	maxBefore := loadCount(t, c, target)
	total := loadCount(t, c, time.Now().Add(time.Hour))
	if wantBefore < 20 || total <= wantBefore {
		t.Fatalf("write load: %d rows up to the target, %d in all: want rows on both sides", wantBefore, total)
	}

	// 3. The drill: restore to the target in scratch space and prove it.
	tgt := target.UTC().Format(time.RFC3339Nano)
	r = e.run("verify", "--pitr", tgt, "--instance", testInstance, "--json")
	var rep pitr.DrillReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || !rep.OK {
		t.Fatalf("verify --pitr: code %d, %+v %v\n%s", r.code, rep, err, r)
	}
	names := map[string]bool{}
	for _, ch := range rep.Checks {
		names[ch.Name] = true
	}
	for _, want := range []string{"recovery", "none after target datavalue.created", "all up to target datavalue.created", "none after target datavalue.lastupdated"} {
		if !names[want] {
			t.Errorf("drill report lacks check %q: %+v", want, rep.Checks)
		}
	}
	if rep.RPOSeconds < 0 || rep.RPOSeconds > 3 || rep.Base != base.ID {
		t.Errorf("drill: achieved RPO %.3fs from base %s; want within a few seconds of the target (writes every 20ms), base %s", rep.RPOSeconds, rep.Base, base.ID)
	}
	t.Logf("PITR drill: restore %.1fs, RPO %.3fs", rep.RestoreSeconds, rep.RPOSeconds)
	if ents, _ := filepath.Glob(filepath.Join(e.dir, "dhis2-life-pitr-drill-*")); len(ents) != 0 {
		t.Errorf("drill left its scratch cluster behind: %v", ents)
	}

	// 4. Restore to the time, promoted, on a port.
	dataDir := filepath.Join(e.dir, "restored")
	port := freeTestPort(t)
	r = e.run("restore", "--pitr", tgt, "--instance", testInstance, "--to-data-dir", dataDir, "--port", strconv.Itoa(port), "--json")
	var res pitr.RestoreResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 || res.State != "promoted" {
		t.Fatalf("restore --pitr: code %d %+v %v\n%s", r.code, res, err, r)
	}
	t.Cleanup(func() {
		_ = pitr.Stop(context.Background(), &config.Instance{Name: testInstance, WAL: &config.WAL{}}, dataDir, 15)
	})
	rc, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, e.db))
	if err != nil {
		t.Fatalf("connecting to the restored cluster: %v", err)
	}
	defer rc.Close(ctx)
	var inRecovery bool
	_ = rc.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
	got := loadCount(t, rc, time.Now().Add(time.Hour))
	gotBefore := loadCount(t, rc, target)
	if inRecovery || got != gotBefore || got < wantBefore || got > maxBefore {
		t.Fatalf("restored cluster: in recovery %v, %d load rows (%d stamped up to the target); production had %d up to a second before the target, %d up to it, %d in all",
			inRecovery, got, gotBefore, wantBefore, maxBefore, total)
	}
	// A second restore into the same, now non-empty, directory is refused.
	r = e.run("restore", "--pitr", tgt, "--instance", testInstance, "--to-data-dir", dataDir, "--port", strconv.Itoa(port))
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore --pitr into a non-empty directory: %s", r)
	}

	// 5. Status and metric while archiving works. On a loaded machine the archiver may trail
	// wal_max_lag (4 s) for a moment, so status is asked until it reports no WAL problem; the
	// outage below proves that it does report one when archiving stops.
	var st struct {
		Instances map[string]struct {
			WAL      pitr.WALStatus `json:"wal"`
			Problems []string       `json:"problems"`
		} `json:"instances"`
	}
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(time.Second) {
		r = e.run("status", "--json")
		st.Instances = nil
		err := json.Unmarshal([]byte(r.stdout), &st)
		if err == nil && st.Instances[testInstance].WAL.LastArchivedAt != nil && len(st.Instances[testInstance].WAL.Problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status --json with archiving working: %v %+v\n%s", err, st, r)
		}
	}
	if d := st.Instances[testInstance].WAL.LastDrill; d == nil || !d.OK || d.ID != rep.ID || d.RPOSeconds != rep.RPOSeconds {
		t.Fatalf("status --json: last_pitr_drill %+v, want the drill %s with its RPO %.3f", d, rep.ID, rep.RPOSeconds)
	}
	e.checkWALMetric(st.Instances[testInstance].WAL.LastArchivedAt.Unix())

	// 6. The bucket unreachable while PostgreSQL archives: the segments wait in pg_wal, status
	// alerts, and nothing is lost when the bucket returns.
	var failedBefore int64
	_ = c.QueryRow(ctx, `SELECT failed_count FROM pg_stat_archiver`).Scan(&failedBefore)
	e.s3.Stop()
	load = startWriteLoad(t, e.own.AdminDSNFor(e.db))
	var during []string
	for range 3 {
		time.Sleep(400 * time.Millisecond)
		during = append(during, e.switchWAL(c))
	}
	load.Stop(t)
	waitFor(t, 30*time.Second, "archive_command failures while the bucket is down", func() bool {
		var failed int64
		_ = c.QueryRow(ctx, `SELECT failed_count FROM pg_stat_archiver`).Scan(&failed)
		return failed > failedBefore
	})
	for _, seg := range during {
		if _, err := os.Stat(filepath.Join(e.own.DataDir, "pg_wal", seg)); err != nil {
			t.Fatalf("segment %s is not waiting in pg_wal while the bucket is down: %v", seg, err)
		}
	}
	time.Sleep(4 * time.Second) // past wal_max_lag
	r = e.run("status", "--json")
	st.Instances = nil
	_ = json.Unmarshal([]byte(r.stdout), &st)
	probs := strings.Join(st.Instances[testInstance].Problems, "; ")
	if r.code != 3 || !strings.Contains(probs, "WAL not archived for") || !strings.Contains(probs, "archive_command fails") {
		t.Fatalf("status while the bucket is down: want exit 3 naming the WAL lag and the failing archive_command\n%s", r)
	}
	e.s3.Start(t)
	// The archiver retries on its next wake-up; a new segment wakes it at once.
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS pitr_wakeup(x int); INSERT INTO pitr_wakeup VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	wake := e.switchWAL(c)
	e.waitArchived(c, wake, 90*time.Second)
	r = e.mustRun("wal", "list", "--instance", testInstance, "--json")
	var objs []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &objs); err != nil {
		t.Fatal(err)
	}
	archived := map[string]bool{}
	for _, o := range objs {
		archived[o.Name] = true
	}
	for _, seg := range append(during, wake) {
		if !archived[seg] {
			t.Fatalf("segment %s written while the bucket was down is missing from the archive after it returned: %v", seg, archived)
		}
	}
	if r := e.run("status"); r.code != 0 {
		t.Fatalf("status after the bucket returned:\n%s", r)
	}

	// 7. A segment missing from the archive: the restore stops at the last reachable time and
	// says which time that is.
	target2 := time.Now()
	missing := during[1]
	if err := e.s3.Client(t).RemoveObject(ctx, bucketOf(e.repoURL), "repo/wal/"+testInstance+"/"+missing, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	dataDir2 := filepath.Join(e.dir, "restored2")
	r = e.run("restore", "--pitr", target2.UTC().Format(time.RFC3339Nano), "--instance", testInstance, "--to-data-dir", dataDir2, "--port", strconv.Itoa(freeTestPort(t)))
	t.Cleanup(func() {
		_ = pitr.Stop(context.Background(), &config.Instance{Name: testInstance, WAL: &config.WAL{}}, dataDir2, 15)
	})
	if r.code != 1 || !strings.Contains(r.stderr, "WAL file "+missing+" is missing from the archive") || !strings.Contains(r.stderr, "the last reachable time is 20") {
		t.Fatalf("restore --pitr past a missing segment: want exit 1 naming %s and the last reachable time\n%s", missing, r)
	}
	t.Logf("restore past a missing segment: %s", strings.TrimSpace(r.stderr))

	// 8. Retention: with a second base backup and keep_base_backups = 1, the first one and the
	// WAL only it needs go; history files and the WAL the second needs stay.
	r = e.mustRun("base-backup", "--instance", testInstance, "--json")
	var base2 pitr.BaseManifest
	if err := json.Unmarshal([]byte(r.stdout), &base2); err != nil {
		t.Fatal(err)
	}
	e.instanceExtra = append(e.instanceExtra[:0:0], e.instanceExtra...)
	e.instanceExtra = append(e.instanceExtra, "") // keep the order; keep_base_backups goes into [instances.hmis.wal]
	for i, l := range e.instanceExtra {
		if l == "[instances.hmis.wal]" {
			e.instanceExtra = append(e.instanceExtra[:i+1], append([]string{"keep_base_backups = 1"}, e.instanceExtra[i+1:]...)...)
			break
		}
	}
	e.writeConfig()
	r = e.mustRun("wal", "prune", "--instance", testInstance, "--dry-run", "--json")
	var pp pitr.PrunePlan
	if err := json.Unmarshal([]byte(r.stdout), &pp); err != nil || pp.Applied || len(pp.ForgetBases) != 1 || pp.ForgetBases[0].ID != base.ID || pp.Cutoff != base2.StartWAL || len(pp.DeleteWAL) == 0 {
		t.Fatalf("wal prune --dry-run: %+v %v\n%s", pp, err, r)
	}
	for _, n := range pp.DeleteWAL {
		if n >= base2.StartWAL {
			t.Fatalf("prune would delete %s, which base backup %s (from %s) needs", n, base2.ID, base2.StartWAL)
		}
	}
	r = e.mustRun("wal", "prune", "--instance", testInstance)
	r = e.mustRun("wal", "list", "--instance", testInstance, "--json")
	objs = nil
	_ = json.Unmarshal([]byte(r.stdout), &objs)
	for _, o := range objs {
		if o.Name < base2.StartWAL && len(o.Name) >= 24 && !strings.HasSuffix(o.Name, ".history") {
			t.Fatalf("after prune the archive still holds %s, older than %s", o.Name, base2.StartWAL)
		}
		if o.Name == base2.StartWAL {
			base2.StartWAL = "" // found
		}
	}
	if base2.StartWAL != "" {
		t.Fatalf("after prune the archive lacks %s, the first segment of the kept base backup", base2.StartWAL)
	}
	r = e.mustRun("base-backup", "--instance", testInstance, "--list", "--json")
	var left []pitr.BaseManifest
	if err := json.Unmarshal([]byte(r.stdout), &left); err != nil || len(left) != 1 || left[0].ID != base2.ID {
		t.Fatalf("base backups after prune: %+v %v", left, err)
	}
}

func bucketOf(repoURL string) string {
	rest := strings.TrimPrefix(repoURL, "s3:http://")
	parts := strings.Split(rest, "/")
	return parts[1]
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkWALMetric runs the daemon briefly and checks it exports the last archived time.
func (e *pitrEnv) checkWALMetric(want int64) {
	t := e.t
	t.Helper()
	var listen string
	for _, l := range e.instanceExtra {
		if v, ok := strings.CutPrefix(l, "metrics_listen = "); ok {
			listen = strings.Trim(v, `"`)
		}
	}
	cmd := exec.Command(testBinary, "--config", e.cfgPath, "daemon")
	cmd.Env = cliEnv()
	logs := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	line := ""
	waitFor(t, 30*time.Second, "dhis2_life_wal_last_archived_timestamp_seconds on /metrics", func() bool {
		resp, err := http.Get("http://" + listen + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, `dhis2_life_wal_last_archived_timestamp_seconds{instance="hmis"}`) {
				line = l
				return true
			}
		}
		return false
	})
	f := strings.Fields(line)
	v, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil || int64(v) < want {
		t.Fatalf("metric %q: want a Unix time >= %d (%v)\ndaemon log:\n%s", line, want, err, logs.String())
	}
}

func freeTestPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPITRUsage: bad point-in-time invocations are usage errors (exit 2) naming the fix.
func TestPITRUsage(t *testing.T) {
	e := newEnv(t, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", "--pitr", "yesterday", "--to-data-dir", "/tmp/x", "--port", "5440"}, "is not a time"},
		{[]string{"restore", "--pitr", "2026-12-01 14:05:00"}, "needs --to-data-dir DIR and --port PORT"},
		{[]string{"restore", "--pitr", "2026-12-01 14:05:00", "--to-db", "postgres://x@127.0.0.1/y", "--to-data-dir", "/tmp/x", "--port", "5440"}, "takes no --to-db"},
		{[]string{"restore", "--pitr", "2026-12-01 14:05:00", "--to-data-dir", "/tmp/x", "--port", "5440"}, "has no [instances.hmis.wal] table"},
		{[]string{"verify", "--pitr", "2026-12-01 14:05:00"}, "has no [instances.hmis.wal] table"},
		{[]string{"wal", "push", "--instance", "hmis"}, "takes the path of one WAL file"},
		{[]string{"base-backup"}, "has no [instances.hmis.wal] table"},
	} {
		r := e.run(c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("dhis2-life %s: want exit 2 saying %q\n%s", strings.Join(c.args, " "), c.want, r)
		}
	}
	for _, cmd := range [][]string{{"wal", "setup"}, {"wal", "push"}, {"wal", "fetch"}, {"wal", "list"}, {"wal", "prune"}, {"base-backup"}} {
		if out := e.mustRun(append(cmd, "--help")...).stdout; !strings.Contains(out, "EXAMPLES") {
			t.Errorf("dhis2-life %s --help has no EXAMPLES", strings.Join(cmd, " "))
		}
	}
}
