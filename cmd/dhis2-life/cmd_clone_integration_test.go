package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// cloneTarget is one [targets.NAME] table written by the clone tests.
type tgt struct {
	name, db, profile, home, extra string
}

// setTargets rewrites the config with the instance and the given targets.
func (e *env) setTargets(ts ...tgt) {
	e.t.Helper()
	e.writeConfig()
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "\n[targets.%s]\ninstance = %q\ndatabase = %q\ndatabase_password_file = %q\nprofile = %q\n",
			t.name, testInstance, e.dsnFor(t.db), e.dbPass, t.profile)
		if t.home != "" {
			fmt.Fprintf(&b, "dhis2_home = %q\n", t.home)
		}
		b.WriteString(t.extra + "\n")
	}
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) cloneJSON(args ...string) (clone.Record, result) {
	e.t.Helper()
	r := e.mustRun(append([]string{"clone", "--json"}, args...)...)
	var rec clone.Record
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		e.t.Fatalf("clone --json: %v\n%s", err, r)
	}
	return rec, r
}

func q1(t *testing.T, conn *pgx.Conn, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// assertScrubbed queries a clone: every rule of the profile took effect.
func assertScrubbed(t *testing.T, conn *pgx.Conn, profile, setID string) {
	t.Helper()
	ctx := context.Background()
	checks := map[string]string{
		"enabled outward jobs": `SELECT count(*) FROM jobconfiguration WHERE enabled AND (jobtype IN ('DATA_SYNC','META_DATA_SYNC','MONITORING','SEND_SCHEDULED_MESSAGE','AGGREGATE_DATA_EXCHANGE','PROGRAM_NOTIFICATIONS','DATA_SET_NOTIFICATION','SMS_SEND','TRACKED_ENTITY_DATA_SYNC') OR jobtype LIKE '%EXPIRY_ALERT')`,
		"email host":           `SELECT count(*) FROM systemsetting WHERE name LIKE 'keyEmail%' OR name = 'keySystemNotificationsEmail'`,
		"remote instance":      `SELECT count(*) FROM systemsetting WHERE name LIKE 'keyRemoteInstance%'`,
		"sms (systemsetting)":  `SELECT count(*) FROM systemsetting WHERE name = 'keySmsSetting' OR value LIKE '%sms-gateway-secret%'`,
		"sms (keyjsonvalue)":   `SELECT count(*) FROM keyjsonvalue WHERE namespace = 'sms-config' OR jbvalue::text LIKE '%sms-gateway-secret%'`,
		"exchange targets":     `SELECT count(*) FROM aggregatedataexchange WHERE target ? 'api' OR target::text LIKE '%exchange-secret%'`,
		"routes":               `SELECT count(*) FROM route WHERE NOT disabled OR url NOT LIKE '%.invalid/%' OR auth::text LIKE '%secret%' OR headers <> '{}'`,
		"api tokens":           `SELECT count(*) FROM api_token`,
	}
	if profile == "training" {
		checks["enabled jobs"] = `SELECT count(*) FROM jobconfiguration WHERE enabled`
		checks["personal data"] = `SELECT count(*) FROM userinfo WHERE username <> 'admin' AND (email IS NOT NULL OR phonenumber IS NOT NULL OR whatsapp IS NOT NULL OR telegram IS NOT NULL OR secret IS NOT NULL OR openid IS NOT NULL OR ldapid IS NOT NULL OR restoretoken IS NOT NULL OR idtoken IS NOT NULL OR firstname NOT LIKE 'Anonymous' OR surname LIKE 'Surname%' OR username LIKE 'user%')`
		checks["previous passwords"] = `SELECT count(*) FROM previouspasswords`
	}
	for what, q := range checks {
		if n := q1(t, conn, q); n != 0 {
			t.Errorf("clone still has %s: %d rows", what, n)
		}
	}
	var title, banner string
	if err := conn.QueryRow(ctx, `SELECT (SELECT value FROM systemsetting WHERE name = 'applicationTitle'), (SELECT value FROM systemsetting WHERE name = 'keyApplicationNotification')`).Scan(&title, &banner); err != nil {
		t.Fatal(err)
	}
	label := strings.ToUpper(profile)
	if !strings.Contains(title, label) || !strings.Contains(title, setID) || !strings.Contains(banner, label) || !strings.Contains(banner, setID) {
		t.Errorf("banner/title do not name the %s copy of %s: %q / %q", profile, setID, title, banner)
	}
	if profile == "staging" {
		if n := q1(t, conn, `SELECT count(*) FROM jobconfiguration WHERE enabled`); n == 0 {
			t.Error("staging disabled the inward jobs too")
		}
		if n := q1(t, conn, `SELECT count(*) FROM userinfo WHERE email IS NOT NULL`); n == 0 {
			t.Error("staging anonymised users")
		}
	}
}

func checkCloneConf(t *testing.T, home, prodHome, db, baseURL string) {
	t.Helper()
	c, err := dhisconf.Read(filepath.Join(home, "dhis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	prod, err := dhisconf.Read(filepath.Join(prodHome, "dhis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if u := c.Get("connection.url"); !strings.HasSuffix(u, "/"+db) {
		t.Errorf("connection.url %s does not name %s", u, db)
	}
	if c.Get("server.base.url") != baseURL {
		t.Errorf("server.base.url %q", c.Get("server.base.url"))
	}
	if c.Get("encryption.password") == "" || c.Get("encryption.password") != prod.Get("encryption.password") {
		t.Error("encryption.password not copied unchanged")
	}
	if c.Get("system.monitoring.url") != "" {
		t.Error("system.monitoring.url kept")
	}
	if st, _ := os.Stat(filepath.Join(home, "dhis.conf")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("dhis.conf mode %v", st.Mode())
	}
	if _, err := os.Stat(filepath.Join(home, "files")); err != nil {
		t.Errorf("files/ not restored into the clone home: %v", err)
	}
}

// TestClone: staging and training clones of 2.40 and 2.42 fixtures: every scrub rule applied
// and verified, production unchanged, dhis.conf rewritten, hooks run, clones listed.
func TestClone(t *testing.T) {
	for _, gen := range []string{fixture.Gen240, fixture.Gen242} {
		t.Run(strings.ReplaceAll(gen, ".", ""), func(t *testing.T) {
			e := newEnv(t, gen)
			e.init()
			m := e.snapshot()
			before := readState(t, e.pg, e.db)
			stg, trn := "stg_"+randName(), "trn_"+randName()
			t.Cleanup(func() { dropDB(t, e.pg, stg); dropDB(t, e.pg, trn) })
			keep := filepath.Join(e.dir, "keep.pass")
			writeFile(t, keep, "Training-2026!\n", 0o600)
			hookLog := filepath.Join(e.dir, "hooks.log")
			stgHome, trnHome := filepath.Join(e.dir, "staging-home"), filepath.Join(e.dir, "training-home")
			e.setTargets(
				tgt{name: "staging", db: stg, profile: "staging", home: stgHome, extra: `ttl = "14d"` + "\n" + `base_url = "https://staging.example.org"`},
				tgt{name: "training", db: trn, profile: "training", home: trnHome, extra: fmt.Sprintf(
					"keep_accounts = [\"admin\"]\nkeep_password_file = %q\nbefore_hook = [\"sh\", \"-c\", \"echo before $DHIS2_LIFE_TARGET >> %s\"]\nafter_hook = [\"sh\", \"-c\", \"echo after $DHIS2_LIFE_SET >> %s\"]\nhook_timeout = \"30s\"",
					keep, hookLog, hookLog)},
			)

			rec, r := e.cloneJSON("--to", "staging")
			t.Logf("staging clone in %s (restore %.2fs, scrub %.2fs): %d changes, %d checks", r.dur, rec.RestoreSeconds, rec.ScrubSeconds, len(rec.Changes), len(rec.Checks))
			if rec.Set != m.ID || rec.Bytes == 0 || rec.Generation != gen {
				t.Errorf("record %+v", rec)
			}
			rows := map[string]int64{}
			for _, c := range rec.Changes {
				rows[c.Rule] = c.Rows
			}
			for rule, want := range map[string]int64{"jobs.outward": 8, "settings.email": 7, "settings.remote_instance": 3, "api_token": 3, "route": 2, "aggregatedataexchange.targets": 1, "banner": 2} {
				if rows[rule] != want {
					t.Errorf("change %s = %d, want %d (%v)", rule, rows[rule], want, rows)
				}
			}
			conn := connectAdmin(t, e.pg, stg)
			assertScrubbed(t, conn, "staging", m.ID)
			conn.Close(context.Background())
			checkCloneConf(t, stgHome, e.home, stg, "https://staging.example.org")

			rec, r = e.cloneJSON("--to", "training")
			t.Logf("training clone in %s: %v", r.dur, rec.Changes)
			conn = connectAdmin(t, e.pg, trn)
			assertScrubbed(t, conn, "training", m.ID)
			var hash string
			if err := conn.QueryRow(context.Background(), `SELECT password FROM userinfo WHERE username = 'admin' AND NOT coalesce(disabled, false)`).Scan(&hash); err != nil {
				t.Fatal(err)
			}
			if bcrypt.CompareHashAndPassword([]byte(hash), []byte("Training-2026!")) != nil {
				t.Error("kept account admin does not have the keep_password_file password")
			}
			conn.Close(context.Background())
			if b, _ := os.ReadFile(hookLog); string(b) != "before training\nafter "+m.ID+"\n" {
				t.Errorf("hooks log %q", b)
			}

			after := readState(t, e.pg, e.db)
			for k, v := range before.tables {
				if after.tables[k] != v {
					t.Errorf("production table %s changed", k)
				}
			}
			if c := treeSums(t, e.home); c["dhis.conf"] == "" || strings.Contains(c["dhis.conf"], "staging") {
				t.Error("production dhis.conf changed")
			}

			var list []map[string]any
			if err := json.Unmarshal([]byte(e.mustRun("clones", "--json").stdout), &list); err != nil || len(list) != 2 {
				t.Fatalf("clones --json: %v %v", err, list)
			}
			if list[0]["target"] != "staging" || list[0]["set"] != m.ID || list[0]["expires_at"] == nil || list[0]["bytes"].(float64) <= 0 {
				t.Errorf("clones --json row %v", list[0])
			}
			t.Logf("clones:\n%s", e.mustRun("clones").stdout)
		})
	}
}

// TestCloneFailureKeepsPrevious: a scrub verification failure (exit 3), a clone killed
// mid-restore and a clone refused for connected sessions all leave the previous clone usable.
func TestCloneFailureKeepsPrevious(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	stg := "stg_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, stg); dropDB(t, e.pg, stg+clone.NewSuffix) })
	home := filepath.Join(e.dir, "staging-home")
	ok := tgt{name: "staging", db: stg, profile: "staging", home: home}
	e.setTargets(ok)
	e.mustRun("clone", "--to", "staging")
	e.pg.AdminExec(t, stg, "CREATE TABLE sentinel (v text); INSERT INTO sentinel VALUES ('previous clone')")
	intact := func(when string, leftoverGone bool) {
		t.Helper()
		conn := connectAdmin(t, e.pg, stg)
		defer conn.Close(context.Background())
		if n := q1(t, conn, `SELECT count(*) FROM sentinel`); n != 1 {
			t.Errorf("%s: previous clone not intact", when)
		}
		assertScrubbed(t, conn, "staging", m.ID)
		if leftoverGone && dbExists(t, e.pg, stg+clone.NewSuffix) {
			t.Errorf("%s: working copy %s left behind", when, stg+clone.NewSuffix)
		}
		if _, err := os.Stat(filepath.Join(home, "dhis.conf")); err != nil {
			t.Errorf("%s: clone home damaged: %v", when, err)
		}
	}

	// 1. Verification failure injected by custom SQL that re-enables an outward job.
	bad := ok
	bad.extra = `scrub_sql = ["UPDATE jobconfiguration SET enabled = true WHERE jobtype = 'DATA_SYNC'"]`
	e.setTargets(bad)
	r := e.run("clone", "--to", "staging")
	oneLineError(t, r, 3, "verification", "jobs.outward", "untouched")
	intact("after verification failure", true)

	// 2. Killed mid-restore.
	e.setTargets(ok)
	cmd := exec.Command(testBinary, "--config", e.cfgPath, "clone", "--to", "staging")
	cmd.Env = cliEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if dbExists(t, e.pg, stg+clone.NewSuffix) {
			time.Sleep(100 * time.Millisecond)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("the clone finished before the working copy was seen")
	}
	conn := connectAdmin(t, e.pg, stg)
	if n := q1(t, conn, `SELECT count(*) FROM sentinel`); n != 1 {
		t.Error("kill -9 mid-restore damaged the previous clone")
	}
	conn.Close(context.Background())

	// 3. Sessions on the clone: refused with their names, then --terminate.
	cfg, _ := pgx.ParseConfig(e.pg.AdminDSNFor(stg))
	cfg.RuntimeParams["application_name"] = "tomcat-staging"
	sess, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(context.Background())
	r = e.run("clone", "--to", "staging")
	oneLineError(t, r, 1, "tomcat-staging", "--terminate")
	// Refused before anything changed: the killed run's leftover is still there.
	intact("after a refusal for sessions", false)
	e.mustRun("clone", "--to", "staging", "--terminate")
	if dbExists(t, e.pg, stg+clone.NewSuffix) {
		t.Error("the leftover of the killed run was not dropped")
	}
	conn = connectAdmin(t, e.pg, stg)
	defer conn.Close(context.Background())
	if n := q1(t, conn, `SELECT count(*) FROM pg_class WHERE relname = 'sentinel'`); n != 0 {
		t.Error("the new clone was not swapped in")
	}
	assertScrubbed(t, conn, "staging", m.ID)
}

// TestCloneGuards: production under another spelling, unknown target, unknown profile and an
// unrecognised schema generation are refused with nothing changed.
func TestCloneGuards(t *testing.T) {
	e := newEnv(t, fixture.Gen240)
	e.init()
	e.snapshot()
	before := readState(t, e.pg, e.db)
	e.writeConfig()
	f, _ := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "\n[targets.sneaky]\ninstance = %q\ndatabase = \"postgres://%s@localhost:%d/%s?sslmode=disable\"\nprofile = \"staging\"\n",
		testInstance, e.pg.AppUser, e.pg.Port, e.db)
	fmt.Fprintf(f, "\n[targets.kv]\ninstance = %q\ndatabase = \"host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable\"\nprofile = \"training\"\n",
		testInstance, e.pg.Port, e.db, e.pg.AppUser)
	f.Close()
	for _, tg := range []string{"sneaky", "kv"} {
		r := e.run("clone", "--to", tg)
		oneLineError(t, r, 2, "production", e.db)
		r = e.run("clone", "--to", tg, "--dry-run")
		oneLineError(t, r, 2, "production")
	}
	oneLineError(t, e.run("clone", "--to", "nosuch"), 2, "unknown clone target", "nosuch")
	oneLineError(t, e.run("clone"), 2, "--to")

	stg := "stg_" + randName()
	e.setTargets(tgt{name: "staging", db: stg, profile: "production-like"})
	oneLineError(t, e.run("clone", "--to", "staging"), 2, "profile")

	// A set of a DHIS2 generation the profiles do not know.
	e.setTargets(tgt{name: "staging", db: stg, profile: "staging"})
	e.pg.AdminExec(t, e.db, `INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
		SELECT max(installed_rank) + 1, '2.47.1', 'future', 'SQL', 'V2_47_1__future.sql', 0, 'dhis', 1, true FROM flyway_schema_history`)
	e.snapshot()
	before = readState(t, e.pg, e.db)
	oneLineError(t, e.run("clone", "--to", "staging"), 1, "generation", "2.47")
	if dbExists(t, e.pg, stg) || dbExists(t, e.pg, stg+clone.NewSuffix) {
		t.Error("a refused clone created databases")
	}
	after := readState(t, e.pg, e.db)
	for k, v := range before.tables {
		if after.tables[k] != v {
			t.Errorf("production table %s changed", k)
		}
	}
	out := e.mustRun("clone", "--help").stdout
	if !strings.Contains(out, "EXAMPLES") {
		t.Error("clone --help has no EXAMPLES")
	}
}

// TestCloneTemplateAndLifecycle: first clone vs repeat clone from a template, destroy, expire.
func TestCloneTemplateAndLifecycle(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	m := e.snapshot()
	plain, tpl := "pl_"+randName(), "tp_"+randName()
	t.Cleanup(func() {
		dropDB(t, e.pg, plain)
		dropDB(t, e.pg, tpl)
		dropDB(t, e.pg, clone.TemplateName("fast", m.ID))
	})
	home := filepath.Join(e.dir, "fast-home")
	e.setTargets(
		tgt{name: "plain", db: plain, profile: "training"},
		tgt{name: "fast", db: tpl, profile: "training", home: home, extra: `template = true` + "\n" + `ttl = "2s"`},
	)
	recPlain, rp := e.cloneJSON("--to", "plain")
	rec1, r1 := e.cloneJSON("--to", "fast")
	rec2, r2 := e.cloneJSON("--to", "fast")
	t.Logf("clone without template: %s (restore %.2fs, scrub %.2fs)", rp.dur, recPlain.RestoreSeconds, recPlain.ScrubSeconds)
	t.Logf("first clone, building template: %s (restore %.2fs, scrub %.2fs, copy %.2fs, total %.2fs)", r1.dur, rec1.RestoreSeconds, rec1.ScrubSeconds, rec1.CopySeconds, rec1.Seconds)
	t.Logf("repeat clone from template:     %s (copy %.2fs, re-scrub %.2fs, total %.2fs) = %.0f%% of the first",
		r2.dur, rec2.CopySeconds, rec2.ScrubSeconds, rec2.Seconds, 100*rec2.Seconds/rec1.Seconds)
	if rec1.FromTemplate || !rec2.FromTemplate || rec2.RestoreSeconds != 0 {
		t.Errorf("template use: first %v, repeat %v (restore %.2fs)", rec1.FromTemplate, rec2.FromTemplate, rec2.RestoreSeconds)
	}
	if len(rec2.Changes) == 0 {
		t.Error("repeat clone lost the template's change counts")
	}
	if !dbExists(t, e.pg, clone.TemplateName("fast", m.ID)) {
		t.Error("template database missing")
	}
	conn := connectAdmin(t, e.pg, tpl)
	assertScrubbed(t, conn, "training", m.ID)
	conn.Close(context.Background())

	r := e.run("clone", "destroy", "plain")
	oneLineError(t, r, 2, "--yes")
	if !dbExists(t, e.pg, plain) {
		t.Fatal("destroy without --yes dropped the clone")
	}
	e.mustRun("clone", "destroy", "plain", "--yes")
	if dbExists(t, e.pg, plain) {
		t.Error("destroy left the database")
	}
	time.Sleep(2500 * time.Millisecond)
	out := e.mustRun("clone", "expire").stdout
	if !strings.Contains(out, "destroyed clone fast") {
		t.Errorf("expire: %s", out)
	}
	if dbExists(t, e.pg, tpl) || dbExists(t, e.pg, clone.TemplateName("fast", m.ID)) {
		t.Error("expire left the clone or its template")
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("expire left the clone home: %v", err)
	}
	if out := e.mustRun("clones", "--json").stdout; strings.TrimSpace(out) != "[]" {
		t.Errorf("clones after destroy/expire: %s", out)
	}
	if !dbExists(t, e.pg, e.db) {
		t.Fatal("production database gone")
	}
}

// TestCloneFromLive: --from live takes a fresh snapshot set first and clones exactly that
// set, so the clone has rows written after the last scheduled snapshot.
func TestCloneFromLive(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	old := e.snapshot()
	target := "live_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	e.setTargets(tgt{name: "staging", db: target, profile: "staging"})
	if err := fixture.SimulateDay(t.Context(), e.pg.AdminDSNFor(e.db), 1, fixture.Options{Generation: fixture.Gen242, Home: e.home, Seed: 1}); err != nil {
		t.Fatalf("simulate day: %v", err)
	}
	rec, _ := e.cloneJSON("--to", "staging", "--from", "live")
	sets := e.snapshotsJSON()
	if len(sets) != 2 {
		t.Fatalf("--from live recorded %d sets, want the old one and a new one", len(sets))
	}
	fresh := sets[len(sets)-1]
	if rec.Set != fresh.ID || rec.Set == old.ID {
		t.Fatalf("clone is of set %s; the fresh set is %s (old %s)", rec.Set, fresh.ID, old.ID)
	}
	conn := connectAdmin(t, e.pg, target)
	defer conn.Close(context.Background())
	var want, got int64
	for _, tb := range fresh.Tables {
		if tb.Name == "datavalue" {
			want = tb.Rows
		}
	}
	got = q1(t, conn, "SELECT count(*) FROM datavalue")
	if want == 0 || got != want {
		t.Fatalf("clone has %d datavalue rows, the fresh set %d", got, want)
	}
	for _, tb := range old.Tables {
		if tb.Name == "datavalue" && tb.Rows >= want {
			t.Fatalf("the simulated day added no datavalue rows (%d then %d)", tb.Rows, want)
		}
	}
	assertScrubbed(t, conn, "staging", rec.Set)
}

// TestCloneDestroyOnlyRecordedClones: destroy refuses a target with no recorded clone, and
// one whose configured database is no longer the one that was cloned (it would drop a
// database dhis2-life never created).
func TestCloneDestroyOnlyRecordedClones(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.init()
	e.snapshot()
	cloned, other := "cl_"+randName(), e.pg.CreateDB(t, "precious")
	t.Cleanup(func() { dropDB(t, e.pg, cloned) })
	e.setTargets(tgt{name: "staging", db: other, profile: "staging"})
	r := e.run("clone", "destroy", "staging", "--yes")
	oneLineError(t, r, 1, "no clone of target staging is recorded")
	if !dbExists(t, e.pg, other) {
		t.Fatal("destroy dropped a database that was never cloned")
	}
	// The first clone into a database made by hand that holds data needs --force.
	e.pg.AdminExec(t, other, "CREATE TABLE handmade (id int)")
	r = e.run("clone", "--to", "staging")
	oneLineError(t, r, 1, other, "--force")
	oc := connectAdmin(t, e.pg, other)
	n := q1(t, oc, "SELECT count(*) FROM pg_class WHERE relname = 'handmade'")
	oc.Close(context.Background())
	if n != 1 {
		t.Fatal("clone without --force replaced a database that was not a clone")
	}
	e.setTargets(tgt{name: "staging", db: cloned, profile: "staging"})
	e.cloneJSON("--to", "staging")
	e.setTargets(tgt{name: "staging", db: other, profile: "staging"})
	r = e.run("clone", "destroy", "staging", "--yes")
	oneLineError(t, r, 1, "was cloned into", cloned)
	if !dbExists(t, e.pg, other) || !dbExists(t, e.pg, cloned) {
		t.Fatal("destroy dropped a database although the configuration changed since the clone")
	}
	e.setTargets(tgt{name: "staging", db: cloned, profile: "staging"})
	e.mustRun("clone", "destroy", "staging", "--yes")
	if dbExists(t, e.pg, cloned) {
		t.Fatal("destroy of the recorded clone left its database")
	}
}
