package clone_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

func scalar[T any](t *testing.T, conn *pgx.Conn, q string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

const dvChecksum = `SELECT md5(string_agg(concat_ws(':', dataelementid, periodid, sourceid, categoryoptioncomboid, attributeoptioncomboid, value, deleted), ','
	ORDER BY dataelementid, periodid, sourceid, categoryoptioncomboid, attributeoptioncomboid)) FROM datavalue`

// TestPIIPseudonymise: the training scrub pseudonymises personal data of each generation; the
// scan finds production's values before and none after; the copy stays usable.
func TestPIIPseudonymise(t *testing.T) {
	p := testenv.StartPostgres(t)
	ctx := context.Background()
	pwFile := filepath.Join(t.TempDir(), "keep.pass")
	os.WriteFile(pwFile, []byte("Training-2026!\n"), 0o600)
	for _, gen := range []string{fixture.Gen240, fixture.Gen242, fixture.Gen244} {
		t.Run(gen, func(t *testing.T) {
			home := t.TempDir()
			db, g := fixtureDB(t, p, "pii_"+strings.ReplaceAll(gen, ".", ""), fixture.Options{Generation: gen, Scale: 0.002, Seed: 7, Home: home})
			conn := p.AdminConn(t, db)
			emptyRegenerable(t, conn)
			base, err := fixture.CountRows(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			teCol := "trackedentityid"
			if gen == fixture.Gen240 {
				teCol = "trackedentityinstanceid"
			}
			evTable := map[string]string{fixture.Gen240: "programstageinstance", fixture.Gen242: "event", fixture.Gen244: "trackerevent"}[gen]
			attr := func(te int, code string) string {
				return scalar[string](t, conn, `SELECT v.value FROM trackedentityattributevalue v JOIN trackedentityattribute a USING (trackedentityattributeid)
					WHERE a.code = $1 AND v.`+teCol+` = $2`, code, te)
			}
			nin5, phone5, dob5, sex5, first5 := attr(5, "NATIONAL_ID"), attr(5, "PHONE"), attr(5, "DOB"), attr(5, "SEX"), attr(5, "FIRST_NAME")
			if nin5 != fixture.NationalID(7, 5) {
				t.Fatalf("fixture national ID %s, want %s", nin5, fixture.NationalID(7, 5))
			}
			distinct := `SELECT count(DISTINCT value) FROM trackedentityattributevalue v JOIN trackedentityattribute a USING (trackedentityattributeid) WHERE a.code = $1`
			ninN, firstN := scalar[int64](t, conn, distinct, "NATIONAL_ID"), scalar[int64](t, conn, distinct, "FIRST_NAME")
			sum0 := scalar[string](t, conn, dvChecksum)

			tg := &config.Target{Name: "t", Profile: "training", KeepAccounts: []string{"admin"}, KeepPasswordFile: pwFile}
			opts := clone.PIIFor(tg)
			sought, err := clone.CollectPII(ctx, conn, opts)
			if err != nil {
				t.Fatal(err)
			}
			before, err := clone.Scan(ctx, conn, filepath.Join(home, "files"), sought)
			if err != nil {
				t.Fatal(err)
			}
			hit := map[string]bool{}
			for _, h := range before.Hits {
				hit[h.Table+"."+h.Column] = true
				if h.Table == "files" {
					hit["files"] = true
				}
			}
			t.Logf("before the scrub: %d values sought, %d tables, %d columns, %d hits", before.Values, before.Tables, before.Columns, len(before.Hits))
			for _, want := range []string{"trackedentityattributevalue.value", "message.messagetext", "incomingsms.originator", evTable + ".eventdatavalues",
				"datavalue.storedby", "audit.createdby", "interpretation.mentions", "files"} {
				if !hit[want] {
					t.Errorf("the scan of production missed %s (hits %v)", want, before.Hits)
				}
			}

			if gen != fixture.Gen240 {
				// Large tables are scanned by distinct values: still found.
				b, err := clone.ScanBig(ctx, conn, "", sought, 1000)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, h := range b.Hits {
					found = found || h.Table == "datavalue" && h.Column == "storedby" && h.Count > 1
				}
				if !found {
					t.Errorf("distinct-value scan missed datavalue.storedby: %+v", b.Hits)
				}
			}
			sc, err := clone.NewScrubber(tg, "", g, "hmis", "20260101T000000Z-abcd", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			big := int64(0) // default: every fixture table is small
			if gen != fixture.Gen240 {
				big = 1000 // datavalue and audit rewritten, scanned by distinct values
			}
			sc.PII.BigRows = big
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
			n, err := clone.WritePlaceholders(ctx, conn, filepath.Join(home, "files"))
			if err != nil || n == 0 {
				t.Fatalf("placeholders: %d, %v", n, err)
			}
			after, err := clone.ScanBig(ctx, conn, filepath.Join(home, "files"), sought, max(big, 1_000_000))
			if big > 0 {
				if after, err = clone.ScanBig(ctx, conn, filepath.Join(home, "files"), sought, big); err != nil {
					t.Fatal(err)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(after.Hits) > 0 {
				t.Errorf("production values left after the scrub: %+v", after.Hits)
			}

			// Still usable: row counts, datavalue checksums, search on pseudonyms.
			counts, err := fixture.CountRows(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			for table, n := range base {
				if counts[table] != n && !scrubDeletes[table] {
					t.Errorf("table %s has %d rows, production %d", table, counts[table], n)
				}
			}
			if s := scalar[string](t, conn, dvChecksum); s != sum0 {
				t.Error("datavalue checksum changed")
			}
			nin, phone, dob, sex, first := attr(5, "NATIONAL_ID"), attr(5, "PHONE"), attr(5, "DOB"), attr(5, "SEX"), attr(5, "FIRST_NAME")
			if nin == nin5 || len(nin) != len(nin5) || phone == phone5 || first == first5 || dob == dob5 {
				t.Errorf("not pseudonymised: %s %s %s %s", nin, phone, first, dob)
			}
			if !regexp.MustCompile(`^\+\d{12}$`).MatchString(phone) || sex != sex5 || dob[:4] != dob5[:4] {
				t.Errorf("pseudonyms not valid for their type: phone %q, sex %q→%q, date of birth %s→%s", phone, sex5, sex, dob5, dob)
			}
			if n := scalar[int64](t, conn, distinct, "NATIONAL_ID"); n != ninN {
				t.Errorf("unique national IDs: %d distinct, production %d", n, ninN)
			}
			if n := scalar[int64](t, conn, distinct, "FIRST_NAME"); n != firstN {
				t.Errorf("first names: %d distinct, production %d (one value, one pseudonym)", n, firstN)
			}
			if te := scalar[int64](t, conn, `SELECT `+teCol+` FROM trackedentityattributevalue WHERE lower(value) = lower($1)`, nin); te != 5 {
				t.Errorf("search by the pseudonymised national ID found %d", te)
			}
			if n := scalar[int64](t, conn, `SELECT count(*) FROM trackedentityattributevalue v JOIN trackedentityattribute a USING (trackedentityattributeid)
				WHERE a.code = 'EMAIL' AND value NOT LIKE '%@example.org'`); n != 0 {
				t.Errorf("%d emails outside example.org", n)
			}
			if n := scalar[int64](t, conn, `SELECT count(*) FROM `+evTable+` e, jsonb_each(e.eventdatavalues) kv WHERE kv.value->>'storedBy' LIKE 'user%'`); n != 0 {
				t.Errorf("%d event data values stored by production usernames", n)
			}
			if n := scalar[int64](t, conn, `SELECT count(*) FROM datavalue WHERE storedby NOT LIKE 'anon-%' AND storedby <> 'admin'`); n != 0 {
				t.Errorf("%d datavalue.storedby not mapped", n)
			}
			if n := scalar[int64](t, conn, `SELECT count(*) FROM datavalue d JOIN userinfo u ON u.username = d.storedby`); n == 0 {
				t.Error("datavalue.storedby no longer names the (anonymised) users")
			}
		})
	}
}

// TestPIIScanFindsLeftovers: a value a custom rule puts back is found and named by table and
// column, never by value.
func TestPIIScanFindsLeftovers(t *testing.T) {
	ctx := context.Background()
	conn, g := piiFixture(t, "pii_left_", 0.001, 3)
	nin := fixture.NationalID(3, 4)
	tg := &config.Target{Name: "t", Profile: "training", ScrubSQL: []string{
		fmt.Sprintf(`UPDATE keyjsonvalue SET jbvalue = jsonb_build_object('note', 'see %s') WHERE namespace = 'hmis-custom'`, nin)}}
	sought, err := clone.CollectPII(ctx, conn, clone.PIIFor(tg))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := clone.NewScrubber(tg, "", g, "hmis", "S1", time.Now())
	if _, err := sc.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	rep, err := clone.Scan(ctx, conn, "", sought)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hits) != 1 || rep.Hits[0].Table != "keyjsonvalue" || rep.Hits[0].Column != "jbvalue" || rep.Hits[0].Count != 1 {
		t.Fatalf("hits %+v, want keyjsonvalue.jbvalue once", rep.Hits)
	}
	err = rep.Error()
	if err == nil || !strings.Contains(err.Error(), "keyjsonvalue.jbvalue") || strings.Contains(err.Error(), nin) {
		t.Errorf("error %v: must name the column and not the value", err)
	}
	if rep.Tables < 30 || rep.Columns < 100 || rep.Values < 50 {
		t.Errorf("scan covered %d tables, %d columns, %d values", rep.Tables, rep.Columns, rep.Values)
	}
}

// piiFixture is a 2.42 fixture database (name prefix, scale, seed) on a PostgreSQL of its own,
// with the regenerable tables empty as in a snapshot: its connection and generation.
func piiFixture(t *testing.T, prefix string, scale float64, seed int64) (*pgx.Conn, clone.Generation) {
	t.Helper()
	p := testenv.StartPostgres(t)
	db, g := fixtureDB(t, p, prefix, fixture.Options{Generation: fixture.Gen242, Scale: scale, Seed: seed})
	conn := p.AdminConn(t, db)
	emptyRegenerable(t, conn)
	return conn, g
}

// fixtureDB creates a fixture database named prefix + a number, owned by dhis and dropped at the
// end of the test: its name and scrub generation.
func fixtureDB(t *testing.T, p *testenv.Postgres, prefix string, o fixture.Options) (string, clone.Generation) {
	t.Helper()
	db := prefix + fmt.Sprint(time.Now().UnixNano()%100000)
	o.Owner = "dhis"
	res, err := fixture.Create(context.Background(), p.AdminDSN, db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, db)) })
	g, err := clone.ParseGeneration(res.Flyway)
	if err != nil {
		t.Fatal(err)
	}
	return db, g
}

// scrubDeletes are the tables whose rows the profiles delete (settings, tokens, passwords).
var scrubDeletes = map[string]bool{"systemsetting": true, "api_token": true, "previouspasswords": true, "keyjsonvalue": true}

// emptyRegenerable empties analytics and resource tables, as a snapshot excludes their data.
func emptyRegenerable(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), `DO $$DECLARE r record; BEGIN
		FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND (tablename LIKE 'analytics%' OR tablename LIKE '\_%') LOOP
			EXECUTE format('TRUNCATE %I CASCADE', r.tablename);
		END LOOP; END$$`); err != nil {
		t.Fatal(err)
	}
}

// TestApplyPIISideRewrite: during a restore (data in, no keys or triggers yet), ApplyPII
// rewrites the large username-only tables (datavalue) on a second connection while the other
// steps run; the usernames there map to the same anonymised users as everywhere else.
func TestApplyPIISideRewrite(t *testing.T) {
	ctx := context.Background()
	conn, g := piiFixture(t, "pii_side_", 0.002, 5)
	// The state of a restore at AfterData: no foreign key and no trigger yet.
	if _, err := conn.Exec(ctx, `DO $$DECLARE r record; BEGIN
		FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace LOOP
			EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
		END LOOP;
		FOR r IN SELECT tgrelid::regclass AS t, tgname FROM pg_trigger WHERE NOT tgisinternal LOOP
			EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.t);
		END LOOP; END$$`); err != nil {
		t.Fatal(err)
	}
	prodUsers := scalar[int64](t, conn, `SELECT count(DISTINCT storedby) FROM datavalue WHERE storedby IN (SELECT username FROM userinfo) AND storedby <> 'admin'`)
	rowsDV := scalar[int64](t, conn, `SELECT count(*) FROM datavalue WHERE storedby <> '' AND storedby <> 'admin'`)
	comments := scalar[int64](t, conn, `SELECT count(*) FROM datavalue WHERE comment IS NOT NULL AND comment <> $1`, clone.PIIText)
	sum0 := scalar[string](t, conn, dvChecksum)
	evVals := scalar[[]string](t, conn, `SELECT coalesce(array_agg(DISTINCT kv.value->>'value'), '{}') FROM event e, jsonb_each(e.eventdatavalues) kv
		JOIN dataelement d ON d.uid = kv.key WHERE d.valuetype IN ('TEXT', 'LONG_TEXT', 'PHONE_NUMBER', 'EMAIL')
		AND length(kv.value->>'value') >= 6`)
	if len(evVals) == 0 {
		t.Fatal("fixture: no free-text or identifying event data value")
	}
	if prodUsers == 0 || rowsDV == 0 || comments == 0 {
		t.Fatalf("fixture: %d users in datavalue.storedby, %d rows, %d comments", prodUsers, rowsDV, comments)
	}

	// A username unknown to userinfo (a deleted account), in a table of the second connection
	// (enrollment) and in one the first connection updates (an audit table of a rule): the
	// first never reads the second's tables, yet both get the same pseudonym.
	if _, err := conn.Exec(ctx, `UPDATE enrollment SET completedby = 'ghost.trainer' WHERE enrollmentid IN (SELECT min(enrollmentid) FROM enrollment);
		UPDATE trackedentitydatavalueaudit SET modifiedby = 'ghost.trainer' WHERE trackedentitydatavalueauditid IN (SELECT min(trackedentitydatavalueauditid) FROM trackedentitydatavalueaudit)`); err != nil {
		t.Fatal(err)
	}
	var logs testenv.LockedBuffer
	pwFile := filepath.Join(t.TempDir(), "keep.pass")
	os.WriteFile(pwFile, []byte("Training-2026!\n"), 0o600)
	tg := &config.Target{Name: "t", Profile: "training", KeepAccounts: []string{"admin"}, KeepPasswordFile: pwFile}
	sc, err := clone.NewScrubber(tg, "", g, "hmis", "S1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sc.PII.BigRows = 100 // datavalue, and trackedentity and enrollment with their user jsonb columns
	sc.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// A released table's builds start at once: a primary key needs an ACCESS EXCLUSIVE lock,
	// which must not wait for the scrub's transaction (it held two build workers for the whole
	// scrub when trackedentityattribute and dataelement, read for the fields, were released).
	probe, err := pgx.ConnectConfig(ctx, conn.Config().Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close(ctx)
	var mu sync.Mutex
	released := map[string]bool{}
	var waits []string
	ch, err := sc.ApplyPII(ctx, conn, func(table string) {
		mu.Lock()
		defer mu.Unlock()
		released[table] = true
		tx, err := probe.Begin(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE NOWAIT"); err != nil {
			waits = append(waits, table+": "+err.Error())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(waits) > 0 {
		t.Errorf("released tables still locked by the scrub: %v", waits)
	}
	if !regexp.MustCompile(`PII side rewrite started.*datavalue enrollment trackedentity`).MatchString(logs.String()) {
		t.Errorf("datavalue was not rewritten on the second connection; log:\n%s", logs.String())
	}
	// The events' data values are rewritten on another second connection, beside the rules.
	if !regexp.MustCompile(`PII statement" rule=pii.events side=true rows=[1-9]`).MatchString(logs.String()) {
		t.Errorf("event was not rewritten on a second connection; log:\n%s", logs.String())
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM event e, jsonb_each(e.eventdatavalues) kv WHERE kv.value->>'value' = ANY($1)`, evVals); n != 0 {
		t.Errorf("%d event data values still hold production values (of %d sought)", n, len(evVals))
	}
	// Released before the end: the tables it never writes, and the second connection's once
	// committed; not the tables the first connection writes.
	for table, want := range map[string]bool{"public.period": true, "public.organisationunit": true, "public.datavalue": true,
		"public.trackedentity": true, "public.event": false, "public.trackedentityattribute": false, "public.dataelement": false, "public.trackedentityattributevalue": false, "public.userinfo": false, "public.message": false} {
		if released[table] != want {
			t.Errorf("table %s released %v, want %v (released: %v)", table, released[table], want, released)
		}
	}
	ghosts := scalar[[]string](t, conn, `SELECT array_agg(DISTINCT v) FROM (SELECT completedby v FROM enrollment WHERE enrollmentid IN (SELECT min(enrollmentid) FROM enrollment)
		UNION ALL SELECT modifiedby FROM trackedentitydatavalueaudit WHERE trackedentitydatavalueauditid IN (SELECT min(trackedentitydatavalueauditid) FROM trackedentitydatavalueaudit)) s`)
	if len(ghosts) != 1 || !strings.HasPrefix(ghosts[0], "anon-") {
		t.Errorf("a username unknown to userinfo became %v in enrollment and the audit, want one anon- pseudonym", ghosts)
	}
	var usernames, texts int64
	for _, c := range ch {
		switch c.Rule {
		case "pii.usernames":
			usernames = c.Rows
		case "pii.free_text":
			texts = c.Rows
		case "pii.events":
			if c.Rows == 0 { // the second connection's rows are counted
				t.Errorf("pii.events counts no row (changes %+v)", ch)
			}
		}
	}
	if texts < comments {
		t.Errorf("pii.free_text counts %d rows, datavalue alone has %d comments", texts, comments)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM datavalue WHERE comment IS NOT NULL AND comment <> $1`, clone.PIIText); n != 0 {
		t.Errorf("%d datavalue comments not replaced", n)
	}
	if usernames < rowsDV {
		t.Errorf("pii.usernames counts %d rows, datavalue alone has %d mapped (changes %+v)", usernames, rowsDV, ch)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM datavalue WHERE storedby NOT LIKE 'anon-%' AND storedby <> 'admin' AND storedby <> ''`); n != 0 {
		t.Errorf("%d datavalue.storedby not mapped", n)
	}
	// The users of datavalue are the anonymised userinfo rows (one user, one pseudonym).
	if n := scalar[int64](t, conn, `SELECT count(DISTINCT d.storedby) FROM datavalue d JOIN userinfo u ON u.username = d.storedby WHERE d.storedby <> 'admin'`); n != prodUsers {
		t.Errorf("datavalue names %d anonymised users, production %d", n, prodUsers)
	}
	if s := scalar[string](t, conn, dvChecksum); s != sum0 {
		t.Error("datavalue checksum changed")
	}
	// User jsonb columns (rewritten on the second connection for trackedentity, in the first
	// connection's rewrite of event) name the anonymised user (the fixture's hold no names).
	for _, tb := range []string{"trackedentity", "event"} {
		if n := scalar[int64](t, conn, `SELECT count(*) FROM `+tb+` x JOIN userinfo u ON u.username = x.createdbyuserinfo->>'username'
			WHERE u.username <> 'admin' AND NOT x.createdbyuserinfo ? 'firstName'`); n == 0 {
			t.Errorf("%s.createdbyuserinfo: no row names an anonymised user", tb)
		}
		if n := scalar[int64](t, conn, `SELECT count(*) FROM `+tb+` WHERE createdbyuserinfo->>'username' NOT LIKE 'anon-%' AND createdbyuserinfo->>'username' <> 'admin'`); n != 0 {
			t.Errorf("%s.createdbyuserinfo: %d rows name a production user", tb, n)
		}
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM event WHERE completedby NOT LIKE 'anon-%' AND completedby <> 'admin'`); n != 0 {
		t.Errorf("event.completedby: %d rows name a production user", n)
	}
}
