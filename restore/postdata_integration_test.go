package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/snapshot"
)

// schemaObjects lists every index, constraint and trigger of the public schema with its
// definition, and whether each table has statistics.
func schemaObjects(t *testing.T, p *testenv.Postgres, db string) map[string]string {
	t.Helper()
	rows, err := p.AdminConn(t, db).Query(context.Background(), `
SELECT 'index ' || tablename || ' ' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname, pg_get_constraintdef(oid) || ' valid=' || convalidated
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'valid index ' || indexrelid::regclass, indisvalid::text FROM pg_index WHERE indrelid::regclass::text NOT LIKE 'pg_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRestorePostDataAsPgRestore: indexes and keys build while other tables load, foreign
// keys after; what the restore leaves is every index, constraint and trigger of the source
// (what pg_restore of the same archive gives) — including odd names, a foreign-key cycle
// and a partitioned table — and the loaded tables are analyzed (but the split ones, which
// autovacuum analyzes). An index build that fails
// fails the restore naming its table, and the database is dropped.
func TestRestorePostDataAsPgRestore(t *testing.T) {
	p := testenv.StartPostgres(t)
	ctx := context.Background()
	src, _, _ := dumpFixture(t, p, "post_src")
	p.AdminExec(t, src, `
CREATE TABLE public."Odd.Name" (id int PRIMARY KEY, "Ref" int, v text);
CREATE INDEX "odd idx" ON public."Odd.Name" (lower(v));
CREATE TABLE public.cyc_a (id int PRIMARY KEY, b int);
CREATE TABLE public.cyc_b (id int PRIMARY KEY, a int REFERENCES public.cyc_a);
ALTER TABLE public.cyc_a ADD FOREIGN KEY (b) REFERENCES public.cyc_b DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE public."Odd.Name" ADD FOREIGN KEY ("Ref") REFERENCES public.cyc_a;
CREATE TABLE public.part (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.part_2026 PARTITION OF public.part FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX part_at ON public.part (at);
BEGIN;
INSERT INTO public.cyc_a SELECT g, g FROM generate_series(1, 500) g;
INSERT INTO public.cyc_b SELECT g, g FROM generate_series(1, 500) g;
COMMIT;
INSERT INTO public."Odd.Name" SELECT g, g % 500 + 1, 'v' || g FROM generate_series(1, 2000) g;
INSERT INTO public.part SELECT g, DATE '2026-01-01' + g % 300 FROM generate_series(1, 1000) g;`)
	want := schemaObjects(t, p, src)
	var stream bytes.Buffer
	tr, err := snapshot.Dump(ctx, snapshot.DumpOptions{Conn: pg.Conn{DSN: p.AdminDSNFor(src)}, TempDir: t.TempDir(), PGBinDir: testenv.PGBinDir()}, &stream)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{ID: "20260101T000000Z-p1p1", Instance: "hmis", Server: tr.Server, Tables: tr.Tables, Sequences: tr.Sequences,
		Extensions: tr.Extensions, Excluded: tr.Excluded, Parts: map[string]manifest.Part{}}
	cfg := &config.Config{Tuning: config.Tuning{TempDir: t.TempDir(), RestoreJobs: 2, RestoreSpoolMB: 1024}}
	admin := pg.Conn{DSN: p.AdminDSN}
	opts := func(db string, s []byte) restore.Options {
		// Tables of 16 KiB and more load on two connections at once (see TestRestoreStream
		// for the default).
		return restore.Options{Config: cfg, Log: slog.New(slog.DiscardHandler), Manifest: m, Admin: &admin, Target: admin.WithDatabase(db), Jobs: 2, SplitMinBytes: 16 << 10,
			DBStream: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(s)), nil }}
	}
	db := fmt.Sprintf("post_dst_%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() { p.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, db)) })
	res, err := restore.Restore(ctx, opts(db, stream.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "restored stream", sourceState(t, p, src, tr), state(t, p, db, tr))
	if res.Tables != len(tr.Tables) {
		t.Errorf("restored %d tables, stream holds %d", res.Tables, len(tr.Tables))
	}
	got := schemaObjects(t, p, db)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: restored %q, source %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: restored %q, not in the source", k, v)
		}
	}
	if len(want) < 100 {
		t.Errorf("only %d indexes, constraints and triggers compared", len(want))
	}
	var unanalyzed []string
	if len(tableNames(tr)) < 5 {
		t.Fatalf("only %d small tables with rows", len(tableNames(tr)))
	}
	rows, err := p.AdminConn(t, db).Query(ctx, `SELECT relname FROM pg_stat_user_tables s WHERE last_analyze IS NULL AND relname = ANY($1)`, tableNames(tr))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		unanalyzed = append(unanalyzed, n)
	}
	rows.Close()
	if len(unanalyzed) > 0 {
		t.Errorf("loaded tables not analyzed by the restore: %v", unanalyzed)
	}

	// An index whose build fails (its function refuses outside the source's session).
	p.AdminExec(t, src, `
CREATE FUNCTION public.only_at_source(x int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
$$BEGIN IF current_setting('test.source', true) IS DISTINCT FROM 'yes' THEN RAISE EXCEPTION 'index function refused'; END IF; RETURN x; END$$;
CREATE TABLE public.fails_later (id int);
INSERT INTO public.fails_later SELECT generate_series(1, 100);
SET test.source = 'yes';
CREATE INDEX fails_later_idx ON public.fails_later (public.only_at_source(id));`)
	stream.Reset()
	tr, err = snapshot.Dump(ctx, snapshot.DumpOptions{Conn: pg.Conn{DSN: p.AdminDSNFor(src)}, TempDir: t.TempDir(), PGBinDir: testenv.PGBinDir()}, &stream)
	if err != nil {
		t.Fatal(err)
	}
	m.Tables, m.Sequences = tr.Tables, tr.Sequences
	bad := fmt.Sprintf("post_bad_%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() { p.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, bad)) })
	_, err = restore.Restore(ctx, opts(bad, stream.Bytes()))
	if err == nil || !strings.Contains(err.Error(), "fails_later_idx on table public.fails_later") ||
		!strings.Contains(err.Error(), "index function refused") || !strings.Contains(err.Error(), "was dropped") {
		t.Fatalf("failing index build: %v", err)
	}
	var n int
	if err := p.AdminConn(t, "postgres").QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", bad).Scan(&n); err != nil || n != 0 {
		t.Errorf("half-restored database left behind (%d, %v)", n, err)
	}
}

func tableNames(tr *manifest.Trailer) []string {
	var out []string
	for _, tb := range tr.Tables {
		if tb.Schema == "public" && tb.Rows > 0 && tb.StreamBytes < 16<<10 { // the split ones are autovacuum's
			out = append(out, tb.Name)
		}
	}
	return out
}
