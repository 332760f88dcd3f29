package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

var stubBin struct {
	once sync.Once
	path string
	err  error
}

// stubBinary builds testdata/dhis2stub, the stand-in for DHIS2, once per test binary.
func stubBinary(t *testing.T) string {
	t.Helper()
	stubBin.once.Do(func() {
		stubBin.path = filepath.Join(os.TempDir(), "dhis2-life-itest-bin", fmt.Sprintf("dhis2stub-%d", os.Getpid()))
		out, err := exec.Command("go", "build", "-o", stubBin.path, "../../testdata/dhis2stub").CombinedOutput()
		if err != nil {
			stubBin.err = fmt.Errorf("building testdata/dhis2stub: %v\n%s", err, out)
		}
	})
	if stubBin.err != nil {
		t.Fatal(stubBin.err)
	}
	return stubBin.path
}

// makeWAR writes a stand-in WAR: build.properties with version and the given migrations
// (file name -> SQL).
func makeWAR(t *testing.T, path, version string, migrations map[string]string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	w, _ := z.Create("WEB-INF/classes/build.properties")
	fmt.Fprintf(w, "build.version=%s\nbuild.revision=stub\n", version)
	for name, sql := range migrations {
		w, _ := z.Create("WEB-INF/classes/db/migration/" + name)
		io.WriteString(w, sql)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// dhis2Env is a DHIS2 upgrade test's setup: the fixture database behind a blue stand-in
// app, a green slot, and a real nginx in front.
type dhis2Env struct {
	*env
	stub      string
	nginx     *testenv.Nginx
	blueURL   string
	greenURL  string
	greenHome string
	greenLog  string
	oldWAR    string
	goodWAR   string
	badWAR    string
	runDir    string
	// maintenance is the upstream (host:port) of the maintenance page server.
	maintenance string
}

// slotHooks returns start and stop commands running the stand-in in the background.
func slotHooks(stub, home, war string, port int, pid, log string) (start, stop string) {
	start = fmt.Sprintf(`if [ -f %[1]s ] && kill -0 $(cat %[1]s) 2>/dev/null; then exit 0; fi; nohup %[2]s -home %[3]s -war %[4]s -listen 127.0.0.1:%[5]d >> %[6]s 2>&1 & echo $! > %[1]s`,
		pid, stub, home, war, port, log)
	stop = fmt.Sprintf(`if [ -f %[1]s ]; then p=$(cat %[1]s); kill $p 2>/dev/null; while kill -0 $p 2>/dev/null; do sleep 0.05; done; rm -f %[1]s; fi`, pid)
	return start, stop
}

func newDHIS2Env(t *testing.T) *dhis2Env {
	t.Helper()
	e := newEnv(t, "")
	// DHIS2_LIFE_UPGRADE_SCALE sizes the fixture for measurements (default 0.001).
	scale := 0.001
	if v := os.Getenv("DHIS2_LIFE_UPGRADE_SCALE"); v != "" {
		if _, err := fmt.Sscan(v, &scale); err != nil {
			t.Fatalf("DHIS2_LIFE_UPGRADE_SCALE=%q: %v", v, err)
		}
	}
	e.db = createFixture(t, e.pg, fixture.Gen240, e.home, scale)
	e.gen = fixture.Gen240
	d := &dhis2Env{env: e, stub: stubBinary(t), runDir: filepath.Join(e.dir, "run")}
	if err := os.MkdirAll(d.runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The fixture's dhis.conf carries a made-up password: give it the app role's.
	conf, err := dhisconf.Read(filepath.Join(e.home, "dhis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf.Set("connection.password", e.pg.AppPassword)
	if err := conf.Write(filepath.Join(e.home, "dhis.conf")); err != nil {
		t.Fatal(err)
	}
	d.oldWAR = makeWAR(t, filepath.Join(e.dir, "dhis-2.40.war"), "2.40.3", nil)
	d.goodWAR = makeWAR(t, filepath.Join(e.dir, "dhis-2.41.war"), "2.41.0", map[string]string{
		"V2_41_1__add_stub_column.sql": "ALTER TABLE dataelement ADD COLUMN IF NOT EXISTS stubnote text;",
		"V2_41_2__create_stubnote.sql": "CREATE TABLE stubnote (id serial PRIMARY KEY, note text, created timestamp NOT NULL DEFAULT localtimestamp, lastupdated timestamp NOT NULL DEFAULT localtimestamp);",
	})
	d.badWAR = makeWAR(t, filepath.Join(e.dir, "dhis-2.41-broken.war"), "2.41.0", map[string]string{
		"V2_41_1__add_stub_column.sql": "ALTER TABLE dataelement ADD COLUMN IF NOT EXISTS stubnote text;",
		"V2_41_2__broken.sql":          "CREATE TABLE half_done (id int); SELECT 1/0;",
	})
	bluePort, greenPort := testenv.FreePort(t), testenv.FreePort(t)
	d.blueURL, d.greenURL = fmt.Sprintf("http://127.0.0.1:%d", bluePort), fmt.Sprintf("http://127.0.0.1:%d", greenPort)
	d.greenHome = filepath.Join(e.dir, "dhis2-green")
	d.greenLog = filepath.Join(d.runDir, "green.log")
	blueStart, blueStop := slotHooks(d.stub, e.home, d.oldWAR, bluePort, filepath.Join(d.runDir, "blue.pid"), filepath.Join(d.runDir, "blue.log"))
	greenStart, greenStop := slotHooks(d.stub, `"$DHIS2_HOME"`, `"$DHIS2_LIFE_WAR"`, greenPort, filepath.Join(d.runDir, "green.pid"), d.greenLog)
	t.Cleanup(func() {
		for _, c := range []string{blueStop, greenStop} {
			_ = exec.Command("sh", "-c", c).Run()
		}
		dropDB(t, e.pg, e.db+"_green")
	})
	if out, err := exec.Command("sh", "-c", blueStart).CombinedOutput(); err != nil {
		t.Fatalf("starting blue: %v %s", err, out)
	}
	d.waitVersion(d.blueURL, "2.40.3")
	mnt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "DHIS2 is being upgraded", http.StatusServiceUnavailable)
	}))
	t.Cleanup(mnt.Close)
	d.maintenance = strings.TrimPrefix(mnt.URL, "http://")
	d.nginx = testenv.StartNginx(t, fmt.Sprintf("127.0.0.1:%d", bluePort))
	d.waitVersion(d.nginx.URL, "2.40.3")
	e.instanceExtra = []string{"", "[instances.hmis.app]",
		fmt.Sprintf("stop = %q", blueStop), fmt.Sprintf("start = %q", blueStart), fmt.Sprintf("url = %q", d.blueURL),
		`health_timeout = "20s"`, `proxy = "nginx"`, fmt.Sprintf("upstream_file = %q", d.nginx.UpstreamFile),
		fmt.Sprintf("nginx = %q", d.nginx.Command), fmt.Sprintf("proxy_url = %q", d.nginx.URL),
		fmt.Sprintf("maintenance_upstream = %q", d.maintenance),
		"", "[instances.hmis.app.green]",
		fmt.Sprintf("stop = %q", greenStop), fmt.Sprintf("start = %q", greenStart), fmt.Sprintf("url = %q", d.greenURL),
		fmt.Sprintf("dhis2_home = %q", d.greenHome), fmt.Sprintf("log_file = %q", d.greenLog), `health_timeout = "20s"`,
	}
	e.repositoryExtra = []string{"", "[retention]", "keep_last = 1"}
	e.writeConfig()
	e.init()
	return d
}

// info returns /api/system/info's version at base ("" when it does not answer).
func info(base string) string {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/api/system/info")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var v struct{ Version string }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return ""
	}
	return v.Version
}

func (d *dhis2Env) waitVersion(base, want string) {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for info(base) != want {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s does not report DHIS2 %s (reports %q)", base, want, info(base))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *dhis2Env) lastDHIS2() upgrade.DHIS2Record {
	d.t.Helper()
	r := d.mustRun("upgrades", "--json")
	var recs []upgrade.DHIS2Record
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil {
		d.t.Fatalf("upgrades --json: %v\n%s", err, r)
	}
	if len(recs) == 0 {
		d.t.Fatal("upgrades --json lists no upgrade")
	}
	rec := recs[len(recs)-1]
	if rec.Kind != "dhis2" {
		d.t.Fatalf("upgrade kind %q, want dhis2", rec.Kind)
	}
	return rec
}

func (d *dhis2Env) conn(db string) *pgx.Conn {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, d.pg.AdminDSNFor(db))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (d *dhis2Env) dbExists(name string) bool {
	d.t.Helper()
	var ok bool
	if err := d.conn("postgres").QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
		d.t.Fatal(err)
	}
	return ok
}

func (d *dhis2Env) flywayRows(db string) int {
	d.t.Helper()
	var n int
	if err := d.conn(db).QueryRow(context.Background(), `SELECT count(*) FROM flyway_schema_history`).Scan(&n); err != nil {
		d.t.Fatal(err)
	}
	return n
}

// assertBlueServes checks blue answers through the proxy, green is down and blue's
// database is as before.
func (d *dhis2Env) assertBlueServes(what string, blueFlyway int) {
	d.t.Helper()
	d.waitVersion(d.nginx.URL, "2.40.3")
	if info(d.greenURL) != "" {
		d.t.Fatalf("%s: green still answers", what)
	}
	if n := d.flywayRows(d.db); n != blueFlyway {
		d.t.Fatalf("%s: blue's flyway rows %d, want %d (blue must stay untouched)", what, n, blueFlyway)
	}
}

// TestUpgradeDHIS2 runs blue-green DHIS2 upgrades of the fixture behind a real nginx with the
// stand-in app: a downgrade refused, a WAR whose migration fails (green torn down, blue back),
// a good one (switch, new version through the proxy, downtime), a rollback after the switch
// reporting and exporting the rows entered on green, finalize after rollback and after done.
func TestUpgradeDHIS2(t *testing.T) {
	d := newDHIS2Env(t)
	blueFlyway := d.flywayRows(d.db)
	green := d.db + "_green"

	// Plan: changes nothing; a downgrade is refused.
	r := d.mustRun("upgrade", "dhis2", "plan", "--war", d.goodWAR)
	for _, want := range []string{"DHIS2 2.40", "-> 2.41.0", "ok   proxy", "ok   green_database", "proxy switch to green"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	old := makeWAR(t, filepath.Join(d.dir, "dhis-2.39.war"), "2.39.1", nil)
	r = d.run("upgrade", "dhis2", "run", "--war", old)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot be downgraded") {
		t.Fatalf("downgrade: want exit 1 naming it\n%s", r)
	}
	r = d.run("upgrade", "dhis2", "run", "--war", filepath.Join(d.dir, "missing.war"))
	if r.code == 0 || !strings.Contains(r.stderr, "missing.war") {
		t.Fatalf("missing WAR: want a failure naming it\n%s", r)
	}

	// A WAR whose second migration fails: green never answers; green is torn down, blue back.
	t0 := time.Now()
	r = d.run("upgrade", "dhis2", "run", "--war", d.badWAR)
	if r.code != 1 || !strings.Contains(r.stderr, "flyway migrations failed: 2.41.2") || !strings.Contains(r.stderr, "blue (DHIS2 2.40") {
		t.Fatalf("broken WAR: want exit 1 naming the failed migration\n%s", r)
	}
	rec := d.lastDHIS2()
	if rec.State != upgrade.StateRolledBack || !strings.Contains(rec.LogTail, "division by zero") {
		t.Fatalf("broken WAR: state %s, log tail %q", rec.State, rec.LogTail)
	}
	d.assertBlueServes("after the broken WAR", blueFlyway)
	if prev, err := os.ReadFile(d.nginx.UpstreamFile + ".dhis2life-prev"); err != nil || !strings.Contains(string(prev), d.maintenance) {
		t.Fatalf("broken WAR: the proxy did not serve the maintenance page before blue came back: %q, %v", prev, err)
	}
	if d.dbExists(green) {
		t.Fatal("broken WAR: green's database was not dropped")
	}
	t.Logf("broken WAR rolled back by itself in %s", time.Since(t0).Round(time.Millisecond))

	// The good WAR.
	t0 = time.Now()
	r = d.mustRun("upgrade", "dhis2", "run", "--war", d.goodWAR)
	runTime := time.Since(t0)
	rec = d.lastDHIS2()
	if rec.State != upgrade.StateDone || rec.From == "" || rec.To != "2.41.0" || rec.Point == "" || rec.FinalSet == "" {
		t.Fatalf("run: record %+v", rec)
	}
	if rec.FlywayAfter != rec.FlywayBefore+2 {
		t.Fatalf("flyway rows on green %d -> %d, want 2 migrations applied", rec.FlywayBefore, rec.FlywayAfter)
	}
	d.waitVersion(d.nginx.URL, "2.41.0")
	if info(d.blueURL) != "" {
		t.Fatal("blue still answers after the switch (it must stay in maintenance)")
	}
	if n := d.flywayRows(d.db); n != blueFlyway {
		t.Fatalf("blue's database changed: flyway rows %d, want %d", n, blueFlyway)
	}
	// The proxy went blue -> maintenance page -> green; the file before green's is kept.
	if prev, err := os.ReadFile(d.nginx.UpstreamFile + ".dhis2life-prev"); err != nil || !strings.Contains(string(prev), "slot maintenance\nserver "+d.maintenance+";") {
		t.Fatalf("previous upstream file: %q, %v; want the maintenance page's", prev, err)
	}
	t.Logf("upgrade run %s; downtime (maintenance on -> 2.41.0 through nginx) %s; steps:", runTime.Round(time.Millisecond), rec.Downtime().Round(time.Millisecond))
	for _, s := range rec.Steps {
		t.Logf("  %-16s %s", s.Name, s.Finished.Sub(*s.Started).Round(time.Millisecond))
	}
	if r := d.run("upgrade", "dhis2", "run", "--war", d.goodWAR); r.code == 0 || !strings.Contains(r.stderr, "not finalized") {
		t.Fatalf("second run while one is done: want a refusal\n%s", r)
	}
	if r := d.run("point", "release", rec.Point); r.code == 0 || !strings.Contains(r.stderr, rec.ID) {
		t.Fatalf("releasing the point of a done, unfinalized DHIS2 upgrade: want a refusal naming it\n%s", r)
	}

	// Users work on green: 2 new notes, 3 updated data values.
	gc := d.conn(green)
	ctx := context.Background()
	time.Sleep(20 * time.Millisecond)
	if _, err := gc.Exec(ctx, `INSERT INTO stubnote (note) VALUES ('entered on green 1'), ('entered on green 2')`); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.Exec(ctx, `UPDATE datavalue SET value = 'green', lastupdated = localtimestamp WHERE ctid IN (SELECT ctid FROM datavalue WHERE created < localtimestamp - interval '1 minute' LIMIT 3)`); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(d.dir, "since-switch")
	r = d.mustRun("upgrade", "rollback", "--export-since-switch", export)
	t.Logf("rollback report:\n%s", r.stdout)
	rec = d.lastDHIS2()
	if rec.State != upgrade.StateRolledBack {
		t.Fatalf("rollback: state %s (%s)", rec.State, rec.Error)
	}
	got := map[string]upgrade.TableChange{}
	for _, c := range rec.SinceSwitch {
		got[c.Table] = c
	}
	if c := got["public.stubnote"]; c.Created != 2 || c.Updated != 0 {
		t.Fatalf("stubnote since the switch: %+v (all: %+v)", c, rec.SinceSwitch)
	}
	if c := got["public.datavalue"]; c.Created != 0 || c.Updated != 3 {
		t.Fatalf("datavalue since the switch: %+v (all: %+v)", c, rec.SinceSwitch)
	}
	if len(got) != 2 {
		t.Fatalf("since the switch: %+v, want only stubnote and datavalue", rec.SinceSwitch)
	}
	csv, err := os.ReadFile(filepath.Join(export, "public.stubnote.csv"))
	if err != nil || strings.Count(string(csv), "\n") != 3 || !strings.Contains(string(csv), "entered on green 2") || !strings.HasPrefix(string(csv), "id,note,created,lastupdated") {
		t.Fatalf("stubnote CSV: %q, %v", csv, err)
	}
	if fi, err := os.Stat(filepath.Join(export, "public.datavalue.csv")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("datavalue CSV: %v %v", fi, err)
	}
	d.assertBlueServes("after the rollback", blueFlyway)
	if !d.dbExists(green) {
		t.Fatal("rollback dropped green's database and with it the rows entered there")
	}
	d.mustRun("upgrade", "finalize")
	if d.dbExists(green) {
		t.Fatal("finalize after a rollback keeps green's database")
	}

	// Again, to done and finalize: refused while the config names blue's database.
	d.mustRun("upgrade", "dhis2", "run", "--war", d.goodWAR)
	d.waitVersion(d.nginx.URL, "2.41.0")
	r = d.run("upgrade", "finalize")
	if r.code != 2 || !strings.Contains(r.stderr, "still names blue's database") {
		t.Fatalf("finalize with the config on blue: want exit 2\n%s", r)
	}
	blue := d.db
	d.db = green
	d.writeConfig()
	d.mustRun("upgrade", "finalize")
	if d.dbExists(blue) || !d.dbExists(green) {
		t.Fatalf("finalize: blue %s exists %v, green exists %v", blue, d.dbExists(blue), d.dbExists(green))
	}
	d.db = blue // the fixture's cleanup drops it by this name
	if rec := d.lastDHIS2(); rec.State != upgrade.StateFinalized {
		t.Fatalf("finalize: state %s", rec.State)
	}
	d.waitVersion(d.nginx.URL, "2.41.0")
}

// TestUpgradeDHIS2KillMatrix SIGKILLs dhis2-life at a boundary of every step of a DHIS2
// upgrade (when a step is recorded as started, or after its work but before it is recorded
// done), then resumes to done or rolls back, and checks who serves through nginx.
func TestUpgradeDHIS2KillMatrix(t *testing.T) {
	d := newDHIS2Env(t)
	blueFlyway := d.flywayRows(d.db)
	green := d.db + "_green"
	cases := []struct{ at, then string }{
		{upgrade.DStepPoint, "rollback"},
		{upgrade.DStepMaintenance + ":done", "rollback"},
		{upgrade.DStepFinalSet + ":done", "resume"},
		{upgrade.DStepGreenDB + ":done", "rollback"},
		{upgrade.DStepGreenStart + ":done", "resume"},
		{upgrade.DStepGreenHealth, "rollback"},
		{upgrade.DStepSwitch + ":done", "rollback"},
		{upgrade.DStepProxyCheck, "resume"},
		// The other boundary of each step: killed after the step's work, before it is
		// recorded done (or, for the point, before the work).
		{upgrade.DStepPoint + ":done", "resume"},
		{upgrade.DStepMaintenance, "rollback"},
		{upgrade.DStepFinalSet, "resume"},
		{upgrade.DStepGreenDB, "resume"},
		{upgrade.DStepGreenStart, "rollback"},
		{upgrade.DStepGreenHealth + ":done", "resume"},
		{upgrade.DStepSwitch, "resume"},
		{upgrade.DStepProxyCheck + ":done", "resume"},
	}
	var matrix []string
	for _, c := range cases {
		t0 := time.Now()
		r := runCLIEnv(t, killEnv(c.at), "--config", d.cfgPath, "upgrade", "dhis2", "run", "--war", d.goodWAR)
		step, _, _ := strings.Cut(c.at, ":")
		if r.code != -1 {
			t.Fatalf("want the process killed at %s, got\n%s", c.at, r)
		}
		rec := d.lastDHIS2()
		if rec.State != upgrade.StateRunning || rec.Step != step {
			t.Fatalf("after a kill at %s: state %s, step %s", c.at, rec.State, rec.Step)
		}
		// A second run is refused while this one is open.
		if r := d.run("upgrade", "dhis2", "run", "--war", d.goodWAR); r.code == 0 || !strings.Contains(r.stderr, "still running") {
			t.Fatalf("run while one is open at %s: want a refusal\n%s", c.at, r)
		}
		d.mustRun("upgrade", c.then)
		rec = d.lastDHIS2()
		switch c.then {
		case "resume":
			if rec.State != upgrade.StateDone {
				t.Fatalf("resume after a kill at %s: state %s (%s)", c.at, rec.State, rec.Error)
			}
			d.waitVersion(d.nginx.URL, "2.41.0")
			// Back to blue for the next case.
			d.mustRun("upgrade", "rollback")
		case "rollback":
			if rec.State != upgrade.StateRolledBack {
				t.Fatalf("rollback after a kill at %s: state %s (%s)", c.at, rec.State, rec.Error)
			}
		}
		d.assertBlueServes("after a kill at "+c.at+" and "+c.then, blueFlyway)
		switched := c.at == upgrade.DStepSwitch+":done" || c.then == "resume"
		if d.dbExists(green) != switched {
			t.Fatalf("after a kill at %s and %s: green database exists %v, want %v (kept only when users may have written to it)", c.at, c.then, d.dbExists(green), switched)
		}
		d.mustRun("upgrade", "finalize")
		if d.dbExists(green) {
			t.Fatalf("finalize after the rollback at %s kept green's database", c.at)
		}
		outcome := "rolled back: blue serves 2.40.3 through nginx"
		if c.then == "resume" {
			outcome = "done: 2.41.0 through nginx (then rolled back for the next case)"
		}
		matrix = append(matrix, fmt.Sprintf("%-22s %-8s -> %s (%s)", c.at, c.then, outcome, time.Since(t0).Round(100*time.Millisecond)))
	}
	t.Logf("kill matrix:\n%s", strings.Join(matrix, "\n"))
}

// runCLIEnv runs the CLI with extra environment variables.
func runCLIEnv(t *testing.T, extra []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testBinary, args...)
	cmd.Env = append(cliEnv(), extra...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), dur: time.Since(t0)}
	if ctx.Err() != nil {
		t.Fatalf("dhis2-life %s did not finish\n%s", strings.Join(args, " "), r)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUpgradeDHIS2Rehearse rehearses a good and a broken WAR on the staging clone: the
// report names the migrations applied (rows before/after) and timings, or the failed
// migration with the app log's tail and exit 1; production and the proxy are untouched.
func TestUpgradeDHIS2Rehearse(t *testing.T) {
	d := newDHIS2Env(t)
	blueFlyway := d.flywayRows(d.db)
	staging := d.db + "_staging"
	port := testenv.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	home := filepath.Join(d.dir, "dhis2-staging")
	log := filepath.Join(d.runDir, "staging.log")
	start, stop := slotHooks(d.stub, `"$DHIS2_HOME"`, `"$DHIS2_LIFE_WAR"`, port, filepath.Join(d.runDir, "staging.pid"), log)
	t.Cleanup(func() {
		_ = exec.Command("sh", "-c", stop).Run()
		dropDB(t, d.pg, staging)
	})
	d.instanceExtra = append(d.instanceExtra, "", "[targets.staging]", `instance = "hmis"`,
		fmt.Sprintf("database = %q", d.dsnFor(staging)), fmt.Sprintf("database_password_file = %q", d.dbPass),
		fmt.Sprintf("dhis2_home = %q", home), `profile = "staging"`,
		"[targets.staging.app]", fmt.Sprintf("start = %q", start), fmt.Sprintf("stop = %q", stop),
		fmt.Sprintf("url = %q", url), fmt.Sprintf("log_file = %q", log), `health_timeout = "20s"`)
	d.writeConfig()

	r := d.mustRun("upgrade", "dhis2", "rehearse", "--war", d.goodWAR, "--json")
	var rep upgrade.Rehearsal
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("rehearse --json: %v\n%s", err, r)
	}
	if !rep.OK || rep.Set == "" || rep.From != "2.40.24" || rep.To != "2.41.0" || len(rep.Applied) != 2 || rep.FlywayAfter != rep.FlywayBefore+2 || len(rep.Failed) != 0 {
		t.Fatalf("rehearsal of the good WAR: %+v", rep)
	}
	if rep.Applied[0].Version != "2.41.1" || rep.Applied[1].Version != "2.41.2" {
		t.Fatalf("applied: %+v", rep.Applied)
	}
	d.waitVersion(url, "2.41.0")
	t.Logf("rehearsal (good WAR): clone %.1fs, migrations %.3fs, start-up %.1fs, flyway rows %d -> %d, total %s",
		rep.CloneSeconds, rep.MigrationSecs, rep.StartupSecs, rep.FlywayBefore, rep.FlywayAfter, r.dur.Round(time.Millisecond))
	// Production is untouched: blue's flyway, blue behind the proxy, no upgrade recorded.
	d.assertBlueServes("after a rehearsal", blueFlyway)
	if out := d.mustRun("upgrades").stdout; !strings.Contains(out, "no upgrades") {
		t.Fatalf("a rehearsal recorded an upgrade:\n%s", out)
	}

	r = d.run("upgrade", "dhis2", "rehearse", "--war", d.badWAR)
	if r.code != 1 {
		t.Fatalf("rehearsal of the broken WAR: want exit 1\n%s", r)
	}
	for _, want := range []string{"FAILED", "1 migrations applied, 1 failed", "FAILED 2.41.2", "division by zero", "app log (tail)"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Fatalf("rehearsal of the broken WAR lacks %q:\n%s", want, r)
		}
	}
	if info(url) != "" {
		t.Fatal("the failed rehearsal left the staging slot answering")
	}
	d.assertBlueServes("after a failed rehearsal", blueFlyway)
}
