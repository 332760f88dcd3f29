package catalog

import (
	"go.etcd.io/bbolt"

	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Catalog {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "state", FileName))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var t0 = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)

func snap(id, inst string, hours int) SnapshotRecord {
	return SnapshotRecord{ID: id, Instance: inst, Time: t0.Add(time.Duration(hours) * time.Hour),
		Manifest: json.RawMessage(`{"id":"` + id + `","tables":{"datavalue":12}}`)}
}

func ids(recs []SnapshotRecord) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func TestSnapshots(t *testing.T) {
	c := openTemp(t)
	for _, r := range []SnapshotRecord{
		snap("20261128T020000Z-cd34", "hmis", 24),
		snap("20261127T020000Z-ab12", "hmis", 0),
		snap("20261127T020000Z-ab99", "sierra", 1),
		snap("20261129T020000Z-ef56", "hmis", 48),
	} {
		if err := c.PutSnapshot(r); err != nil {
			t.Fatal(err)
		}
	}
	all, err := c.Snapshots("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), "20261127T020000Z-ab12,20261127T020000Z-ab99,20261128T020000Z-cd34,20261129T020000Z-ef56"; got != want {
		t.Errorf("all = %s, want %s", got, want)
	}
	hmis, _ := c.Snapshots("hmis")
	if len(hmis) != 3 || hmis[0].Instance != "hmis" || string(hmis[0].Manifest) != `{"id":"20261127T020000Z-ab12","tables":{"datavalue":12}}` {
		t.Errorf("hmis = %+v", hmis)
	}
	if !hmis[0].Time.Equal(t0) {
		t.Errorf("time = %v", hmis[0].Time)
	}

	tests := []struct {
		q, want string
		err     error
	}{
		{"20261128T020000Z-cd34", "20261128T020000Z-cd34", nil},
		{"20261128", "20261128T020000Z-cd34", nil},
		{"20261127T020000Z-ab1", "20261127T020000Z-ab12", nil},
		{"20261127", "", ErrAmbiguous},
		{"2026", "", ErrAmbiguous},
		{"2025", "", ErrNotFound},
		{"zzz", "", ErrNotFound},
		{"", "", ErrNotFound},
	}
	for _, tt := range tests {
		r, err := c.Snapshot(tt.q)
		if tt.err != nil {
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), `"`+tt.q+`"`) {
				t.Errorf("Snapshot(%q) err = %v, want %v naming the prefix", tt.q, err, tt.err)
			}
			continue
		}
		if err != nil || r.ID != tt.want {
			t.Errorf("Snapshot(%q) = %s, %v; want %s", tt.q, r.ID, err, tt.want)
		}
	}
	_, err = c.Snapshot("20261127")
	if !strings.Contains(err.Error(), "20261127T020000Z-ab12") || !strings.Contains(err.Error(), "20261127T020000Z-ab99") {
		t.Errorf("ambiguous error does not name the candidates: %v", err)
	}

	if err := c.DeleteSnapshot("20261128T020000Z-cd34"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot("20261128"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted set still found: %v", err)
	}
	if err := c.DeleteSnapshot("missing"); err != nil {
		t.Errorf("deleting a missing set: %v", err)
	}
	if err := c.PutSnapshot(SnapshotRecord{ID: "x", Instance: "hmis"}); err == nil {
		t.Errorf("set without time accepted")
	}
	if err := c.PutSnapshot(SnapshotRecord{ID: "x", Instance: "hmis", Time: t0, Manifest: json.RawMessage(`{bad`)}); err == nil {
		t.Errorf("invalid manifest JSON accepted")
	}
}

func TestReplaceSnapshots(t *testing.T) {
	c := openTemp(t)
	for _, r := range []SnapshotRecord{snap("a1", "hmis", 0), snap("a2", "hmis", 1), snap("b1", "sierra", 0)} {
		if err := c.PutSnapshot(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.ReplaceSnapshots("hmis", []SnapshotRecord{snap("a3", "hmis", 3), snap("a2", "hmis", 1)}); err != nil {
		t.Fatal(err)
	}
	all, _ := c.Snapshots("")
	if got := ids(all); got != "b1,a2,a3" {
		t.Errorf("after replace: %s", got)
	}
	// A record of another instance aborts the whole replacement.
	if err := c.ReplaceSnapshots("hmis", []SnapshotRecord{snap("a4", "hmis", 4), snap("b2", "sierra", 4)}); err == nil {
		t.Errorf("foreign instance accepted")
	}
	all, _ = c.Snapshots("")
	if got := ids(all); got != "b1,a2,a3" {
		t.Errorf("failed replace changed the index: %s", got)
	}
	if err := c.ReplaceSnapshots("", nil); err != nil {
		t.Fatal(err)
	}
	if all, _ = c.Snapshots(""); len(all) != 0 {
		t.Errorf("replace all with nothing left %s", ids(all))
	}
}

func TestDrillsAndRuns(t *testing.T) {
	c := openTemp(t)
	for i, d := range []DrillRecord{
		{ID: "d2", SetID: "s2", Instance: "hmis", Start: t0.Add(2 * time.Hour), OK: false, Report: json.RawMessage(`{"checks":[]}`)},
		{ID: "d1", SetID: "s1", Instance: "hmis", Start: t0, End: t0.Add(time.Minute), OK: true, RestoreSeconds: 42.5, DataAgeSeconds: 3600},
		{ID: "d3", SetID: "s3", Instance: "sierra", Start: t0.Add(time.Hour), OK: true},
	} {
		if err := c.PutDrill(d); err != nil {
			t.Fatal(i, err)
		}
	}
	ds, err := c.Drills("hmis")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].ID != "d1" || ds[1].ID != "d2" || !ds[0].OK || ds[0].RestoreSeconds != 42.5 || string(ds[1].Report) != `{"checks":[]}` {
		t.Errorf("drills = %+v", ds)
	}
	if all, _ := c.Drills(""); len(all) != 3 || all[1].ID != "d3" {
		t.Errorf("all drills = %+v", all)
	}

	runs := []RunRecord{
		{ID: "r1", Instance: "hmis", Job: "snapshot", Start: t0, Outcome: OutcomeRunning},
		{ID: "r2", Instance: "hmis", Job: "verify", Start: t0.Add(time.Hour), Outcome: OutcomeFailed, Error: "boom"},
		{ID: "r3", Instance: "sierra", Job: "snapshot", Start: t0.Add(2 * time.Hour), Outcome: OutcomeSkipped},
		{ID: "r4", Instance: "hmis", Job: "snapshot", Start: t0.Add(24 * time.Hour), Outcome: OutcomeOK, Bytes: 1 << 30},
	}
	for _, r := range runs {
		if err := c.PutRun(r); err != nil {
			t.Fatal(err)
		}
	}
	// Finish r1.
	runs[0].Outcome, runs[0].End = OutcomeOK, t0.Add(time.Minute)
	if err := c.PutRun(runs[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.PutRun(RunRecord{ID: "r5", Outcome: "maybe"}); err == nil {
		t.Errorf("unknown outcome accepted")
	}
	tests := []struct {
		inst, job string
		since     time.Time
		want      string
	}{
		{"", "", time.Time{}, "r1,r2,r3,r4"},
		{"hmis", "", time.Time{}, "r1,r2,r4"},
		{"hmis", "snapshot", time.Time{}, "r1,r4"},
		{"", "snapshot", t0.Add(time.Hour), "r3,r4"},
		{"sierra", "verify", time.Time{}, ""},
	}
	for _, tt := range tests {
		got, err := c.Runs(tt.inst, tt.job, tt.since)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range got {
			s = append(s, r.ID)
		}
		if strings.Join(s, ",") != tt.want {
			t.Errorf("Runs(%q,%q,%v) = %v, want %s", tt.inst, tt.job, tt.since, s, tt.want)
		}
	}
	got, _ := c.Runs("hmis", "snapshot", time.Time{})
	if got[0].Outcome != OutcomeOK || got[1].Bytes != 1<<30 {
		t.Errorf("runs = %+v", got)
	}
	if n, err := c.PruneRuns(t0.Add(3 * time.Hour)); err != nil || n != 3 {
		t.Errorf("PruneRuns = %d, %v", n, err)
	}
	if left, _ := c.Runs("", "", time.Time{}); len(left) != 1 || left[0].ID != "r4" {
		t.Errorf("after prune: %+v", left)
	}
}

func TestJSON(t *testing.T) {
	c := openTemp(t)
	type clone struct {
		Target string `json:"target"`
		SetID  string `json:"set_id"`
	}
	var v clone
	if ok, err := c.GetJSON("clones", "staging", &v); ok || err != nil {
		t.Fatalf("empty bucket: %v %v", ok, err)
	}
	if err := c.PutJSON("clones", "staging", clone{"staging", "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutJSON("clones", "training", clone{"training", "s2"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.GetJSON("clones", "staging", &v); !ok || err != nil || v.SetID != "s1" {
		t.Fatalf("GetJSON = %v %v %+v", ok, err, v)
	}
	var keys []string
	err := c.ListJSON("clones", func(k string, raw []byte) error {
		keys = append(keys, k)
		// Writing from inside the callback must not deadlock.
		return c.PutJSON("seen", k, json.RawMessage(raw))
	})
	if err != nil || strings.Join(keys, ",") != "staging,training" {
		t.Fatalf("ListJSON = %v %v", keys, err)
	}
	stop := errors.New("stop")
	if err := c.ListJSON("clones", func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error not returned: %v", err)
	}
	if err := c.DeleteKey("clones", "staging"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.GetJSON("clones", "staging", &v); ok {
		t.Errorf("deleted key still there")
	}
	if err := c.DeleteKey("nobucket", "x"); err != nil {
		t.Errorf("deleting from a missing bucket: %v", err)
	}
	if err := c.ListJSON("nobucket", func(string, []byte) error { return stop }); err != nil {
		t.Errorf("listing a missing bucket: %v", err)
	}
	// Generic buckets never collide with the snapshot index.
	if err := c.PutJSON("snapshots", "x", 1); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Snapshots(""); len(s) != 0 {
		t.Errorf("generic bucket leaked into snapshots: %+v", s)
	}
}

func TestSharedAndLock(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir) // a directory means dir/catalog.db
	if err != nil {
		t.Fatal(err)
	}
	if c.Path() != filepath.Join(dir, FileName) {
		t.Errorf("path = %s", c.Path())
	}
	if err := c.PutSnapshot(snap("a1", "hmis", 0)); err != nil {
		t.Fatal(err)
	}
	// A second user of the catalogue (another command while a snapshot runs) is not
	// blocked: the file is held only during transactions.
	c2, err := open(Path(dir), 100*time.Millisecond)
	if err != nil {
		t.Fatalf("second open while the first is in use: %v", err)
	}
	if r, err := c2.Snapshot("a1"); err != nil || r.Instance != "hmis" {
		t.Fatalf("second user reads: %+v %v", r, err)
	}
	// While someone holds the file (a transaction in another process), a transaction waits
	// for the timeout and then fails naming the lock.
	held, err := bbolt.Open(Path(dir), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c2.PutSnapshot(snap("a2", "hmis", 1))
	held.Close()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "wait for the other command") {
		t.Fatalf("write while held: %v", err)
	}
	if err := c.PutSnapshot(snap("a2", "hmis", 1)); err != nil {
		t.Fatalf("write after release: %v", err)
	}
}
