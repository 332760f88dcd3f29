package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

func qs(t *testing.T, conn *pgx.Conn, q string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

const dvSum = `SELECT md5(string_agg(concat_ws(':', dataelementid, periodid, sourceid, categoryoptioncomboid, attributeoptioncomboid, value, deleted), ','
	ORDER BY dataelementid, periodid, sourceid, categoryoptioncomboid, attributeoptioncomboid)) FROM datavalue`

// TestClonePII: a training clone of the real 2.44 schema holds no production value (scan in
// the clone run and by `clone scan`), stays usable (row counts, datavalue checksums, search
// on pseudonyms, kept account, file metadata), a leftover fails with exit 3 and nothing
// swapped, staging pseudonymises on request, and a template copy is scanned too.
func TestClonePII(t *testing.T) {
	e := newEnv(t, fixture.Gen244)
	e.init()
	m := e.snapshot()
	trn, stg, tpl := "trn_"+randName(), "stg_"+randName(), "tpl_"+randName()
	t.Cleanup(func() {
		dropDB(t, e.pg, trn)
		dropDB(t, e.pg, stg)
		dropDB(t, e.pg, tpl)
		dropDB(t, e.pg, clone.TemplateName("tpl", m.ID))
	})
	keep := filepath.Join(e.dir, "keep.pass")
	writeFile(t, keep, "Training-2026!\n", 0o600)
	trnHome := filepath.Join(e.dir, "training-home")
	training := tgt{name: "training", db: trn, profile: "training", home: trnHome,
		extra: fmt.Sprintf("keep_accounts = [\"admin\"]\nkeep_password_file = %q", keep)}
	staging := tgt{name: "staging", db: stg, profile: "staging", home: filepath.Join(e.dir, "staging-home"), extra: `pii = "pseudonymise"`}
	template := tgt{name: "tpl", db: tpl, profile: "training", extra: "template = true"}
	// config check looks the pii uids up in production.
	known := qs(t, connectAdmin(t, e.pg, e.db), `SELECT uid FROM trackedentityattribute WHERE code = 'SEX'`)
	withUIDs := template
	withUIDs.extra += fmt.Sprintf("\npii_keep_attributes = [%q]\npii_extra_attributes = [\"Xnotthere12\"]", known)
	e.setTargets(training, staging, withUIDs)
	r := e.run("config", "check")
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, "targets.tpl.pii_extra_attributes") || !strings.Contains(r.stdout+r.stderr, "Xnotthere12") ||
		strings.Contains(r.stdout+r.stderr, "pii_keep_attributes") {
		t.Errorf("config check of pii uids: %s", r)
	}
	e.setTargets(training, staging, template)

	rec, r := e.cloneJSON("--to", "training")
	if rec.PII == nil || rec.PII.Values < 100 || rec.PII.Tables < 150 || rec.PII.Columns < 500 || rec.PII.Files == 0 || len(rec.PII.Hits) != 0 {
		t.Fatalf("pii scan of the clone run: %+v", rec.PII)
	}
	t.Logf("training clone in %s: scan of %d tables, %d columns, %d rows, %d files for %d values in %.2fs", r.dur,
		rec.PII.Tables, rec.PII.Columns, rec.PII.Rows, rec.PII.Files, rec.PII.Values, rec.PII.Seconds)
	prod, conn := connectAdmin(t, e.pg, e.db), connectAdmin(t, e.pg, trn)
	defer prod.Close(context.Background())
	defer conn.Close(context.Background())

	// Row counts and datavalue checksums as in production.
	for _, tb := range m.Tables {
		switch tb.Name {
		case "systemsetting", "api_token", "previouspasswords", "keyjsonvalue":
			continue
		}
		if got := q1(t, conn, "SELECT count(*) FROM ONLY "+pgx.Identifier{tb.Schema, tb.Name}.Sanitize()); got != tb.Rows {
			t.Errorf("table %s: %d rows in the clone, %d in the set", tb.Name, got, tb.Rows)
		}
	}
	if qs(t, conn, dvSum) != qs(t, prod, dvSum) {
		t.Error("datavalue checksums differ from production")
	}
	// Tracker search by attribute works on the pseudonyms.
	nin := `SELECT v.value FROM trackedentityattributevalue v JOIN trackedentityattribute a USING (trackedentityattributeid) WHERE a.code = 'NATIONAL_ID' AND v.trackedentityid = 5`
	pseudo := qs(t, conn, nin)
	if pseudo == qs(t, prod, nin) {
		t.Error("national ID not pseudonymised")
	}
	if n := q1(t, conn, `SELECT count(*) FROM trackedentityattributevalue v JOIN trackedentity te USING (trackedentityid)
		WHERE lower(v.value) LIKE lower($1) AND te.uid IS NOT NULL`, pseudo[:6]+"%"); n < 1 {
		t.Error("searching the pseudonymised national ID by prefix found nobody")
	}
	// The kept account still logs in.
	hash := qs(t, conn, `SELECT password FROM userinfo WHERE username = 'admin' AND NOT coalesce(disabled, false)`)
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("Training-2026!")) != nil {
		t.Error("kept account admin does not log in with the keep_password_file password")
	}
	// Every file resource has its file with the recorded size and md5 (placeholders included).
	rows, err := conn.Query(context.Background(), `SELECT storagekey, contentlength, contentmd5, domain FROM fileresource`)
	if err != nil {
		t.Fatal(err)
	}
	placeholders := 0
	for rows.Next() {
		var key, sum, domain string
		var size int64
		if err := rows.Scan(&key, &size, &sum, &domain); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(trnHome, "files", key))
		s := md5.Sum(b)
		if err != nil || int64(len(b)) != size || hex.EncodeToString(s[:]) != sum {
			t.Errorf("file %s (%s): %d bytes, md5 %x, recorded %d %s (%v)", key, domain, len(b), s, size, sum, err)
		}
		if domain == "DATA_VALUE" {
			placeholders++
		}
	}
	if placeholders == 0 {
		t.Error("no tracker file resource in the fixture")
	}

	// clone scan: clean, then a value put back by hand is found and named, never printed.
	var rep clone.ScanReport
	r = e.mustRun("clone", "scan", "training", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Hits) != 0 || rep.Values != rec.PII.Values {
		t.Fatalf("clone scan --json: %v %s", err, r.stdout)
	}
	leak := fixture.NationalID(1, 7)
	e.pg.AdminExec(t, trn, fmt.Sprintf(`UPDATE message SET messagetext = 'Call back about %s' WHERE messageid = 10`, leak))
	r = e.run("clone", "scan", "training")
	oneLineError(t, r, 3, "message.messagetext")
	if strings.Contains(r.stdout+r.stderr, leak) {
		t.Error("the scan printed the production value")
	}

	// A clone whose custom SQL puts a production value back: exit 3, the previous clone stays.
	bad := training
	bad.extra += fmt.Sprintf("\nscrub_sql = [\"UPDATE keyjsonvalue SET jbvalue = jsonb_build_object('who', '%s') WHERE namespace = 'hmis-custom'\"]", leak)
	e.setTargets(bad, staging, template)
	r = e.run("clone", "--to", "training", "--terminate")
	msg := oneLineError(t, r, 3, "keyjsonvalue.jbvalue", "untouched")
	if strings.Contains(msg, leak) {
		t.Error("the failed clone printed the production value")
	}
	if n := q1(t, conn, `SELECT count(*) FROM message WHERE messagetext LIKE 'Call back%'`); n != 1 {
		t.Error("the previous clone was replaced after a failed scan")
	}

	// Staging with pii = "pseudonymise": tracker data pseudonymised, users untouched.
	e.setTargets(training, staging, template)
	rec, _ = e.cloneJSON("--to", "staging")
	if rec.PII == nil || len(rec.PII.Hits) != 0 {
		t.Fatalf("staging scan %+v", rec.PII)
	}
	sc := connectAdmin(t, e.pg, stg)
	defer sc.Close(context.Background())
	if qs(t, sc, nin) == qs(t, prod, nin) || q1(t, sc, `SELECT count(*) FROM userinfo WHERE email IS NOT NULL`) == 0 {
		t.Error("staging with pii = pseudonymise: national ID kept or users anonymised")
	}

	// Template: built and scanned, then copied and scanned against production's values.
	rec, _ = e.cloneJSON("--to", "tpl")
	if rec.FromTemplate || rec.PII == nil || len(rec.PII.Hits) != 0 {
		t.Fatalf("template build: %+v %+v", rec.FromTemplate, rec.PII)
	}
	tc := connectAdmin(t, e.pg, tpl)
	first := qs(t, tc, nin)
	tc.Close(context.Background())
	rec, _ = e.cloneJSON("--to", "tpl", "--terminate")
	if !rec.FromTemplate || rec.PII == nil || rec.PII.Values == 0 || len(rec.PII.Hits) != 0 {
		t.Fatalf("template copy: %+v %+v", rec.FromTemplate, rec.PII)
	}
	tc = connectAdmin(t, e.pg, tpl)
	defer tc.Close(context.Background())
	if second := qs(t, tc, nin); second != first {
		t.Errorf("the template copy was pseudonymised again (%s, then %s)", first, second)
	}
}
