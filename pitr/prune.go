package pitr

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/wal"
)

// PrunePlan says which base backups and WAL files retention keeps and removes, and why.
type PrunePlan struct {
	Instance    string        `json:"instance"`
	KeepBases   []PlannedBase `json:"keep_bases"`
	ForgetBases []PlannedBase `json:"forget_bases"`
	// Cutoff is the first WAL segment kept: that of the oldest kept base backup.
	Cutoff    string   `json:"cutoff,omitempty"`
	DeleteWAL []string `json:"delete_wal"`
	KeptWAL   int      `json:"kept_wal"`
	Applied   bool     `json:"applied"`
}

// PlannedBase is one base backup in a PrunePlan.
type PlannedBase struct {
	ID       string    `json:"id"`
	Finished time.Time `json:"finished"`
	StartWAL string    `json:"start_wal"`
	Reasons  []string  `json:"reasons"`
}

// PruneOptions configure Prune.
type PruneOptions struct {
	Instance string
	Repo     *restic.Repo
	Store    *wal.Store
	Keep     int // newest base backups kept
	// Pins maps snapshot set IDs (which start with their UTC time, 20261127T020000Z-…) to why
	// they are pinned (keep marks, rollback points): the base backup a restore to that time
	// starts from is kept, with all WAL after it.
	Pins  map[string][]string
	Apply bool
}

// Prune keeps the newest Keep base backups and those a pinned set's time needs, forgets the
// others, and deletes the WAL files older than the oldest kept base backup's first segment.
// Without base backups nothing is deleted.
func Prune(ctx context.Context, o PruneOptions) (*PrunePlan, error) {
	bases, err := ListBase(ctx, o.Repo, o.Instance)
	if err != nil {
		return nil, err
	}
	plan, forget, oldestKept := planBases(o.Instance, bases, o.Keep, o.Pins)
	if oldestKept == nil {
		// No base backup: every archived WAL file may still be needed by one taken next.
		return plan, nil
	}
	objs, err := o.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	if err := planWAL(plan, oldestKept, objs); err != nil {
		return nil, err
	}
	if !o.Apply {
		return plan, nil
	}
	if err := o.Repo.Forget(ctx, forget...); err != nil {
		return nil, fmt.Errorf("forgetting old base backups: %w", err)
	}
	if err := o.Store.Delete(ctx, plan.DeleteWAL); err != nil {
		return nil, err
	}
	plan.Applied = true
	return plan, nil
}

// newestBefore returns the newest base backup finished before t, or nil.
func newestBefore(bases []*BaseManifest, t time.Time) *BaseManifest {
	var best *BaseManifest
	for _, b := range bases {
		if b.Finished.Before(t) {
			best = b
		}
	}
	return best
}

// planBases decides which base backups stay (the newest keep, and for each pinned set the one a
// restore to its time starts from) and returns the restic snapshots of the others and the
// oldest kept base backup (nil when there is none).
func planBases(instance string, bases []*BaseManifest, keep int, pins map[string][]string) (*PrunePlan, []string, *BaseManifest) {
	plan := &PrunePlan{Instance: instance, KeepBases: []PlannedBase{}, ForgetBases: []PlannedBase{}, DeleteWAL: []string{}}
	reasons := map[string][]string{}
	for i := len(bases) - 1; i >= 0 && i >= len(bases)-keep; i-- {
		reasons[bases[i].ID] = append(reasons[bases[i].ID], fmt.Sprintf("one of the newest %d", keep))
	}
	pinIDs := make([]string, 0, len(pins))
	for id := range pins {
		pinIDs = append(pinIDs, id)
	}
	sort.Strings(pinIDs)
	for _, id := range pinIDs {
		ts, _, _ := strings.Cut(id, "-")
		t, err := time.Parse("20060102T150405Z", ts)
		if err != nil {
			continue
		}
		if b := newestBefore(bases, t); b != nil {
			reasons[b.ID] = append(reasons[b.ID], fmt.Sprintf("restores to pinned set %s (%s)", id, strings.Join(pins[id], ", ")))
		}
	}
	var oldestKept *BaseManifest
	var forget []string
	for _, b := range bases {
		pb := PlannedBase{ID: b.ID, Finished: b.Finished, StartWAL: b.StartWAL, Reasons: reasons[b.ID]}
		if len(pb.Reasons) > 0 {
			plan.KeepBases = append(plan.KeepBases, pb)
			if oldestKept == nil {
				oldestKept = b
			}
			continue
		}
		pb.Reasons = []string{"not among the kept base backups"}
		plan.ForgetBases = append(plan.ForgetBases, pb)
		forget = append(forget, b.Part.Snapshot)
		if b.manifestSnapshot != "" {
			forget = append(forget, b.manifestSnapshot)
		}
	}
	return plan, forget, oldestKept
}

// planWAL marks for deletion the archived files before the oldest kept base backup's first
// segment (same or earlier timeline); timeline history files always stay.
func planWAL(plan *PrunePlan, oldestKept *BaseManifest, objs []wal.Object) error {
	cut, err := wal.ParseName(oldestKept.StartWAL)
	if err != nil {
		return err
	}
	plan.Cutoff = cut.Name
	for _, obj := range objs {
		if obj.Kind != wal.KindHistory && obj.Seg < cut.Seg && obj.Timeline <= cut.Timeline {
			plan.DeleteWAL = append(plan.DeleteWAL, obj.Name)
		} else {
			plan.KeptWAL++
		}
	}
	return nil
}
