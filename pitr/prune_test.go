package pitr

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/wal"
)

func TestPlanPrune(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 1, 30, 0, 0, time.UTC) }
	var bases []*BaseManifest
	for i, d := range []int{1, 8, 15, 22} {
		bases = append(bases, &BaseManifest{ID: fmt.Sprintf("base%d", d), Finished: day(d),
			StartWAL: fmt.Sprintf("0000000100000000000000%02X", 0x10*(i+1)), Part: manifest.Part{Snapshot: fmt.Sprintf("snap%d", d)},
			manifestSnapshot: fmt.Sprintf("man%d", d)})
	}
	var objs []wal.Object
	for seg := 0x08; seg <= 0x48; seg += 8 {
		f, _ := wal.ParseName(fmt.Sprintf("0000000100000000000000%02X", seg))
		objs = append(objs, wal.Object{File: f})
	}
	h, _ := wal.ParseName("00000002.history")
	objs = append(objs, wal.Object{File: h})

	// Keep 2: base15 and base22 stay; WAL before base15's 0x30 goes, the history file stays.
	plan, forget, oldest := planBases("hmis", bases, 2, nil)
	if oldest == nil || oldest.ID != "base15" || !slices.Equal(forget, []string{"snap1", "man1", "snap8", "man8"}) {
		t.Fatalf("keep 2: oldest %v, forget %v", oldest, forget)
	}
	if err := planWAL(plan, oldest, objs); err != nil {
		t.Fatal(err)
	}
	want := []string{"000000010000000000000008", "000000010000000000000010", "000000010000000000000018", "000000010000000000000020", "000000010000000000000028"}
	if !slices.Equal(plan.DeleteWAL, want) || plan.Cutoff != "000000010000000000000030" || plan.KeptWAL != 5 {
		t.Fatalf("keep 2: delete %v (cutoff %s, kept %d), want %v", plan.DeleteWAL, plan.Cutoff, plan.KeptWAL, want)
	}

	// A rollback point taken on the 10th pins base8 (the newest finished before it), and with
	// it all WAL from base8's first segment on.
	pins := map[string][]string{"20261110T120000Z-ab12": {"rollback point p1"}}
	plan, forget, oldest = planBases("hmis", bases, 2, pins)
	if oldest == nil || oldest.ID != "base8" || !slices.Equal(forget, []string{"snap1", "man1"}) {
		t.Fatalf("pinned: oldest %v, forget %v", oldest, forget)
	}
	_ = planWAL(plan, oldest, objs)
	if !slices.Equal(plan.DeleteWAL, []string{"000000010000000000000008", "000000010000000000000010", "000000010000000000000018"}) {
		t.Fatalf("pinned: delete %v", plan.DeleteWAL)
	}
	if len(plan.KeepBases) != 3 || plan.KeepBases[0].ID != "base8" || plan.KeepBases[0].Reasons[0] != "restores to pinned set 20261110T120000Z-ab12 (rollback point p1)" {
		t.Fatalf("pinned: kept %+v", plan.KeepBases)
	}

	// No base backup at all: nothing is kept as a cut-off, so nothing may be deleted.
	_, forget, oldest = planBases("hmis", nil, 2, pins)
	if oldest != nil || len(forget) != 0 {
		t.Fatalf("no bases: oldest %v, forget %v", oldest, forget)
	}
}
