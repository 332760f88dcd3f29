package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/snapshot"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// TestSnapshotCutMarkers: the database stream holds a cut element after the schema and after
// every table, with the marker solved for the repository's chunker polynomial; the marker is
// read from restic once, by init, and then from the catalogue; verify (a full restore drill with exact
// row counts) and export read the stream as before.
func TestSnapshotCutMarkers(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	log := e.useMock("")
	e.init()
	before, _ := os.ReadFile(log)
	m := e.snapshot()
	m2 := e.snapshot()
	calls, _ := os.ReadFile(log)
	if n := strings.Count(string(calls[len(before):]), "cat config"); n != 0 {
		t.Errorf("two snapshots asked restic for the repository config %d times, want none (init recorded it in the catalogue)", n)
	}
	if n := strings.Count(string(calls[len(before):]), " snapshots "); n != 0 {
		t.Errorf("two snapshots after clean runs listed the repository's snapshots %d times, want 0 (no orphan sweep without a pending set)", n)
	}

	var cfg restic.Config
	e.resticJSON(&cfg, "--json", "cat", "config")
	pol, err := cfg.Polynomial()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(catalog.Path(e.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	var rec snapshot.ChunkerRecord
	var found int
	if err := cat.ListJSON(snapshot.BucketChunker, func(_ string, raw []byte) error {
		found++
		return json.Unmarshal(raw, &rec)
	}); err != nil || found != 1 {
		t.Fatalf("catalogue chunker records: %d (%v)", found, err)
	}
	if rec.RepositoryID != cfg.ID || rec.Polynomial != cfg.ChunkerPolynomial {
		t.Fatalf("catalogue record %+v does not fit the repository (id %s, polynomial %s)", rec, cfg.ID, cfg.ChunkerPolynomial)
	}
	cuts, err := dumpfmt.NewCuts(pol)
	if err != nil {
		t.Fatal(err)
	}
	marker := cuts.Marker
	if !dumpfmt.IsCutMarker(marker, pol) {
		t.Fatal("the marker does not meet the split condition")
	}

	for _, set := range []*manifest.Manifest{m, m2} {
		stream := e.resticDump(set.Parts["db"].Snapshot, "/"+manifest.DBFile)
		if !bytes.HasPrefix(stream, []byte(dumpfmt.Magic)) {
			t.Fatalf("stream starts %q", stream[:30])
		}
		// A cut after the schema and after every table; a long cut (a second cut after a
		// pad) after the tables of 2 MiB and more.
		pads := bytes.Count(stream, append([]byte{0xFF, 'P'}, cuts.Pad...))
		if n := bytes.Count(stream, append([]byte{0xFF, 'C'}, marker...)); n != len(set.Tables)+1+pads {
			t.Errorf("set %s: %d cut elements and %d pads, want %d cuts (after the schema and each of %d tables, and after each pad)", set.ID, n, pads, len(set.Tables)+1+pads, len(set.Tables))
		}
		if int64(len(stream)) != set.Parts["db"].Bytes {
			t.Errorf("set %s: stream %d bytes, manifest %d", set.ID, len(stream), set.Parts["db"].Bytes)
		}
	}
	r := e.mustRun("verify", "latest", "--json")
	if rep := parseVerify(t, r); !rep.OK {
		t.Fatalf("verify of a set with cuts failed:\n%s", r)
	}
	out := e.mustRun("export", "latest", "--output", e.dir+"/export.sql")
	sql, err := os.ReadFile(e.dir + "/export.sql")
	if err != nil || !bytes.Contains(sql, []byte("-- Data of public.datavalue")) || bytes.Contains(sql, []byte("cut marker")) {
		t.Errorf("export of a set with cuts: %v (%d bytes)\n%s", err, len(sql), out)
	}
}

// resticDump returns a file of a restic snapshot (real restic).
func (e *env) resticDump(id, path string) []byte {
	e.t.Helper()
	cmd := exec.Command(testenv.Restic(e.t), "--no-cache", "--no-lock", "dump", id, path)
	cmd.Env = append([]string{"RESTIC_REPOSITORY=" + e.repoURL, "RESTIC_PASSWORD_FILE=" + e.passFile, "PATH=/usr/bin:/bin"}, e.s3.Env()...)
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("restic dump %s %s: %v", id, path, err)
	}
	return out
}
