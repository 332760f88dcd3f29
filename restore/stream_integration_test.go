package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/snapshot"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// dumpFixture builds a DHIS2 2.42 fixture database and returns its name, its database
// stream (as snapshot.Dump writes it) and the stream's trailer.
func dumpFixture(t *testing.T, p *testenv.Postgres, prefix string) (string, []byte, *manifest.Trailer) {
	t.Helper()
	ctx := context.Background()
	db := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano()%1000000)
	if _, err := fixture.Create(ctx, p.AdminDSN, db, fixture.Options{Generation: fixture.Gen242, Scale: 0.002, Owner: p.AppUser, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, db)) })
	var stream bytes.Buffer
	// With cut markers, as a snapshot writes it: every reader below skips them.
	cuts, err := dumpfmt.NewCuts(0x3DA3358B4DC173)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := snapshot.Dump(ctx, snapshot.DumpOptions{Conn: pg.Conn{DSN: p.AdminDSNFor(db)}, TempDir: t.TempDir(), PGBinDir: testenv.PGBinDir(), Cuts: cuts}, &stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(stream.Bytes(), append([]byte{0xFF, 'C'}, cuts.Marker...)); n < len(tr.Tables)+1 {
		t.Fatalf("%d cut elements in the stream of %d tables", n, len(tr.Tables))
	}
	if len(tr.Tables) < 10 || len(tr.Excluded) == 0 || len(tr.Sequences) == 0 {
		t.Fatalf("fixture too small to prove anything: %d tables, %d excluded, %d sequences", len(tr.Tables), len(tr.Excluded), len(tr.Sequences))
	}
	return db, stream.Bytes(), tr
}

// state is every table's ordered checksum and row count and every sequence's state.
func state(t *testing.T, p *testenv.Postgres, db string, tr *manifest.Trailer) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn := p.AdminConn(t, db)
	out := map[string]string{}
	for _, tb := range tr.Tables {
		q := pgx.Identifier{tb.Schema, tb.Name}.Sanitize()
		var sum *string
		var n int64
		if err := conn.QueryRow(ctx, "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)), count(*) FROM ONLY "+q+" t").Scan(&sum, &n); err != nil {
			t.Fatalf("checksum of %s: %v", q, err)
		}
		s := "empty"
		if sum != nil {
			s = *sum
		}
		out["table "+q] = fmt.Sprintf("%s/%d", s, n)
	}
	for _, s := range tr.Sequences {
		var last int64
		var called bool
		if err := conn.QueryRow(ctx, "SELECT last_value, is_called FROM "+pgx.Identifier{s.Schema, s.Name}.Sanitize()).Scan(&last, &called); err != nil {
			t.Fatalf("sequence %s.%s: %v", s.Schema, s.Name, err)
		}
		out["sequence "+s.Schema+"."+s.Name] = fmt.Sprintf("%d/%v", last, called)
	}
	for _, x := range tr.Excluded {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ONLY "+pgx.Identifier{x.Schema, x.Name}.Sanitize()).Scan(&n); err != nil {
			t.Fatalf("excluded table %s.%s: %v", x.Schema, x.Name, err)
		}
		out["excluded "+x.Schema+"."+x.Name] = fmt.Sprintf("%d rows", n)
	}
	var idx int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'").Scan(&idx); err != nil {
		t.Fatal(err)
	}
	out["indexes"] = fmt.Sprint(idx)
	return out
}

// sourceState is what a load of the stream must reproduce: the source's state, with the
// excluded (regenerable) tables present but empty.
func sourceState(t *testing.T, p *testenv.Postgres, db string, tr *manifest.Trailer) map[string]string {
	t.Helper()
	want := state(t, p, db, tr)
	for k := range want {
		if strings.HasPrefix(k, "excluded ") {
			want[k] = "0 rows"
		}
	}
	return want
}

func compare(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s is %q, source %q", what, k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d objects compared, source %d", what, len(got), len(want))
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// TestExportPlainLoadsWithPsql: the plain export of a stream, loaded by psql alone into a
// fresh database, holds every table's rows, every sequence, the excluded tables (empty)
// and the indexes of the source.
func TestExportPlainLoadsWithPsql(t *testing.T) {
	p := testenv.StartPostgres(t)
	src, stream, tr := dumpFixture(t, p, "export_src")
	want := sourceState(t, p, src, tr)

	file := filepath.Join(t.TempDir(), "set.sql")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	st, err := restore.WritePlain(context.Background(), bytes.NewReader(stream), f,
		restore.PlainOptions{TempDir: t.TempDir(), PGBinDir: testenv.PGBinDir(), ServerMajor: tr.Server.VersionNum / 10000, Title: "test"})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, tb := range tr.Tables {
		rows += tb.Rows
	}
	if st.Tables != len(tr.Tables) || st.Rows != rows || st.Sequences != len(tr.Sequences) {
		t.Errorf("wrote %+v, stream holds %d tables, %d rows, %d sequences", st, len(tr.Tables), rows, len(tr.Sequences))
	}
	dst := p.CreateDB(t, "export_plain")
	run(t, testenv.PGBin(t, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", p.AdminDSNFor(dst), "-f", file)
	compare(t, "psql-loaded plain export", want, state(t, p, dst, tr))

	// A truncated stream never yields a script that looks complete.
	if _, err := restore.WritePlain(context.Background(), bytes.NewReader(stream[:len(stream)/2]), io.Discard,
		restore.PlainOptions{TempDir: t.TempDir(), PGBinDir: testenv.PGBinDir(), ServerMajor: tr.Server.VersionNum / 10000}); err == nil {
		t.Error("a truncated stream exported without error")
	}
}

// TestExportCustomLoadsWithPgRestore: the custom export (through a scratch database and
// pg_dump) loads with pg_restore alone and matches the source; the scratch database goes.
func TestExportCustomLoadsWithPgRestore(t *testing.T) {
	p := testenv.StartPostgres(t)
	src, stream, tr := dumpFixture(t, p, "export_csrc")
	want := sourceState(t, p, src, tr)

	m := &manifest.Manifest{ID: "20260101T000000Z-e1e1", Instance: "hmis", Server: tr.Server, Tables: tr.Tables, Sequences: tr.Sequences,
		Extensions: tr.Extensions, Excluded: tr.Excluded, Parts: map[string]manifest.Part{}}
	cfg := &config.Config{Tuning: config.Tuning{TempDir: t.TempDir(), RestoreJobs: 2}}
	admin := pg.Conn{DSN: p.AdminDSN}
	file := filepath.Join(t.TempDir(), "set.dump")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	res, err := restore.Export(context.Background(), restore.ExportOptions{
		Restore: restore.Options{Config: cfg, Log: slog.New(slog.DiscardHandler), Manifest: m, Admin: &admin, Target: admin,
			DBStream: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(stream)), nil }},
		Format: restore.FormatCustom, Out: f, PGBinDir: testenv.PGBinDir(),
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Tables != len(tr.Tables) || res.Bytes == 0 || res.ScratchDB == "" {
		t.Errorf("result %+v", res)
	}
	var left int
	if err := p.AdminConn(t, "postgres").QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", res.ScratchDB).Scan(&left); err != nil || left != 0 {
		t.Errorf("scratch database %s left behind (%d, %v)", res.ScratchDB, left, err)
	}
	dst := p.CreateDB(t, "export_custom")
	run(t, testenv.PGBin(t, "pg_restore"), "--exit-on-error", "--no-owner", "-d", p.AdminDSNFor(dst), file)
	compare(t, "pg_restore-loaded custom export", want, state(t, p, dst, tr))

	if _, err := restore.Export(context.Background(), restore.ExportOptions{Restore: restore.Options{Manifest: m}, Format: "tar", Out: io.Discard}); err == nil || !strings.Contains(err.Error(), "plain or custom") {
		t.Errorf("unknown format: %v", err)
	}
}

// TestRestoreStream: Restore loads a stream (through Options.DBStream, no repository) into a
// new database as the source has it; a truncated stream fails, and the half-restored
// database is dropped and the message says so.
func TestRestoreStream(t *testing.T) {
	p := testenv.StartPostgres(t)
	src, stream, tr := dumpFixture(t, p, "restore_src")
	want := sourceState(t, p, src, tr)
	m := &manifest.Manifest{ID: "20260101T000000Z-r1r1", Instance: "hmis", Server: tr.Server, Tables: tr.Tables, Sequences: tr.Sequences,
		Extensions: tr.Extensions, Excluded: tr.Excluded, Parts: map[string]manifest.Part{}}
	cfg := &config.Config{Tuning: config.Tuning{TempDir: t.TempDir(), RestoreJobs: 2}}
	admin := pg.Conn{DSN: p.AdminDSN}
	opts := func(db string, s []byte) restore.Options {
		return restore.Options{Config: cfg, Log: slog.New(slog.DiscardHandler), Manifest: m, Admin: &admin, Target: admin.WithDatabase(db), Jobs: 2,
			DBStream: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(s)), nil }}
	}
	db := fmt.Sprintf("restore_dst_%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() { p.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, db)) })
	res, err := restore.Restore(context.Background(), opts(db, stream))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Tables != len(tr.Tables) || res.Sequences != len(tr.Sequences) {
		t.Errorf("result %+v", res)
	}
	compare(t, "restored stream", want, state(t, p, db, tr))

	cut := fmt.Sprintf("restore_cut_%d", time.Now().UnixNano()%1000000)
	_, err = restore.Restore(context.Background(), opts(cut, stream[:len(stream)*2/3]))
	if err == nil || !strings.Contains(err.Error(), "was dropped") {
		t.Fatalf("truncated stream: %v", err)
	}
	var n int
	if err := p.AdminConn(t, "postgres").QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", cut).Scan(&n); err != nil || n != 0 {
		t.Errorf("half-restored database left behind (%d, %v)", n, err)
	}
}
