package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// upEnv is an upgrade test's setup: a private PostgreSQL 13 cluster (pg_ctl layout) holding
// the DHIS2-shaped fixture, app hooks that write files, and a stand-in app health server.
type upEnv struct {
	*env
	cl      *testenv.Cluster
	appDir  string // RUNNING exists while the app "runs"; hooks.log lists hook calls
	healthy bool
}

func newUpgradeEnv(t *testing.T, gen string, scale float64) *upEnv {
	t.Helper()
	return newUpgradeEnvOn(t, testenv.StartCluster(t, 13), gen, scale)
}

func newUpgradeEnvOn(t *testing.T, cl *testenv.Cluster, gen string, scale float64) *upEnv {
	t.Helper()
	e := &env{t: t, pg: cl.Postgres(), s3: testenv.StartMinIO(t), dir: t.TempDir(), gen: gen}
	u := &upEnv{env: e, cl: cl, appDir: filepath.Join(e.dir, "app"), healthy: true}
	e.restic = testenv.Restic(t)
	e.stateDir = filepath.Join(e.dir, "state")
	e.repoURL = e.s3.ResticRepo(e.s3.Bucket(t, "up-"+strings.ToLower(t.Name()), false), "repo")
	e.envFile = e.s3.EnvFile(t)
	e.passFile = filepath.Join(e.dir, "repository.pass")
	writeFile(t, e.passFile, "correct horse battery staple\n", 0o600)
	e.dbPass = filepath.Join(e.dir, "db.pass")
	writeFile(t, e.dbPass, cl.AppPassword+"\n", 0o600)
	e.home = filepath.Join(e.dir, "dhis2-home")
	e.db = "dhis2"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	fixtureMu.Lock()
	res, err := fixture.Create(ctx, cl.AdminDSN, e.db, fixture.Options{Generation: gen, Scale: scale, Home: e.home, Owner: cl.AppUser, Seed: 1})
	fixtureMu.Unlock()
	if err != nil {
		t.Fatalf("fixture %s on PostgreSQL 13: %v", gen, err)
	}
	// On 13 the fixture leaves some regenerable tables owned by postgres; give them to dhis
	// as DHIS2 would own them.
	cl.Postgres().AdminExec(t, e.db, `DO $$DECLARE r record; BEGIN
  FOR r IN SELECT format('%I.%I', schemaname, tablename) AS t, tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'dhis' LOOP
    RAISE NOTICE 'reowning %', r.tablename;
    EXECUTE 'ALTER TABLE ' || r.t || ' OWNER TO dhis';
  END LOOP; END$$`)
	t.Logf("fixture %s (scale %g) on PostgreSQL 13: %d tables, flyway %s, built in %s", gen, scale, len(res.Tables), res.Flyway, time.Since(t0).Round(time.Millisecond))
	if err := os.MkdirAll(u.appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(u.appDir, "RUNNING"), "", 0o644)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := os.Stat(filepath.Join(u.appDir, "RUNNING"))
		_, sick := os.Stat(filepath.Join(u.appDir, "SICK"))
		if r.URL.Path != "/api/system/ping" || err != nil || sick == nil {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "pong")
	}))
	t.Cleanup(srv.Close)
	log := filepath.Join(u.appDir, "hooks.log")
	e.cfgPath = filepath.Join(e.dir, "dhis2-life.toml")
	probeOut := filepath.Join(u.appDir, "probe.out")
	running := filepath.Join(u.appDir, "RUNNING")
	cluster := []string{`kind = "pgctl"`, fmt.Sprintf("data_dir = %q", cl.DataDir), fmt.Sprintf("bin_dir = %q", cl.BinDir)}
	if cl.Name != "" {
		cluster = []string{`kind = "debian"`, fmt.Sprintf("version = \"%d\"", cl.Major), fmt.Sprintf("name = %q", cl.Name)}
	}
	e.instanceExtra = append(append([]string{"", "[instances.hmis.cluster]"}, cluster...),
		fmt.Sprintf("run_as = %q", cl.RunAs),
		"",
		"[instances.hmis.app]",
		// With PROBE in appDir the stop hook (blue still up, the upgrade running) tries a
		// snapshot of the instance and notes its output and exit code in probe.out.
		fmt.Sprintf("stop = %q", fmt.Sprintf("echo stop $(date +%%s.%%N) >> %s; rm -f %s; if [ -e %s ]; then %s --config %s snapshot > %s 2>&1; echo rc=$? >> %s; fi",
			log, running, filepath.Join(u.appDir, "PROBE"), testBinary, e.cfgPath, probeOut, probeOut)),
		fmt.Sprintf("start = %q", fmt.Sprintf("echo start $(date +%%s.%%N) >> %s; touch %s", log, running)),
		fmt.Sprintf("url = %q", srv.URL),
		`health_timeout = "3s"`,
	)
	// keep_last = 1: only the rollback point's pin keeps the pre-upgrade set.
	e.repositoryExtra = []string{"", "[retention]", "keep_last = 1"}
	e.writeConfig()
	e.init()
	return u
}

// runEnv runs the CLI with extra environment variables.
func (u *upEnv) runEnv(extra []string, args ...string) result {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testBinary, append([]string{"--config", u.cfgPath}, args...)...)
	cmd.Env = append(cliEnv(), extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), dur: time.Since(t0)}
	if ctx.Err() != nil {
		u.t.Fatalf("dhis2-life %s did not finish\n%s", strings.Join(args, " "), r)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		u.t.Fatal(err)
	}
	return r
}

// serverMajor returns the major version serving the instance's port.
func (u *upEnv) serverMajor() int {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.cl.AdminDSN)
	if err != nil {
		u.t.Fatalf("connecting after the upgrade step: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int / 10000").Scan(&n); err != nil {
		u.t.Fatal(err)
	}
	return n
}

// checksums returns an md5 of every table's rows (sorted text form) in the instance database.
func (u *upEnv) checksums() map[string]string {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(u.cl.AdminDSN, "/postgres?", "/"+u.db+"?", 1))
	if err != nil {
		u.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1`)
	if err != nil {
		u.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		u.t.Fatal(err)
	}
	out := map[string]string{}
	for _, tb := range tables {
		var sum string
		if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, E'\n' ORDER BY x::text), '')) FROM %s x`, tb)).Scan(&sum); err != nil {
			u.t.Fatalf("checksum of %s: %v", tb, err)
		}
		out[tb] = sum
	}
	if len(out) < 10 {
		u.t.Fatalf("only %d tables to checksum", len(out))
	}
	return out
}

func sameChecksums(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d tables, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: table %s checksum %s, want %s", what, k, got[k], v)
		}
	}
}

// upgrades returns `upgrades --json`.
func (u *upEnv) upgrades() []upgrade.Record {
	u.t.Helper()
	r := u.mustRun("upgrades", "--json")
	var recs []upgrade.Record
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil {
		u.t.Fatalf("upgrades --json: %v\n%s", err, r)
	}
	return recs
}

func (u *upEnv) lastUpgrade() upgrade.Record {
	u.t.Helper()
	recs := u.upgrades()
	if len(recs) == 0 {
		u.t.Fatal("upgrades --json lists no upgrade")
	}
	return recs[len(recs)-1]
}

func (u *upEnv) appRunning() bool {
	_, err := os.Stat(filepath.Join(u.appDir, "RUNNING"))
	return err == nil
}

// TestUpgradePostgres13To15 runs a real 13 -> 15 pg_upgrade (copy) of the DHIS2-shaped
// fixture, checks the data, snapshots and restores across it, and rolls it back after done.
func TestUpgradePostgres13To15(t *testing.T) {
	u := newUpgradeEnv(t, fixture.Gen244, 0.002)
	before := u.checksums()

	plan := u.mustRun("upgrade", "postgres", "plan", "--to", "15")
	for _, want := range []string{"ok   binaries", "ok   extensions", "postgis", "ok   disk", "ok   pg_upgrade --check", "pg_upgrade", "switch_port", "rollback:"} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan does not say %q:\n%s", want, plan.stdout)
		}
	}
	if u.serverMajor() != 13 {
		t.Fatal("plan changed the cluster")
	}

	// The upgrade holds the instance lock throughout: a snapshot tried while it runs (from
	// the app stop hook) is refused as busy.
	writeFile(t, filepath.Join(u.appDir, "PROBE"), "", 0o644)
	run := u.mustRun("upgrade", "postgres", "run", "--to", "15")
	t.Logf("upgrade run (copy) in %s:\n%s", run.dur.Round(time.Millisecond), run.stdout)
	if err := os.Remove(filepath.Join(u.appDir, "PROBE")); err != nil {
		t.Fatal(err)
	}
	if probe, err := os.ReadFile(filepath.Join(u.appDir, "probe.out")); err != nil || !strings.Contains(string(probe), "is busy") || !strings.Contains(string(probe), "rc=1") {
		t.Fatalf("a snapshot during the upgrade was not refused as busy (%v):\n%s", err, probe)
	}
	rec := u.lastUpgrade()
	if rec.State != upgrade.StateDone || rec.From != 13 || rec.To != 15 || rec.Point == "" || len(rec.Steps) != len(upgrade.Steps) {
		t.Fatalf("after run: %+v", rec)
	}
	for _, s := range rec.Steps {
		if !s.OK || s.Started == nil || s.Finished == nil {
			t.Fatalf("step %s not ok: %+v", s.Name, s)
		}
	}
	t.Logf("downtime (app stop -> app start), copy: %s", rec.Downtime())
	if u.serverMajor() != 15 || !u.appRunning() {
		t.Fatalf("after the upgrade: PostgreSQL %d, app running %v", u.serverMajor(), u.appRunning())
	}
	sameChecksums(t, "green after the upgrade", before, u.checksums())
	var postgis string
	if err := u.pgConn("dhis2").QueryRow(context.Background(), "SELECT extversion FROM pg_extension WHERE extname = 'postgis'").Scan(&postgis); err != nil || !strings.HasPrefix(postgis, "3.3") {
		t.Errorf("postgis on green is %q (%v), want 3.3.x after ALTER EXTENSION UPDATE", postgis, err)
	}

	// The rollback point pins its set, records PostgreSQL 13 and is in the repository.
	var pts []map[string]any
	if err := json.Unmarshal([]byte(u.mustRun("points", "--json").stdout), &pts); err != nil || len(pts) != 1 {
		t.Fatalf("points --json: %v %v", err, pts)
	}
	show := u.mustRun("point", "show", rec.Point, "--json")
	pk, _ := pts[0]["packages"].(map[string]any)
	for _, m := range u.snapshotsJSON() {
		if m.ID == rec.PointSet {
			t.Logf("rollback point %s: record %d bytes (with config copies and %d packages); its set %s: %d bytes read, %d bytes added to the repository",
				rec.Point, len(show.stdout), len(pk), m.ID, m.TotalBytes(), m.AddedBytes())
		}
	}
	if pts[0]["id"] != rec.Point || pts[0]["set"] != rec.PointSet || !strings.HasPrefix(fmt.Sprint(pts[0]["postgres_version"]), "13.") || pts[0]["dhis2_version"] == "" {
		t.Fatalf("point: %v (upgrade %+v)", pts[0], rec)
	}

	// Snapshots after the upgrade are dumped from 15 with 15's pg_dump; the pre-upgrade set
	// (dumped from 13) restores into 15 and its drill passes.
	m := u.snapshot()
	if m.Server.VersionNum/10000 != 15 {
		t.Fatalf("snapshot after the upgrade: server %s", m.Server.Version)
	}
	target := "restored_from_13"
	u.mustRun("restore", rec.PointSet, "--to-db", fmt.Sprintf("postgres://dhis@127.0.0.1:%d/%s?sslmode=disable", u.cl.Port, target), "--to-db-password-file", u.dbPass)
	var n int64
	if err := u.pgConn(target).QueryRow(context.Background(), "SELECT count(*) FROM datavalue").Scan(&n); err != nil || n == 0 {
		t.Fatalf("the set dumped from 13 restored into 15: %d data values (%v)", n, err)
	}
	if v := u.mustRun("verify", rec.PointSet, "--json"); !strings.Contains(v.stdout, `"ok": true`) {
		t.Fatalf("drill of the pre-upgrade set: %s", v)
	}

	// Retention plans the sets across the upgrade as it would without one: a catalogue rebuilt
	// from the repository alone (no upgrade records; the point comes back from the repository)
	// gives the same plan.
	planBefore := u.mustRun("retention", "plan", "--json").stdout
	if !strings.Contains(planBefore, "rollback point "+rec.Point) {
		t.Fatalf("retention plan does not pin the point's set:\n%s", planBefore)
	}
	u.stateDir = filepath.Join(u.dir, "state-fresh")
	u.writeConfig()
	u.mustRun("catalog", "rebuild")
	if planAfter := u.mustRun("retention", "plan", "--json").stdout; planAfter != planBefore {
		t.Fatalf("retention plan differs on a rebuilt catalogue:\nbefore %s\nafter %s", planBefore, planAfter)
	}
	u.stateDir = filepath.Join(u.dir, "state")
	u.writeConfig()

	// copy keeps blue's data directory, so a done upgrade rolls back to it.
	rb := u.mustRun("upgrade", "rollback")
	t.Logf("rollback after done in %s:\n%s", rb.dur.Round(time.Millisecond), rb.stdout)
	if rec := u.lastUpgrade(); rec.State != upgrade.StateRolledBack {
		t.Fatalf("after rollback: %+v", rec)
	}
	if u.serverMajor() != 13 || !u.appRunning() {
		t.Fatalf("after rollback: PostgreSQL %d, app running %v", u.serverMajor(), u.appRunning())
	}
	sameChecksums(t, "blue after rollback", before, u.checksums())
	if _, err := os.Stat(filepath.Join(u.cl.Root, "15", "main")); !os.IsNotExist(err) {
		t.Errorf("green's data directory is still there after rollback: %v", err)
	}
	oneLineError(t, u.run("upgrade", "finalize"), 1, "rolled_back", "not done")
	oneLineError(t, u.run("upgrade", "rollback"), 1, "nothing to roll back")
}

func (u *upEnv) pgConn(db string) *pgx.Conn {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(u.cl.AdminDSN, "/postgres?", "/"+db+"?", 1))
	if err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// killed asserts the run died of the SIGKILL of the test hook and the upgrade is left
// running at step.
func (u *upEnv) killed(r result, step string) upgrade.Record {
	u.t.Helper()
	if r.code != -1 {
		u.t.Fatalf("want the process killed at %s, got\n%s", step, r)
	}
	rec := u.lastUpgrade()
	if rec.State != upgrade.StateRunning || rec.Step != step {
		u.t.Fatalf("after a kill at %s: state %s, step %s", step, rec.State, rec.Step)
	}
	return rec
}

func (u *upEnv) assertBlue(what string, want map[string]string) {
	u.t.Helper()
	if rec := u.lastUpgrade(); rec.State != upgrade.StateRolledBack {
		u.t.Fatalf("%s: state %s, want rolled_back (%s)", what, rec.State, rec.Error)
	}
	if m := u.serverMajor(); m != 13 || !u.appRunning() {
		u.t.Fatalf("%s: PostgreSQL %d serves the port, app running %v", what, m, u.appRunning())
	}
	sameChecksums(u.t, what, want, u.checksums())
}

func killEnv(point string) []string { return []string{upgrade.KillEnv + "=" + point} }

// TestUpgradeKillMatrix kills dhis2-life with SIGKILL at every step boundary (after a step
// is recorded as started, or after its work but before it is recorded as done) and in the
// middle of pg_upgrade, then shows that resume finishes and rollback returns a working blue
// with the same table checksums. It also covers the refused inputs.
func TestUpgradeKillMatrix(t *testing.T) {
	u := newUpgradeEnv(t, fixture.Gen242, 0.001)
	before := u.checksums()
	var matrix []string
	t0 := time.Now()

	// Bad input: each a one-line error naming the fix; nothing changes.
	oneLineError(t, u.run("upgrade", "rollback"), 1, "nothing to roll back", "no upgrade")
	oneLineError(t, u.run("upgrade", "finalize"), 1, "nothing to finalize", "no upgrade")
	oneLineError(t, u.run("upgrade", "postgres", "run", "--to", "12"), 2, "not newer", "--to 15")
	oneLineError(t, u.run("upgrade", "postgres", "run", "--to", "99"), 2, "not supported", "from 13 to 17")
	oneLineError(t, u.run("upgrade", "postgres", "run", "--to", "15", "--method", "rsync"), 2, "unknown method", "copy, clone or link")
	if _, err := os.Stat("/usr/lib/postgresql/16/bin/pg_upgrade"); err == nil {
		t.Fatal("PostgreSQL 16 is installed here: the missing-binaries case needs a major that is not")
	}
	oneLineError(t, u.run("upgrade", "postgres", "run", "--to", "16"), 1, "binaries", "apt-get install postgresql-16")
	// too little disk: green's parent is a 4 MiB tmpfs
	greenParent := filepath.Join(u.cl.Root, "15")
	if err := os.MkdirAll(greenParent, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", greenParent).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small tmpfs for the disk check (tests run as root): %v: %s", err, out)
	}
	r := u.run("upgrade", "postgres", "run", "--to", "15")
	if out, err := exec.Command("umount", greenParent).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", greenParent, err, out)
	}
	_ = os.Remove(greenParent)
	oneLineError(t, r, 1, "disk", "free space")
	// an extension that exists for 13 only
	ext := "dl_only13_" + randName()
	extDir := "/usr/share/postgresql/13/extension"
	writeFile(t, filepath.Join(extDir, ext+".control"), "default_version = '1.0'\nrelocatable = true\n", 0o644)
	writeFile(t, filepath.Join(extDir, ext+"--1.0.sql"), "CREATE FUNCTION dl_only13_answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n", 0o644)
	t.Cleanup(func() {
		os.Remove(filepath.Join(extDir, ext+".control"))
		os.Remove(filepath.Join(extDir, ext+"--1.0.sql"))
	})
	u.cl.Postgres().AdminExec(t, u.db, "CREATE EXTENSION "+ext)
	oneLineError(t, u.run("upgrade", "postgres", "plan", "--to", "15"), 1, "extensions", ext, "apt-get install postgresql-15-")
	u.cl.Postgres().AdminExec(t, u.db, "DROP EXTENSION "+ext+"; DROP FUNCTION IF EXISTS dl_only13_answer()")
	if recs := u.upgrades(); len(recs) != 0 || u.serverMajor() != 13 || !u.appRunning() {
		t.Fatalf("refused runs changed something: %d upgrades, PostgreSQL %d", len(recs), u.serverMajor())
	}
	sameChecksums(t, "after refused runs", before, u.checksums())
	t.Logf("bad input checked in %s", time.Since(t0).Round(time.Millisecond))

	// Killed before pg_upgrade at every boundary, resumed each time, then rolled back.
	t1 := time.Now()
	u.killed(u.runEnv(killEnv("rollback_point:done"), "upgrade", "postgres", "run", "--to", "15"), "rollback_point")
	matrix = append(matrix, fmt.Sprintf("%-22s resume (chain)        (%s)", "rollback_point:done", time.Since(t1).Round(time.Second)))
	// The point stored before the kill is the upgrade's point: resume takes no second one.
	var pts []map[string]any
	if err := json.Unmarshal([]byte(u.mustRun("points", "--json").stdout), &pts); err != nil || len(pts) != 1 {
		t.Fatalf("points after a kill at rollback_point:done: %v %v", err, pts)
	}
	for _, at := range []string{"app_stop", "count_blue:done", "stop_blue:done"} {
		t1 := time.Now()
		step, _, _ := strings.Cut(at, ":")
		u.killed(u.runEnv(killEnv(at), "upgrade", "resume"), step)
		matrix = append(matrix, fmt.Sprintf("%-22s resume (chain)        (%s)", at, time.Since(t1).Round(time.Second)))
	}
	if rec := u.lastUpgrade(); rec.Point != pts[0]["id"] {
		t.Fatalf("the resumed upgrade uses point %s, want the one stored before the kill (%v)", rec.Point, pts[0]["id"])
	}
	t1 = time.Now()
	u.mustRun("upgrade", "rollback")
	u.assertBlue("rollback after a kill at stop_blue:done", before)
	matrix = append(matrix, fmt.Sprintf("%-22s rollback -> blue 13, checksums equal (%s)", "stop_blue:done", time.Since(t1).Round(time.Second)))

	// Killed in the middle of pg_upgrade and after green started, then rolled back.
	for _, at := range []string{"pg_upgrade:mid", "start_green:done"} {
		t1 := time.Now()
		step, _, _ := strings.Cut(at, ":")
		u.killed(u.runEnv(killEnv(at), "upgrade", "postgres", "run", "--to", "15"), step)
		u.mustRun("upgrade", "rollback")
		u.assertBlue("rollback after a kill at "+at, before)
		matrix = append(matrix, fmt.Sprintf("%-22s rollback -> blue 13, checksums equal (%s)", at, time.Since(t1).Round(time.Second)))
	}

	// One upgrade killed again and again: in the middle of pg_upgrade, then at every later
	// boundary while resuming; the last resume finishes it.
	t1 = time.Now()
	u.killed(u.runEnv(killEnv("pg_upgrade:mid"), "upgrade", "postgres", "run", "--to", "15"), "pg_upgrade")
	oneLineError(t, u.run("upgrade", "postgres", "run", "--to", "15"), 1, "still running", "upgrade resume")
	oneLineError(t, u.run("upgrade", "finalize"), 1, "not done")
	matrix = append(matrix, fmt.Sprintf("%-22s resume (chain below)  (%s)", "pg_upgrade:mid", time.Since(t1).Round(time.Second)))
	for _, at := range []string{"pg_upgrade:done", "switch_port", "start_green:done", "update_extensions:done", "analyze", "count_green:done", "app_start", "app_start:done", "health:done"} {
		t1 := time.Now()
		step, _, _ := strings.Cut(at, ":")
		u.killed(u.runEnv(killEnv(at), "upgrade", "resume"), step)
		matrix = append(matrix, fmt.Sprintf("%-22s resume (chain)        (%s)", at, time.Since(t1).Round(time.Second)))
	}
	t1 = time.Now()
	u.mustRun("upgrade", "resume")
	rec := u.lastUpgrade()
	if rec.State != upgrade.StateDone || u.serverMajor() != 15 || !u.appRunning() {
		t.Fatalf("after the last resume: state %s, PostgreSQL %d, app running %v", rec.State, u.serverMajor(), u.appRunning())
	}
	sameChecksums(t, "green after the resumed upgrade", before, u.checksums())
	matrix = append(matrix, fmt.Sprintf("%-22s -> done on 15, checksums equal (%s)", "final resume", time.Since(t1).Round(time.Second)))
	// finalize: refused while younger than --older-than, then blue's data directory goes.
	oneLineError(t, u.run("upgrade", "finalize", "--older-than", "7d"), 1, "less than --older-than 7d")
	if _, err := os.Stat(u.cl.DataDir); err != nil {
		t.Fatalf("a refused finalize removed blue: %v", err)
	}
	u.mustRun("upgrade", "finalize")
	if rec := u.lastUpgrade(); rec.State != upgrade.StateFinalized {
		t.Fatalf("after finalize: %s", rec.State)
	}
	if _, err := os.Stat(u.cl.DataDir); !os.IsNotExist(err) {
		t.Fatalf("blue's data directory is still there after finalize: %v", err)
	}
	if u.serverMajor() != 15 {
		t.Fatal("finalize stopped green")
	}
	oneLineError(t, u.run("upgrade", "rollback"), 1, "finalized", "nothing to roll back")
	// The next upgrade starts from green: 15 is now the cluster's major.
	oneLineError(t, u.run("upgrade", "postgres", "plan", "--to", "15"), 2, "not newer than the cluster's PostgreSQL 15")
	matrix = append(matrix, "finalize after done    -> blue removed, green serves 15")
	t.Logf("kill matrix (%s):\n  %s", time.Since(t0).Round(time.Second), strings.Join(matrix, "\n  "))
}

// TestUpgradeDebianClusterLink upgrades a postgresql-common cluster (13/NAME -> 15/NAME, as
// DHIS2 hosts have them) with --method link (green shares blue's files), then rolls back
// after done: blue's data directory is unusable once green has run, so the rollback
// restores the rollback point into a fresh PostgreSQL 13 cluster in blue's place.
func TestUpgradeDebianClusterLink(t *testing.T) {
	cl := testenv.StartDebianCluster(t, 13)
	u := newUpgradeEnvOn(t, cl, fixture.Gen242, 0.001)
	before := u.checksums()

	plan := u.mustRun("upgrade", "postgres", "plan", "--to", "15", "--method", "link")
	if !strings.Contains(plan.stdout, "restores the rollback point") || !strings.Contains(plan.stdout, "ok   pg_upgrade --check") {
		t.Fatalf("link plan does not say how rollback works:\n%s", plan.stdout)
	}
	run := u.mustRun("upgrade", "postgres", "run", "--to", "15", "--method", "link")
	rec := u.lastUpgrade()
	if rec.State != upgrade.StateDone || u.serverMajor() != 15 || !u.appRunning() {
		t.Fatalf("link upgrade: %+v\n%s", rec, run)
	}
	t.Logf("downtime (app stop -> app start), postgresql-common, link: %s (run %s)", rec.Downtime(), run.dur.Round(time.Millisecond))
	sameChecksums(t, "green 15/"+cl.Name, before, u.checksums())
	out, err := exec.Command("pg_lsclusters", "-h").Output()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[1] == cl.Name {
			lines = append(lines, strings.Join(f[:4], " "))
		}
	}
	want := []string{fmt.Sprintf("13 %s %d down", cl.Name, cl.Port), fmt.Sprintf("15 %s %d online", cl.Name, cl.Port)}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("pg_lsclusters after the upgrade: %q, want %q", lines, want)
	}
	if sc := startConf(t, cl.ConfDir); sc != "manual" {
		t.Errorf("blue's start.conf says %q, want manual", sc)
	}

	rb := u.mustRun("upgrade", "rollback")
	t.Logf("link rollback in %s:\n%s", rb.dur.Round(time.Millisecond), rb.stdout)
	if !strings.Contains(rb.stdout, "restored") {
		t.Fatalf("link rollback did not restore the point:\n%s", rb.stdout)
	}
	if rec := u.lastUpgrade(); rec.State != upgrade.StateRolledBack || u.serverMajor() != 13 || !u.appRunning() {
		t.Fatalf("after the link rollback: state %s, PostgreSQL %d, app running %v", rec.State, u.serverMajor(), u.appRunning())
	}
	// The set leaves out regenerable tables' data (as every snapshot does): every other
	// table is back exactly, the left-out ones are empty.
	var ms []struct {
		ID       string `json:"id"`
		Excluded []struct{ Schema, Name string }
	}
	if err := json.Unmarshal([]byte(u.mustRun("snapshots", "--json").stdout), &ms); err != nil {
		t.Fatal(err)
	}
	after := u.checksums()
	found := false
	for _, m := range ms {
		if m.ID != rec.PointSet {
			continue
		}
		found = true
		for _, x := range m.Excluded {
			k := fmt.Sprintf("%s.%s", x.Schema, x.Name)
			if !strings.HasPrefix(after[k], "0:") {
				t.Errorf("excluded table %s is not empty after the restore: %s", k, after[k])
			}
			delete(before, k)
			delete(after, k)
		}
	}
	if !found {
		t.Fatalf("the point's set %s is not listed by snapshots", rec.PointSet)
	}
	sameChecksums(t, "blue restored from the rollback point", before, after)
	if _, err := os.Stat(filepath.Join("/etc/postgresql/15", cl.Name)); !os.IsNotExist(err) {
		t.Errorf("green's postgresql-common cluster 15/%s is still there: %v", cl.Name, err)
	}
	if _, err := os.Stat(cl.DataDir + ".linked-" + rec.ID); !os.IsNotExist(err) {
		t.Errorf("blue's linked data directory is still there: %v", err)
	}
	if sc := startConf(t, cl.ConfDir); sc != "manual" {
		t.Errorf("blue's start.conf says %q after rollback, want its original (manual)", sc)
	}
}

// startConf returns the setting of a postgresql-common start.conf (comments left out).
func startConf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "start.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}
