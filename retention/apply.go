package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/snapshot"
)

// Catalogue buckets used by retention.
const (
	KeepBucket    = "keep"              // keep marks (key: set ID)
	PointsBucket  = "points"            // rollback points (owned by lifecycle; read here)
	JournalBucket = "retention-journal" // apply journal (key: instance)
	StateBucket   = "retention"         // "last-prune"
)

// KeepMark pins a set (`dhis2-life keep ID`).
type KeepMark struct {
	SetID   string    `json:"set_id"`
	Created time.Time `json:"created"`
	Note    string    `json:"note,omitempty"`
}

// Pins returns, per set ID, why it is pinned: keep marks and rollback points.
func Pins(cat *catalog.Catalog) (map[string][]string, error) {
	pins := map[string][]string{}
	err := cat.ListJSON(KeepBucket, func(key string, raw []byte) error {
		var k KeepMark
		if json.Unmarshal(raw, &k) == nil && k.SetID != "" {
			key = k.SetID
		}
		why := "keep mark"
		if k.Note != "" {
			why += " (" + k.Note + ")"
		}
		pins[key] = append(pins[key], why)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Rollback points: any record naming a set in one of these fields pins it.
	err = cat.ListJSON(PointsBucket, func(key string, raw []byte) error {
		var rec map[string]any
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("decoding rollback point %s: %w", key, err)
		}
		for _, f := range []string{"set_id", "set", "snapshot", "snapshot_set", "set_ids"} {
			switch v := rec[f].(type) {
			case string:
				if v != "" {
					pins[v] = append(pins[v], "rollback point "+key)
				}
			case []any:
				for _, x := range v {
					if s, ok := x.(string); ok && s != "" {
						pins[s] = append(pins[s], "rollback point "+key)
					}
				}
			}
		}
		return nil
	})
	return pins, err
}

// InstancePlan is the plan of one instance.
type InstancePlan struct {
	Instance string
	Policy   *Policy
	Items    []Item
	// Resumed names the interrupted run whose archive duties were carried over.
	Resumed string
}

// BuildPlan plans the retention of an instance from the catalogue (sets, pins, archives) and
// any interrupted apply journal: a set that an interrupted run had due for archive stays
// archive-then-forget unless the fresh plan keeps it.
func BuildPlan(cfg *config.Config, cat *catalog.Catalog, instance string, loc *time.Location) (*InstancePlan, error) {
	recs, err := cat.Snapshots(instance)
	if err != nil {
		return nil, err
	}
	pins, err := Pins(cat)
	if err != nil {
		return nil, err
	}
	archived := map[string]string{}
	arcs, err := Records(cat)
	if err != nil {
		return nil, err
	}
	for _, a := range arcs {
		archived[a.ID] = a.Object
	}
	sets := make([]Set, 0, len(recs))
	for _, r := range recs {
		sets = append(sets, Set{ID: r.ID, Instance: r.Instance, Time: r.Time, Pinned: pins[r.ID], Archived: archived[r.ID]})
	}
	p := &InstancePlan{Instance: instance, Policy: PolicyFrom(cfg.RetentionFor(instance))}
	p.Items = Plan(p.Policy, sets, loc)
	j, err := loadJournal(cat, instance)
	if err != nil {
		return nil, err
	}
	if j != nil {
		p.Resumed = j.Started.Format(time.RFC3339)
		for i, it := range p.Items {
			old, ok := j.Items[it.ID]
			if ok && old.Decision == ArchiveThenForget && it.Decision == Forget {
				p.Items[i].Decision = ArchiveThenForget
				p.Items[i].Classes = old.Classes
				p.Items[i].Reasons = append(p.Items[i].Reasons, "due for archive in the interrupted run of "+p.Resumed)
			}
		}
	}
	return p, nil
}

// journal is the persisted state of an apply run of one instance.
type journal struct {
	Started time.Time               `json:"started"`
	Items   map[string]journalEntry `json:"items"`
}

type journalEntry struct {
	Decision string   `json:"decision"`
	Classes  []string `json:"classes,omitempty"`
	State    string   `json:"state"` // planned | archived | forgotten | done
}

func loadJournal(cat *catalog.Catalog, instance string) (*journal, error) {
	var j journal
	ok, err := cat.GetJSON(JournalBucket, instance, &j)
	if err != nil || !ok {
		return nil, err
	}
	return &j, nil
}

// ErrKeepsNothing is returned when a plan would forget every set of an instance.
var ErrKeepsNothing = errors.New("the retention policy keeps no snapshot set")

// Applier carries out plans.
type Applier struct {
	Config   *config.Config
	Catalog  *catalog.Catalog
	Repo     Repository
	Archiver *Archiver // nil when no [archive] is configured
	Log      *slog.Logger
	Now      func() time.Time
	Location *time.Location

	// step, when set (tests), runs after each persisted step; an error aborts like a kill.
	step func(what, id string) error
}

// ApplyOptions select what apply does.
type ApplyOptions struct {
	DryRun     bool
	AllowEmpty bool
	Prune      bool // prune now regardless of retention.prune_schedule
}

// Result is the outcome of an apply run of one instance.
type Result struct {
	Instance  string   `json:"instance"`
	Kept      int      `json:"kept"`
	Archived  []string `json:"archived"`
	Forgotten []string `json:"forgotten"`
	Pruned    bool     `json:"pruned"`
	Resumed   string   `json:"resumed,omitempty"`
	// Orphans are sets of which a killed snapshot left parts but no manifest: forgotten.
	Orphans []string `json:"orphans,omitempty"`
	DryRun  bool     `json:"dry_run,omitempty"`
}

func (a *Applier) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Applier) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Applier) hook(what, id string) error {
	proc.KillAt("retention:" + what)
	if a.step == nil {
		return nil
	}
	return a.step(what, id)
}

// CheckPlan refuses plans that cannot or must not be applied.
func CheckPlan(p *InstancePlan, hasArchive, allowEmpty bool) error {
	c := Count(p.Items)
	if len(p.Items) > 0 && c[Keep] == 0 && !allowEmpty {
		return fmt.Errorf("instance %s: %w: all %d sets would be forgotten; fix [retention]", p.Instance, ErrKeepsNothing, len(p.Items))
	}
	if c[ArchiveThenForget] > 0 && !hasArchive {
		return fmt.Errorf("instance %s: %d sets must be archived before they are forgotten (retention.archive), but no [archive] is configured", p.Instance, c[ArchiveThenForget])
	}
	return nil
}

// Apply carries out the plan of one instance: archive (confirmed and recorded) before forget,
// forget every part of a set in restic, delete it from the catalogue, and prune when due.
// A journal in the catalogue makes an interrupted run resumable.
func (a *Applier) Apply(ctx context.Context, instance string, o ApplyOptions) (*Result, error) {
	lk, err := lock.Acquire(filepath.Join(a.Config.StateDir, "locks"), instance, "retention")
	if err != nil {
		if errors.Is(err, lock.ErrHeld) {
			return nil, fmt.Errorf("instance %s is busy: %w; wait for it to finish", instance, err)
		}
		return nil, err
	}
	defer lk.Release()
	p, err := BuildPlan(a.Config, a.Catalog, instance, a.Location)
	if err != nil {
		return nil, err
	}
	if err := CheckPlan(p, a.Archiver != nil, o.AllowEmpty); err != nil {
		return nil, err
	}
	res := &Result{Instance: instance, Kept: Count(p.Items)[Keep], Resumed: p.Resumed, DryRun: o.DryRun,
		Archived: []string{}, Forgotten: []string{}}
	if o.DryRun {
		a.dryRun(p, o, res)
		return res, nil
	}
	// Parts a killed snapshot stored but never recorded are nobody's set: forget them too
	// (the instance lock is held, so no snapshot of this instance is running).
	if gone, err := snapshot.ForgetOrphans(ctx, a.Repo, a.Catalog, instance, 0, a.log()); err != nil {
		a.log().Warn("could not look for orphaned parts of killed snapshots", "err", err)
	} else {
		res.Orphans = gone
	}
	// Journal every set to archive or forget, then look up their restic snapshots.
	run, err := a.startRun(ctx, p)
	if err != nil {
		return nil, err
	}
	// Each set: archive when due, then forget (unless pinned meanwhile).
	var failed []string
	for _, it := range p.Items {
		if it.Decision == Keep {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		problem, err := a.applyItem(ctx, run, it, res)
		if err != nil {
			return res, err
		}
		if problem != "" {
			failed = append(failed, problem)
		}
	}
	// Prune when asked or due.
	if o.Prune || (len(res.Forgotten) > 0 && a.pruneDue()) {
		a.log().Info("pruning the repository")
		if err := a.Repo.Prune(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("prune: %v", err))
		} else {
			res.Pruned = true
			if err := a.Catalog.PutJSON(StateBucket, "last-prune", a.now().UTC()); err != nil {
				failed = append(failed, fmt.Sprintf("recording the prune time: %v", err))
			}
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("retention of %s incomplete (%d problems; failed sets are kept and retried next run): %s", instance, len(failed), strings.Join(failed, "; "))
	}
	if err := a.Catalog.DeleteKey(JournalBucket, instance); err != nil {
		return res, err
	}
	return res, nil
}

// dryRun fills res with what Apply would archive and forget.
func (a *Applier) dryRun(p *InstancePlan, o ApplyOptions, res *Result) {
	for _, it := range p.Items {
		switch it.Decision {
		case ArchiveThenForget:
			if it.Archived == "" {
				res.Archived = append(res.Archived, it.ID)
			}
			res.Forgotten = append(res.Forgotten, it.ID)
		case Forget:
			res.Forgotten = append(res.Forgotten, it.ID)
		}
	}
	res.Pruned = o.Prune || a.pruneDue()
}

// applyRun is one Apply in progress: its journal and the restic snapshots of every set.
type applyRun struct {
	instance string
	j        *journal
	parts    map[string][]string // set ID → restic snapshot IDs (all parts)
}

// startRun journals the plan's work (resuming an interrupted run's journal) and lists the
// restic snapshots of the instance's sets.
func (a *Applier) startRun(ctx context.Context, p *InstancePlan) (*applyRun, error) {
	instance := p.Instance
	j := &journal{Started: a.now().UTC(), Items: map[string]journalEntry{}}
	if old, err := loadJournal(a.Catalog, instance); err != nil {
		return nil, err
	} else if old != nil {
		j.Started = old.Started
		a.log().Warn("resuming an interrupted retention run", "instance", instance, "started", old.Started)
	}
	work := 0
	for _, it := range p.Items {
		if it.Decision != Keep {
			j.Items[it.ID] = journalEntry{Decision: it.Decision, Classes: it.Classes, State: "planned"}
			work++
		}
	}
	run := &applyRun{instance: instance, j: j}
	if work == 0 {
		return run, nil
	}
	if err := a.save(run); err != nil {
		return nil, err
	}
	snaps, err := a.Repo.Snapshots(ctx, manifest.TagApp, "instance:"+instance)
	if err != nil {
		return nil, fmt.Errorf("listing the repository's snapshots: %w", err)
	}
	run.parts = map[string][]string{}
	for _, s := range snaps {
		if id := s.Tag("set"); id != "" {
			run.parts[id] = append(run.parts[id], s.ID)
		}
	}
	return run, nil
}

func (a *Applier) save(run *applyRun) error {
	return a.Catalog.PutJSON(JournalBucket, run.instance, run.j)
}

// setState records a set's new state in the journal.
func (a *Applier) setState(run *applyRun, id, state string) error {
	e := run.j.Items[id]
	e.State = state
	run.j.Items[id] = e
	return a.save(run)
}

// applyItem archives a set when its decision says so, then forgets it, journalling each
// step. A problem that leaves the set for the next run is returned as text; err aborts
// the run.
func (a *Applier) applyItem(ctx context.Context, run *applyRun, it Item, res *Result) (problem string, err error) {
	if it.Decision == ArchiveThenForget {
		rec, err := a.ensureArchive(ctx, it)
		if err != nil {
			a.log().Error("archive failed; the set is kept", "set", it.ID, "err", err)
			return fmt.Sprintf("%s: %v", it.ID, err), nil
		}
		if it.Archived == "" {
			res.Archived = append(res.Archived, it.ID)
		}
		if err := a.setState(run, it.ID, "archived"); err != nil {
			return "", err
		}
		if err := a.hook("archived", it.ID); err != nil {
			return "", err
		}
		a.log().Info("archive confirmed", "set", it.ID, "object", rec.Object)
	}
	// A keep mark or rollback point may have been added since the plan was built (an
	// archive upload can take hours): look again right before forgetting.
	pins, err := Pins(a.Catalog)
	if err != nil {
		return "", err
	}
	if why := pins[it.ID]; len(why) > 0 {
		a.log().Info("set pinned since the plan was made; kept", "set", it.ID, "pinned", strings.Join(why, ", "))
		delete(run.j.Items, it.ID)
		if err := a.save(run); err != nil {
			return "", err
		}
		res.Kept++
		return "", nil
	}
	if ids := run.parts[it.ID]; len(ids) > 0 {
		sort.Strings(ids)
		if err := a.Repo.Forget(ctx, ids...); err != nil {
			return fmt.Sprintf("%s: forgetting its restic snapshots: %v", it.ID, err), nil
		}
	}
	if err := a.setState(run, it.ID, "forgotten"); err != nil {
		return "", err
	}
	if err := a.hook("forgotten", it.ID); err != nil {
		return "", err
	}
	if err := a.Catalog.DeleteSnapshot(it.ID); err != nil {
		return "", err
	}
	if err := a.setState(run, it.ID, "done"); err != nil {
		return "", err
	}
	res.Forgotten = append(res.Forgotten, it.ID)
	a.log().Info("set forgotten", "set", it.ID, "decision", it.Decision)
	return "", nil
}

func (a *Applier) ensureArchive(ctx context.Context, it Item) (*ArchiveRecord, error) {
	if a.Archiver == nil {
		return nil, errors.New("no [archive] configured")
	}
	if rec, err := Record(a.Catalog, it.ID); err != nil {
		return nil, err
	} else if rec != nil {
		// Confirm the recorded archive is still there before forgetting the set.
		st, err := a.Archiver.Store.Stat(ctx, rec.Object, rec.VersionID)
		if err != nil {
			return nil, fmt.Errorf("confirming archive %s: %w", rec.Object, err)
		}
		if st.Size != rec.Size {
			return nil, fmt.Errorf("confirming archive %s: it holds %d bytes, %d were recorded", rec.Object, st.Size, rec.Size)
		}
		return rec, nil
	}
	r, err := a.Catalog.Snapshot(it.ID)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(r.Manifest)
	if err != nil {
		return nil, err
	}
	return a.Archiver.Archive(ctx, m, r.Manifest, it.Classes)
}

// pruneDue reports whether retention.prune_schedule has come due since the last prune.
func (a *Applier) pruneDue() bool {
	spec := ""
	if a.Config.Retention != nil {
		spec = a.Config.Retention.PruneSchedule
	}
	for _, in := range a.Config.Instances {
		if in.Retention != nil && in.Retention.PruneSchedule != "" {
			spec = in.Retention.PruneSchedule
		}
	}
	if spec == "" {
		return false
	}
	sch, err := cron.ParseStandard(spec)
	if err != nil {
		return false
	}
	var last time.Time
	if _, err := a.Catalog.GetJSON(StateBucket, "last-prune", &last); err != nil {
		return false
	}
	if last.IsZero() {
		return true
	}
	return !sch.Next(last).After(a.now())
}
