package main

import (
	"context"
	"testing"
)

// TestRestoreSchemaCorners: tables outside public with names that need quoting, a table
// with no columns, generated and identity columns, a partitioned table, an unlogged table
// and an extension in its own schema survive snapshot → restore with their rows and
// sequences.
func TestRestoreSchemaCorners(t *testing.T) {
	e := newEnv(t, "")
	e.pg.AdminExec(t, e.db, `
CREATE SCHEMA ext;
CREATE EXTENSION pg_trgm WITH SCHEMA ext;
GRANT USAGE ON SCHEMA ext TO `+e.pg.AppUser+`;
CREATE SCHEMA "Odd Schema" AUTHORIZATION `+e.pg.AppUser+`;
SET ROLE `+e.pg.AppUser+`;
CREATE TABLE "Odd Schema"."My Table" ("Id" int PRIMARY KEY, "a""b" text, g int GENERATED ALWAYS AS ("Id" * 2) STORED);
INSERT INTO "Odd Schema"."My Table" ("Id", "a""b") SELECT i, 'v' || i FROM generate_series(1, 5) i;
CREATE TABLE public.nocols ();
INSERT INTO public.nocols DEFAULT VALUES; INSERT INTO public.nocols DEFAULT VALUES;
CREATE TABLE public.ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
INSERT INTO public.ident (v) VALUES ('a'), ('b'), ('c');
CREATE TABLE public.parted (k int NOT NULL, v text) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (10) TO (20);
INSERT INTO public.parted SELECT i, 'p' || i FROM generate_series(0, 19) i;
CREATE UNLOGGED TABLE public.scratchpad (id serial PRIMARY KEY, v text);
INSERT INTO public.scratchpad (v) VALUES ('x'), ('y');
CREATE TABLE public.trgm (v text);
CREATE INDEX trgm_idx ON public.trgm USING gin (v ext.gin_trgm_ops);
INSERT INTO public.trgm VALUES ('hello');
CREATE MATERIALIZED VIEW public._view_ident_count AS SELECT count(*) AS n FROM public.ident;
`)
	e.init()
	m := e.snapshot()
	target := "corners_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	e.mustRun("restore", m.ID, "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	conn := connectAdmin(t, e.pg, target)
	defer conn.Close(context.Background())
	for q, want := range map[string]int64{
		`SELECT count(*) FROM "Odd Schema"."My Table" WHERE g = "Id" * 2`: 5,
		`SELECT count(*) FROM public.nocols`:                              2,
		`SELECT count(*) FROM public.ident`:                               3,
		`SELECT count(*) FROM public.parted`:                              20,
		`SELECT count(*) FROM public.parted_2`:                            10,
		`SELECT count(*) FROM public.scratchpad`:                          2,
		`SELECT count(*) FROM public.trgm`:                                1,
		`SELECT n FROM public._view_ident_count`:                          3, // refreshed
	} {
		var n int64
		if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d, %v; want %d", q, n, err, want)
		}
	}
	var id int64
	if err := conn.QueryRow(context.Background(), `INSERT INTO public.ident (v) VALUES ('d') RETURNING id`).Scan(&id); err != nil || id != 4 {
		t.Errorf("identity after restore: %d, %v; want 4", id, err)
	}
}
