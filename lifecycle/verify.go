package lifecycle

import (
	"context"
	"fmt"
	"strings"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/restore"
)

// DefaultReadDataSubset is restic check's --read-data-subset of a drill.
const DefaultReadDataSubset = "2%"

// VerifyOptions adjust a drill.
type VerifyOptions struct {
	// ReadDataSubset is restic check's --read-data-subset ("" = structure check only).
	ReadDataSubset string
	// KeepScratch leaves the scratch database and files for inspection.
	KeepScratch bool
	Progress    func(done, total int64)
}

// Verify drills set m as the job "verify" of its instance: it refuses while another job of
// the instance runs, restores into scratch space and proves the set. A drill whose check
// failed returns its report and an error wrapping ErrDrillFailed.
func (r *Runner) Verify(ctx context.Context, m *manifest.Manifest, o VerifyOptions) (*restore.Report, error) {
	if _, ok := r.App.Config.Instances[m.Instance]; !ok {
		return nil, usage("set %s belongs to instance %q, which is not configured here", m.ID, m.Instance)
	}
	res, err := r.Run(ctx, m.Instance, JobVerify, func(ctx context.Context) (Result, error) { return r.VerifyJob(ctx, m, o) })
	return res.Drill, err
}

// VerifyLatest drills the newest set of an instance (the scheduled job); with no set yet it
// returns ErrSkip.
func (r *Runner) VerifyLatest(ctx context.Context, instance string) (Result, error) {
	recs, err := r.Catalog.Snapshots(instance)
	if err != nil {
		return Result{}, err
	}
	if len(recs) == 0 {
		return Result{}, fmt.Errorf("%w: no snapshot set of %s to drill yet", ErrSkip, instance)
	}
	m, err := manifest.Parse(recs[len(recs)-1].Manifest)
	if err != nil {
		return Result{}, err
	}
	return r.VerifyJob(ctx, m, VerifyOptions{ReadDataSubset: DefaultReadDataSubset})
}

// VerifyJob is Verify without the run record.
func (r *Runner) VerifyJob(ctx context.Context, m *manifest.Manifest, o VerifyOptions) (Result, error) {
	var res Result
	if err := r.preflight(ctx, &res); err != nil {
		return res, err
	}
	lk, err := r.lock(m.Instance, JobVerify)
	if err != nil {
		return res, err
	}
	defer lk.Release()
	in := r.App.Config.Instances[m.Instance]
	rep, err := restore.Drill(ctx, restore.DrillOptions{
		Restore: restore.Options{Config: r.App.Config, Repo: r.App.Repo, Log: r.log(), Manifest: m,
			Target: app.InstanceConn(in), Admin: app.AdminConn(in), Jobs: r.restoreJobs(0), Progress: o.Progress},
		ReadDataSubset: o.ReadDataSubset, Catalog: r.Catalog, KeepScratch: o.KeepScratch,
	})
	if err != nil {
		return res, err
	}
	res.Drill = rep
	if !rep.OK {
		var bad []string
		for _, c := range rep.Checks {
			if !c.OK {
				bad = append(bad, c.Name+": "+c.Detail)
			}
		}
		return res, fmt.Errorf("%w: set %s: %s", ErrDrillFailed, m.ID, strings.Join(bad, "; "))
	}
	return res, nil
}
