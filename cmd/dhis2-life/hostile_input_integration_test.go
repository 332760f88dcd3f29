package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/testenv/faulttable"
)

// TestHostileNamesAndIDs: tables, columns and values that need quoting or look like SQL or
// paths survive snapshot → restore unchanged (and run nothing); set IDs with path or option
// characters are refused with one clear line and create nothing.
func TestHostileNamesAndIDs(t *testing.T) {
	e := newEnv(t, "")
	e.pg.AdminExec(t, e.db, `
CREATE SCHEMA "../etc" AUTHORIZATION `+e.pg.AppUser+`;
SET ROLE `+e.pg.AppUser+`;
CREATE TABLE public.victim (id int);
INSERT INTO public.victim VALUES (1);
CREATE TABLE "../etc"."x""; DROP TABLE public.victim; --" (
  "select" int PRIMARY KEY,
  "with
newline" text,
  "tab	col" text,
  "back\slash" text,
  "ünï cødé ✓" text
);
CREATE SEQUENCE "../etc"."seq'""quoted";
SELECT setval('"../etc"."seq''""quoted"', 42);
INSERT INTO "../etc"."x""; DROP TABLE public.victim; --" VALUES
  (1, E'line1\nline2', E'a\tb', E'C:\\path\\N', '\N'),
  (2, NULL, '', E'\\.', 'DROP TABLE public.victim;'),
  (3, E'\r\n', E'\x01\x7f', '"quoted"', '✓✓');
`)
	e.init()
	e.cheapKey()
	m := e.snapshot()
	target := "hostile_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	r := e.run("restore", m.ID, "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	if r.code != 0 {
		t.Fatalf("restore of hostile names: %s", r)
	}
	dump := func(db string) string {
		conn := connectAdmin(t, e.pg, db)
		defer conn.Close(context.Background())
		var s string
		q := `SELECT string_agg(format('%s|%s|%s|%s|%s', "select", "with
newline", "tab	col", "back\slash", "ünï cødé ✓"), ';' ORDER BY "select") FROM "../etc"."x""; DROP TABLE public.victim; --"`
		if err := conn.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", db, err)
		}
		var seq, victim int64
		if err := conn.QueryRow(context.Background(), `SELECT last_value FROM "../etc"."seq'""quoted"`).Scan(&seq); err != nil {
			t.Fatalf("%s: sequence: %v", db, err)
		}
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM public.victim`).Scan(&victim); err != nil {
			t.Fatalf("%s: victim: %v", db, err)
		}
		return s + "#" + string(rune('0'+seq%10)) + "#" + string(rune('0'+victim))
	}
	src, dst := dump(e.db), dump(target)
	if src != dst {
		t.Errorf("hostile names did not round-trip:\n src %q\n dst %q", src, dst)
	}

	// Set IDs with path or option characters: one line, exit 2 or 1, nothing written.
	filesTo := filepath.Join(e.dir, "never")
	bad := 0
	for _, id := range []string{"../../etc/passwd", "a/b", "..", "/etc", "x y", "*"} {
		for _, args := range [][]string{
			{"restore", id, "--to-db", e.dsnFor("never_" + randName()), "--to-db-password-file", e.dbPass, "--files-to", filesTo},
			{"verify", id},
			{"archive", id},
			{"keep", id},
		} {
			r := e.run(args...)
			lines := strings.Count(r.stderr, "dhis2-life: ")
			if r.code == 0 || lines != 1 {
				bad++
				t.Errorf("dhis2-life %s: want a refusal on one line: %s", strings.Join(args, " "), r)
			}
		}
	}
	if _, err := os.Stat(filesTo); err == nil {
		t.Errorf("a refused restore created %s", filesTo)
	}
	faulttable.Record(t, faulttable.Row{Scenario: "hostile input: table/column/sequence names needing quoting, SQL-like values",
		Expected: "round-trip unchanged, nothing executed", Exit: r.code, Message: "restored " + m.ID,
		CatalogConsistent: true, NextRunOK: src == dst})
	faulttable.Record(t, faulttable.Row{Scenario: "hostile input: set IDs with path/option characters (../, /, .., space, *)",
		Expected: "refused on one line, nothing written", Exit: 1, Message: fmt.Sprintf("24 commands refused: %d not", bad),
		CatalogConsistent: true, NextRunOK: bad == 0})
}
