package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDumpStream: Dump of a DHIS2 fixture writes the schema archive, one section per
// dumped table whose rows are the table's rows (counted as the trailer says), no section for
// excluded tables, and a trailer equal to the one returned; datavalue is in period order.
func TestDumpStream(t *testing.T) {
	p := testenv.StartPostgres(t)
	ctx := context.Background()
	db := fmt.Sprintf("dump_%d", time.Now().UnixNano()%1000000)
	res, err := fixture.Create(ctx, p.AdminDSN, db, fixture.Options{Generation: fixture.Gen242, Scale: 0.001, Owner: p.AppUser, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, db)) })
	var buf bytes.Buffer
	tr, err := Dump(ctx, DumpOptions{Conn: pg.Conn{DSN: p.AdminDSNFor(db)}, TempDir: t.TempDir(), PGBinDir: testenv.PGBinDir()}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Bytes != int64(buf.Len()) || tr.DHIS2.Flyway != res.Flyway || tr.DHIS2.Generation != "2.42" || tr.Snapshot == "" {
		t.Errorf("trailer: bytes %d (stream %d), flyway %q (fixture %q), generation %q, snapshot %q",
			tr.Bytes, buf.Len(), tr.DHIS2.Flyway, res.Flyway, tr.DHIS2.Generation, tr.Snapshot)
	}
	excluded := map[string]bool{}
	for _, x := range tr.Excluded {
		excluded[x.Schema+"."+x.Name] = true
	}
	analytics := 0
	for _, x := range tr.Excluded {
		if strings.HasPrefix(x.Name, "analytics") {
			analytics++
		}
	}
	if analytics == 0 {
		t.Errorf("no analytics table excluded: %+v", tr.Excluded)
	}
	rows := map[string]int64{}
	for _, tb := range tr.Tables {
		rows[tb.Schema+"."+tb.Name] = tb.Rows
		if excluded[tb.Schema+"."+tb.Name] {
			t.Errorf("%s.%s both dumped and excluded", tb.Schema, tb.Name)
		}
	}
	for name, n := range res.Tables {
		if k := "public." + name; !excluded[k] && rows[k] != n {
			t.Errorf("table %s: trailer says %d rows, fixture has %d", k, rows[k], n)
		}
	}

	sr, err := dumpfmt.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	sections := 0
	for {
		h, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, h.Kind)
		switch h.Kind {
		case dumpfmt.KindSchema:
			archive, err := io.ReadAll(sr)
			if err != nil || !bytes.HasPrefix(archive, []byte("PGDMP")) {
				t.Fatalf("schema section is not a pg_dump custom archive: %.10q %v", archive, err)
			}
			// The creation time is fixed so the stream's first chunk does not change daily,
			// and pg_restore still reads the archive.
			f := filepath.Join(t.TempDir(), "schema.dump")
			if err := os.WriteFile(f, archive, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(filepath.Join(testenv.PGBinDir(), "pg_restore"), "--list", f).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Archive created at 2000-01-01 00:00:00") || !strings.Contains(string(out), "TABLE public datavalue") {
				t.Errorf("pg_restore --list of the schema archive: %v\n%.600s", err, out)
			}
		case dumpfmt.KindTable:
			sections++
			k := h.Schema + "." + h.Name
			n := countLines(t, sr)
			if n != rows[k] {
				t.Errorf("section %s holds %d rows, trailer %d", k, n, rows[k])
			}
			if h.Name == "datavalue" && (len(h.OrderBy) == 0 || h.OrderBy[0] != "periodid") {
				t.Errorf("datavalue ordered by %v, want periodid first", h.OrderBy)
			}
		case dumpfmt.KindTrailer:
			var got manifest.Trailer
			if err := json.NewDecoder(sr).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if len(got.Tables) != len(tr.Tables) || len(got.Sequences) != len(tr.Sequences) || got.Snapshot != tr.Snapshot {
				t.Errorf("trailer in the stream differs from the returned one")
			}
		}
	}
	if kinds[0] != dumpfmt.KindSchema || kinds[len(kinds)-1] != dumpfmt.KindTrailer || sections != len(tr.Tables) {
		t.Errorf("sections %v (%d tables, trailer lists %d)", kinds, sections, len(tr.Tables))
	}

	// A stream cut anywhere is refused, never taken for a complete one.
	cut, err := dumpfmt.NewReader(bytes.NewReader(buf.Bytes()[:buf.Len()-1]))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = cut.Next()
	}
	if !errors.Is(err, dumpfmt.ErrCorrupt) {
		t.Errorf("truncated stream: %v, want ErrCorrupt", err)
	}
}

// countLines counts the COPY rows of a table section.
func countLines(t *testing.T, r io.Reader) int64 {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var n int64
	for sc.Scan() {
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDumpNotDHIS2: a database without flyway_schema_history dumps with a warning.
func TestDumpNotDHIS2(t *testing.T) {
	p := testenv.StartPostgres(t)
	db := p.CreateDB(t, "plain")
	p.AdminExec(t, db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' || g FROM generate_series(1, 50) g; CREATE SEQUENCE s; SELECT setval('s', 42)`)
	tr, err := Dump(context.Background(), DumpOptions{Conn: pg.Conn{DSN: p.AdminDSNFor(db)}, TempDir: t.TempDir(), PGBinDir: testenv.PGBinDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tr.DHIS2.Flyway != "" || len(tr.Warnings) == 0 || !strings.Contains(tr.Warnings[0], "flyway") {
		t.Errorf("flyway %q, warnings %v", tr.DHIS2.Flyway, tr.Warnings)
	}
	if len(tr.Tables) != 1 || tr.Tables[0].Rows != 50 || len(tr.Tables[0].OrderBy) != 1 || tr.Tables[0].OrderBy[0] != "id" {
		t.Errorf("tables %+v", tr.Tables)
	}
	if len(tr.Sequences) != 1 || tr.Sequences[0].LastValue != 42 || !tr.Sequences[0].IsCalled {
		t.Errorf("sequences %+v", tr.Sequences)
	}
}

// TestFilePaths: what of DHIS2_HOME is backed up, and why nothing when there is nothing.
func TestFilePaths(t *testing.T) {
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	write(filepath.Join(home, "dhis.conf"), "connection.url = jdbc:postgresql:dhis2\n")
	write(filepath.Join(home, "files", "dataValue", "a.png"), "png")
	f, skipped := filePaths(home)
	if skipped != "" || strings.Join(f.Paths, ",") != "dhis.conf,files" || f.Container != "files" || f.Provider != "filesystem" {
		t.Errorf("plain home: %+v %q", f, skipped)
	}

	// A container named in dhis.conf, reached through a symlink: its entries are listed.
	home2 := t.TempDir()
	store := t.TempDir()
	write(filepath.Join(store, "dataValue", "b.png"), "png")
	write(filepath.Join(store, "document", "c.pdf"), "pdf")
	write(filepath.Join(home2, "dhis.conf"), "filestore.container = store\n")
	if err := os.Symlink(store, filepath.Join(home2, "store")); err != nil {
		t.Fatal(err)
	}
	f, skipped = filePaths(home2)
	if skipped != "" || strings.Join(f.Paths, ",") != "dhis.conf,store/dataValue,store/document" {
		t.Errorf("symlinked container: %+v %q", f, skipped)
	}

	// An S3 file store: only dhis.conf here.
	home3 := t.TempDir()
	write(filepath.Join(home3, "dhis.conf"), "filestore.provider = aws-s3\n")
	if f, skipped = filePaths(home3); skipped != "" || strings.Join(f.Paths, ",") != "dhis.conf" || f.Provider != "aws-s3" {
		t.Errorf("s3 store: %+v %q", f, skipped)
	}

	if _, skipped = filePaths(t.TempDir()); !strings.Contains(skipped, "neither dhis.conf nor") {
		t.Errorf("empty home: %q", skipped)
	}
}

// TestApplyTrailer: the manifest takes the dump's findings; a back-dated set keeps its time.
func TestApplyTrailer(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 0, 0, 0, time.FixedZone("x", 3600))
	tr := &manifest.Trailer{Time: at, Database: "dhis2", Warnings: []string{"w"}, Tables: []manifest.Table{{Schema: "public", Name: "t", Rows: 3}}}
	m := &manifest.Manifest{Warnings: []string{"first"}}
	applyTrailer(m, tr, time.Time{})
	if !m.Time.Equal(at) || m.Time.Location() != time.UTC || m.Database != "dhis2" || len(m.Tables) != 1 || strings.Join(m.Warnings, ",") != "first,w" {
		t.Errorf("manifest %+v", m)
	}
	back := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	applyTrailer(m, tr, back)
	if !m.Time.Equal(back) {
		t.Errorf("back-dated set got time %v", m.Time)
	}
}

// TestStreamOrder: tables of 2 MiB and more come first by schema and name, then the small
// ones, largest size class first, then name; sizes within a class do not reorder.
func TestStreamOrder(t *testing.T) {
	tb := func(schema, name string, bytes int64) pg.Table {
		return pg.Table{Schema: schema, Name: name, Bytes: bytes}
	}
	in := []pg.Table{
		tb("public", "audit", 1_400_000), tb("public", "datavalue", 390<<20), tb("public", "period", 8192),
		tb("public", "event", 180<<20), tb("public", "userinfo", 221_184), tb("public", "categorycombo", 16384),
		tb("public", "api_token", 16384), tb("public", "enrollment", 17<<20), tb("audit", "log", 100<<20),
		tb("public", "fileresource", 81920), tb("public", "empty", 0), tb("public", "message", 974_848),
	}
	var got []string
	for _, x := range streamOrder(in) {
		got = append(got, x.Name)
	}
	want := []string{"log", "datavalue", "enrollment", "event", "audit", "message", "userinfo", "fileresource",
		"api_token", "categorycombo", "period", "empty"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v", got, want)
	}
	if in[0].Name != "audit" {
		t.Errorf("streamOrder changed its argument")
	}
	// A table growing within its size class keeps its place.
	in[9].Bytes = 90000 // fileresource: 80 KiB -> 88 KiB, class of 64..128 KiB
	var again []string
	for _, x := range streamOrder(in) {
		again = append(again, x.Name)
	}
	if strings.Join(again, " ") != strings.Join(want, " ") {
		t.Errorf("order after growth %v, want %v", again, want)
	}
}

// TestStableHead: the creation time of a custom archive header becomes 2000-01-01 for
// archive versions before and from 1.15, whatever the write sizes; other bytes pass as they
// are, and a header that is not a custom archive is left alone.
func TestStableHead(t *testing.T) {
	le := func(v int64) []byte { return []byte{0, byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	head := func(minor byte, tm [7]int64) []byte {
		b := []byte("PGDMP")
		b = append(b, 1, minor, 0, 4, 8, 1)
		if minor >= 15 {
			b = append(b, 0)
		} else {
			b = append(b, le(0)...)
		}
		for _, v := range tm {
			b = append(b, le(v)...)
		}
		return append(b, []byte("\x00\x00\x00\x00\x07dbname and the TOC that follows...")...)
	}
	now := [7]int64{59, 30, 13, 3, 11, 126, 0}
	for _, minor := range []byte{14, 15, 16} {
		in, want := head(minor, now), head(minor, fixedTime)
		for _, step := range []int{1, 7, len(in)} {
			var out bytes.Buffer
			s := &stableHead{w: &out}
			for i := 0; i < len(in); i += step {
				if _, err := s.Write(in[i:min(i+step, len(in))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("version 1.%d, writes of %d: got %q, want %q", minor, step, out.Bytes(), want)
			}
		}
	}
	for _, in := range [][]byte{[]byte("PGDMP\x01\x0e\x00\x04\x08\x03 not custom format, tar" + strings.Repeat(".", 100)), []byte("short")} {
		var out bytes.Buffer
		s := &stableHead{w: &out}
		if _, err := s.Write(in); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil || !bytes.Equal(out.Bytes(), in) {
			t.Errorf("%q changed to %q (%v)", in, out.Bytes(), err)
		}
	}
}
