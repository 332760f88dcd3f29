package clone_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestParseGeneration(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{{"2.40.5", true}, {"2.42.17", true}, {"2.44.1", true}, {"2.38.1", true}, {"2.37.9", false}, {"2.45.1", false}, {"", false}, {"x", false}} {
		_, err := clone.ParseGeneration(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseGeneration(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestTemplateName(t *testing.T) {
	n := clone.TemplateName("staging", "20261127T020000Z-3fa1b2c3")
	if n != "dhis2life_tpl_staging_20261127t020000z_3fa1b2c3" {
		t.Errorf("got %s", n)
	}
	long := clone.TemplateName(strings.Repeat("x", 60), "20261127T020000Z-3fa1b2c3")
	if len(long) > 60 || !strings.HasPrefix(long, "dhis2life_tpl_") {
		t.Errorf("long name %s (%d)", long, len(long))
	}
}

func TestRewriteConf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dhis.conf")
	os.WriteFile(p, []byte(`connection.url = jdbc:postgresql://db:5432/dhis2
connection.username = dhis
connection.password = prodsecret
server.base.url = https://hmis.example.org
system.monitoring.url = http://mon:9090
encryption.password = keepme
filestore.provider = aws-s3
filestore.container = prod-bucket
filestore.identity = AKIA
redis.enabled = true
redis.host = redis
`), 0o644)
	target := pg.Conn{DSN: "postgres://clone@127.0.0.1:5433/dhis2_staging"}
	ch, err := clone.RewriteConf(p, target, "", "https://staging.example.org")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	s := string(b)
	for _, want := range []string{"connection.url = jdbc:postgresql://127.0.0.1:5433/dhis2_staging", "connection.username = clone",
		"server.base.url = https://staging.example.org", "encryption.password = keepme", "filestore.provider = filesystem",
		"# connection.password = prodsecret", "# redis.host", "# system.monitoring.url", "# filestore.identity"} {
		if !strings.Contains(s, want) {
			t.Errorf("dhis.conf lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\nfilestore.container = prod-bucket") {
		t.Errorf("bucket kept:\n%s", s)
	}
	if f := clone.Failed(clone.VerifyConf(p, target, "keepme")); len(f) > 0 {
		t.Errorf("VerifyConf: %+v", f)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o", st.Mode().Perm())
	}
	if len(ch) == 0 {
		t.Error("no changes reported")
	}
}

func TestRunHookTimeoutAndOutput(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if err := clone.RunHook(context.Background(), log, "before_hook", []string{"sh", "-c", "echo stopping tomcat; echo $DHIS2_LIFE_TARGET"}, time.Minute, []string{"DHIS2_LIFE_TARGET=staging"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "stopping tomcat") || !strings.Contains(buf.String(), "line=staging") {
		t.Errorf("output not logged: %s", buf.String())
	}
	t0 := time.Now()
	err := clone.RunHook(context.Background(), log, "after_hook", []string{"sh", "-c", "sleep 30 & sleep 30"}, 300*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(t0) > 10*time.Second {
		t.Errorf("timeout: %v after %s", err, time.Since(t0))
	}
	if err := clone.RunHook(context.Background(), log, "before_hook", []string{"false"}, time.Minute, nil); err == nil {
		t.Error("failing hook did not fail")
	}
}

// TestScrubProfiles applies and verifies both profiles on fixtures of every generation.
func TestScrubProfiles(t *testing.T) {
	p := testenv.StartPostgres(t)
	ctx := context.Background()
	pwFile := filepath.Join(t.TempDir(), "keep.pass")
	os.WriteFile(pwFile, []byte("Training-2026!\n"), 0o600)
	for _, gen := range []string{fixture.Gen240, fixture.Gen242, fixture.Gen244} {
		for _, profile := range []string{"staging", "training"} {
			t.Run(gen+"/"+profile, func(t *testing.T) {
				if gen == fixture.Gen244 && fixture.SharedSchemaDir() == "" {
					t.Fatal("the DHIS2 2.44 schema (testdata/dhis2-core-schema/dhis2-schema.sql) is missing from this checkout")
				}
				db, g := fixtureDB(t, p, "scrub_"+strings.ReplaceAll(gen, ".", "")+"_"+profile, fixture.Options{Generation: gen, Scale: 0.001, Seed: 1})
				tg := &config.Target{Name: "t", Profile: profile, KeepAccounts: []string{"admin"}, KeepPasswordFile: pwFile}
				sc, err := clone.NewScrubber(tg, "", g, "hmis", "20260101T000000Z-abcd", time.Now())
				if err != nil {
					t.Fatal(err)
				}
				conn := p.AdminConn(t, db)
				ch, err := sc.Apply(ctx, conn)
				if err != nil {
					t.Fatal(err)
				}
				rows := map[string]int64{}
				for _, c := range ch {
					rows[c.Rule] = c.Rows
				}
				t.Logf("changes: %v", rows)
				checks, err := sc.Verify(ctx, conn)
				if err != nil {
					t.Fatal(err)
				}
				if f := clone.Failed(checks); len(f) > 0 {
					t.Fatalf("failed checks: %+v", f)
				}
				expect := map[string]int64{"settings.email": 7, "settings.remote_instance": 3, "api_token": 3, "route": 2, "aggregatedataexchange.targets": 1, "banner": 2}
				if profile == "staging" {
					expect["jobs.outward"] = 8
				} else {
					expect["jobs.all"] = 10
					expect["users.keep_accounts"] = 1
				}
				if gen == fixture.Gen240 {
					expect["sms.systemsetting"] = 1
				} else {
					expect["sms.keyjsonvalue"] = 1
				}
				for k, v := range expect {
					if rows[k] != v {
						t.Errorf("rule %s changed %d rows, want %d", k, rows[k], v)
					}
				}
				checkScrubbed(t, conn, profile, gen)
			})
		}
	}
}

func checkScrubbed(t *testing.T, conn *pgx.Conn, profile, gen string) {
	t.Helper()
	ctx := context.Background()
	one := func(q string, args ...any) int64 {
		var n int64
		if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := one(`SELECT count(*) FROM jobconfiguration WHERE enabled AND jobtype IN ('DATA_SYNC','META_DATA_SYNC','MONITORING','SEND_SCHEDULED_MESSAGE','AGGREGATE_DATA_EXCHANGE','PROGRAM_NOTIFICATIONS','DATA_SET_NOTIFICATION','CREDENTIALS_EXPIRY_ALERT')`); n != 0 {
		t.Errorf("%d outward jobs enabled", n)
	}
	enabled := one(`SELECT count(*) FROM jobconfiguration WHERE enabled`)
	if profile == "training" && enabled != 0 || profile == "staging" && enabled != 2 {
		t.Errorf("%s: %d jobs enabled", profile, enabled)
	}
	if n := one(`SELECT count(*) FROM systemsetting WHERE name LIKE 'keyEmail%' OR name LIKE 'keyRemoteInstance%' OR name = 'keySmsSetting'`); n != 0 {
		t.Errorf("%d email/remote/sms settings remain", n)
	}
	if n := one(`SELECT count(*) FROM keyjsonvalue WHERE namespace = 'sms-config'`); n != 0 {
		t.Errorf("sms-config remains")
	}
	if n := one(`SELECT count(*) FROM keyjsonvalue`); n != 3 {
		t.Errorf("other keyjsonvalue rows lost: %d", n)
	}
	if n := one(`SELECT count(*) FROM aggregatedataexchange WHERE target::text LIKE '%regional-hub%' OR target::text LIKE '%secret%'`); n != 0 {
		t.Errorf("exchange target remains")
	}
	if n := one(`SELECT count(*) FROM route WHERE url LIKE '%example%' OR auth::text LIKE '%secret%' OR NOT disabled`); n != 0 {
		t.Errorf("routes not cleared")
	}
	if n := one(`SELECT count(*) FROM api_token`); n != 0 {
		t.Errorf("api tokens remain")
	}
	var title, banner string
	conn.QueryRow(ctx, `SELECT (SELECT value FROM systemsetting WHERE name='applicationTitle'), (SELECT value FROM systemsetting WHERE name='keyApplicationNotification')`).Scan(&title, &banner)
	label := strings.ToUpper(profile)
	if !strings.Contains(title, label) || !strings.Contains(title, "20260101T000000Z-abcd") || !strings.Contains(banner, "20260101T000000Z-abcd") {
		t.Errorf("title %q banner %q", title, banner)
	}
	if gen == fixture.Gen240 && !strings.HasPrefix(title, `"`) || gen != fixture.Gen240 && strings.HasPrefix(title, `"`) {
		t.Errorf("title encoding for %s: %q", gen, title)
	}
	if profile != "training" {
		if n := one(`SELECT count(*) FROM userinfo WHERE email IS NOT NULL`); n == 0 {
			t.Errorf("staging anonymised users")
		}
		return
	}
	if n := one(`SELECT count(*) FROM userinfo WHERE username <> 'admin' AND (email IS NOT NULL OR phonenumber IS NOT NULL OR whatsapp IS NOT NULL OR telegram IS NOT NULL OR secret IS NOT NULL OR openid IS NOT NULL OR ldapid IS NOT NULL OR restoretoken IS NOT NULL OR idtoken IS NOT NULL OR firstname <> 'Anonymous' OR twofactortype <> 'NOT_ENABLED')`); n != 0 {
		t.Errorf("%d users not anonymised", n)
	}
	if n := one(`SELECT count(*) FROM previouspasswords`); n != 0 {
		t.Errorf("previous passwords remain")
	}
	var hash string
	conn.QueryRow(ctx, `SELECT password FROM userinfo WHERE username = 'admin'`).Scan(&hash)
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("Training-2026!")) != nil {
		t.Errorf("admin password not reset from keep_password_file")
	}
	if n := one(`SELECT count(*) FROM userinfo WHERE username LIKE 'user%'`); n != 0 {
		t.Errorf("%d original usernames remain", n)
	}
	_ = io.Discard
}

// TestVerifyCatchesCustomSQL: custom SQL that re-enables a job fails verification.
func TestVerifyCatchesCustomSQL(t *testing.T) {
	p := testenv.StartPostgres(t)
	ctx := context.Background()
	db := "scrub_custom_" + fmt.Sprint(time.Now().UnixNano()%100000)
	res, err := fixture.Create(ctx, p.AdminDSN, db, fixture.Options{Generation: fixture.Gen242, Scale: 0.001, Owner: "dhis", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, db)) })
	g, _ := clone.ParseGeneration(res.Flyway)
	tg := &config.Target{Name: "t", Profile: "staging", ScrubSQL: []string{"UPDATE jobconfiguration SET enabled = true WHERE jobtype = 'DATA_SYNC'"}}
	sc, err := clone.NewScrubber(tg, "", g, "hmis", "S1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn := p.AdminConn(t, db)
	if _, err := sc.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	checks, err := sc.Verify(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	f := clone.Failed(checks)
	if len(f) != 1 || f[0].Rule != "jobs.outward" {
		t.Fatalf("failed checks %+v", f)
	}
	// A broken custom statement rolls the whole scrub back.
	tg.ScrubSQL = []string{"UPDATE no_such_table SET x = 1"}
	sc, _ = clone.NewScrubber(tg, "", g, "hmis", "S2", time.Now())
	if _, err := sc.Apply(ctx, conn); err == nil {
		t.Fatal("broken custom SQL did not fail")
	}
	var title string
	conn.QueryRow(ctx, `SELECT value FROM systemsetting WHERE name = 'applicationTitle'`).Scan(&title)
	if strings.Contains(title, "S2") {
		t.Errorf("scrub was not rolled back: %q", title)
	}
}
