package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"strings"
	"testing"

	"github.com/restic/chunker"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
)

// testPol is an irreducible polynomial (restic's chunker tests use it).
const testPol = chunker.Pol(0x3DA3358B4DC173)

// stream builds a database stream: a schema section, tables a, b, c with the given bodies, a
// trailer.
func stream(t *testing.T, a, b, c []byte) []byte {
	return streamCuts(t, nil, a, b, c)
}

// streamCuts is stream with a cut after the schema and a long cut after table a.
func streamCuts(t *testing.T, cuts *dumpfmt.Cuts, a, b, c []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := dumpfmt.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetCuts(cuts); err != nil {
		t.Fatal(err)
	}
	sec := func(h dumpfmt.Header, body []byte) {
		if err := w.Begin(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
	}
	sec(dumpfmt.Header{Kind: dumpfmt.KindSchema}, bytes.Repeat([]byte("PGDMP schema "), 100))
	if err := w.Cut(); err != nil {
		t.Fatal(err)
	}
	sec(dumpfmt.Header{Kind: dumpfmt.KindTable, Schema: "public", Name: "a"}, a)
	if err := w.LongCut(); err != nil {
		t.Fatal(err)
	}
	sec(dumpfmt.Header{Kind: dumpfmt.KindTable, Schema: "public", Name: "b"}, b)
	sec(dumpfmt.Header{Kind: dumpfmt.KindTable, Schema: "other", Name: "c"}, c)
	sec(dumpfmt.Header{Kind: dumpfmt.KindTrailer}, []byte(`{"time":"x"}`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func random(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func rowOf(t *testing.T, rows []Row, src string) Row {
	t.Helper()
	for _, r := range rows {
		if r.Source == src {
			return r
		}
	}
	t.Fatalf("no row for %q in %+v", src, rows)
	return Row{}
}

func TestAttributeFindsTheChangedTable(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	a, b, c := random(r, 6<<20), random(r, 6<<20), random(r, 6<<20)
	day1 := stream(t, a, b, c)
	b2 := append([]byte(nil), b...)
	copy(b2[3<<20:], "an updated row in the middle of table b\n")
	day2 := stream(t, a, b2, c)

	chunks1, spans1, dig1, n1, err := chunkStream(bytes.NewReader(day1), testPol)
	if err != nil {
		t.Fatal(err)
	}
	if n1 != int64(len(day1)) {
		t.Fatalf("scanned %d bytes, stream has %d", n1, len(day1))
	}
	// Chunks and spans each cover the stream exactly once, in order.
	var at int64
	for _, c := range chunks1 {
		if c.Start != at {
			t.Fatalf("chunk at %d, want %d", c.Start, at)
		}
		at += c.Len
	}
	if at != n1 {
		t.Fatalf("chunks cover %d of %d bytes", at, n1)
	}
	at = 0
	for _, s := range spans1 {
		if s.Start != at {
			t.Fatalf("span %q starts at %d, want %d", s.Source, s.Start, at)
		}
		at = s.End
	}
	if at != n1 {
		t.Fatalf("spans cover %d of %d bytes", at, n1)
	}
	known := map[string]bool{}
	first := attribute(chunks1, spans1, known, dig1, nil, nil)
	if got := rowOf(t, first, "table a"); got.NewBytes == 0 || got.Bytes < int64(len(a)) {
		t.Errorf("first stream: table a %+v, want all of it new", got)
	}

	chunks2, spans2, dig2, _, err := chunkStream(bytes.NewReader(day2), testPol)
	if err != nil {
		t.Fatal(err)
	}
	rows := attribute(chunks2, spans2, known, dig2, dig1, nil)
	rb := rowOf(t, rows, "table b")
	if !rb.Changed || rb.NewBytes == 0 || rb.NewChunks == 0 {
		t.Errorf("table b = %+v, want changed with new bytes", rb)
	}
	if rb.NewBytes > 3*chunker.MaxSize {
		t.Errorf("table b: %d new bytes for a one-row change", rb.NewBytes)
	}
	for _, src := range []string{"table a", "other.c", "trailer", "schema: archive TOC"} {
		if src == "other.c" {
			src = "table other.c"
		}
		got := rowOf(t, rows, src)
		if got.Changed || got.NewBytes != 0 {
			t.Errorf("%s = %+v, want unchanged and no new bytes", src, got)
		}
	}
	var sum int64
	for _, r := range rows {
		sum += r.NewBytes
	}
	old := map[string]bool{}
	for _, c := range chunks1 {
		old[c.ID] = true
	}
	var newLen int64
	for _, c := range chunks2 {
		if !old[c.ID] {
			newLen += c.Len
		}
	}
	if newLen == 0 || sum != newLen {
		t.Errorf("new bytes over all sources %d, want the changed chunks' %d", sum, newLen)
	}
}

func TestSchemaArchiveHeaderIsItsOwnSource(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	s := stream(t, random(r, 1000), random(r, 1000), random(r, 1000))
	_, spans, _, _, err := chunkStream(bytes.NewReader(s), testPol)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range spans {
		names = append(names, sp.Source)
	}
	want := []string{"stream framing", "schema: archive header (pg_dump timestamp)", "schema: archive TOC", "table a", "table b", "table other.c", "trailer", "stream framing"}
	if len(names) != len(want) {
		t.Fatalf("sources %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("sources %q, want %q", names, want)
		}
	}
}

// TestCutsAndPadsAreTheirOwnSource: the bytes of cuts and pads are attributed to them, not
// to a table or to the framing.
func TestCutsAndPadsAreTheirOwnSource(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	cuts, err := dumpfmt.NewCuts(uint64(testPol))
	if err != nil {
		t.Fatal(err)
	}
	s := streamCuts(t, cuts, random(r, 1000), random(r, 1000), random(r, 1000))
	_, spans, _, _, err := chunkStream(bytes.NewReader(s), testPol)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var cutBytes int64
	for _, sp := range spans {
		names = append(names, sp.Source)
		if sp.Source == srcCuts {
			cutBytes += sp.End - sp.Start
		}
	}
	want := []string{"stream framing", "schema: archive header (pg_dump timestamp)", "schema: archive TOC", srcCuts, "table a", srcCuts, srcCuts, srcCuts, "table b", "table other.c", "trailer", "stream framing"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Fatalf("sources %q, want %q", names, want)
	}
	if want := int64(3*(2+dumpfmt.CutMarkerSize) + 2 + dumpfmt.PadSize); cutBytes != want {
		t.Fatalf("cuts and pads: %d bytes, want %d", cutBytes, want)
	}
}

// TestSnapshotListing decodes `restic snapshots --json` as chunkattr reads it: the root tree,
// the set and part tags, the time order and the summary's added bytes.
func TestSnapshotListing(t *testing.T) {
	in := `[{"time":"2026-12-03T11:50:43.1+00:00","tree":"bb","id":"2","tags":["set:S2","part:db"],"summary":{"data_added":7,"data_added_packed":3}},
	        {"time":"2026-12-03T11:50:29.9+00:00","tree":"aa","id":"1","tags":["set:S1","part:files"]}]`
	var all []snapshot
	if err := json.Unmarshal([]byte(in), &all); err != nil {
		t.Fatal(err)
	}
	if !all[1].Time.Before(all[0].Time) {
		t.Errorf("times not parsed: %v, %v", all[0].Time, all[1].Time)
	}
	s := all[0]
	if s.Tree != "bb" || s.Tag("set") != "S2" || s.Tag("part") != "db" || s.Summary == nil || s.Summary.DataAdded != 7 || s.Summary.DataAddedPacked != 3 {
		t.Errorf("snapshot decoded as %+v (tree %q)", s.Snapshot, s.Tree)
	}
	if all[1].Summary != nil || all[1].Tag("part") != "files" {
		t.Errorf("second snapshot decoded as %+v", all[1].Snapshot)
	}
}
