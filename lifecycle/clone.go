package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
)

// CloneRequest is one `dhis2-life clone --to TARGET`.
type CloneRequest struct {
	Target string
	// From is a set ID, ID prefix, "latest" or "live" (take a set first).
	From                     string
	Terminate, Force, DryRun bool
	Jobs                     int
	Progress                 func(done, total int64)
	SnapshotProgress         SnapshotProgress
}

// ClonePlan is a checked clone that has not run (dry run).
type ClonePlan struct {
	*clone.Prepared
	Sessions      []string
	TemplateReady bool
}

// CloneOutcome is a clone's target and set and either its plan (dry run) or its record.
// With --from live and a dry run, neither: the set does not exist yet (Live is set).
type CloneOutcome struct {
	Target   *config.Target
	Manifest *manifest.Manifest
	Live     bool
	Plan     *ClonePlan
	Record   *clone.Record
}

// CloneTarget returns a configured clone target.
func (r *Runner) CloneTarget(name string) (*config.Target, error) {
	names := targetNames(r.App.Config)
	if name == "" {
		return nil, usage("clone needs --to TARGET (configured: %s)", names)
	}
	t, ok := r.App.Config.Targets[name]
	if !ok {
		return nil, usage("unknown clone target %q: configured targets are %s (add a [targets.%s] table)", name, names, name)
	}
	return t, nil
}

func targetNames(cfg *config.Config) string {
	var n []string
	for k := range cfg.Targets {
		n = append(n, k)
	}
	sort.Strings(n)
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

// Clone restores a set into a target, scrubbed and verified, as the job "clone_refresh" of
// the target's instance (--from live first takes a set, as the job "snapshot"). The request
// is checked once (clone.Prepare); a dry run returns the plan and changes nothing.
func (r *Runner) Clone(ctx context.Context, q CloneRequest) (*CloneOutcome, error) {
	t, err := r.CloneTarget(q.Target)
	if err != nil {
		return nil, err
	}
	out := &CloneOutcome{Target: t, Live: q.From == "live"}
	if out.Live && q.DryRun {
		return out, nil
	}
	if out.Live {
		if out.Manifest, err = r.Snapshot(ctx, t.Instance, q.SnapshotProgress); err != nil {
			return out, fmt.Errorf("--from live: %w", err)
		}
	} else if out.Manifest, err = r.ResolveSet(q.From, t.Instance); err != nil {
		return out, err
	}
	p, err := clone.Prepare(ctx, r.cloneOptions(t, out.Manifest, q))
	if err != nil {
		return out, err
	}
	if q.DryRun {
		out.Plan = &ClonePlan{Prepared: p}
		if out.Plan.Sessions, err = p.Sessions(ctx); err != nil {
			return out, err
		}
		out.Plan.TemplateReady, err = p.TemplateExists(ctx)
		return out, err
	}
	_, err = r.Run(ctx, t.Instance, JobCloneRefresh, func(ctx context.Context) (Result, error) {
		var res Result
		if !out.Live {
			if err := r.preflight(ctx, &res); err != nil {
				return res, err
			}
		}
		rec, err := p.Run(ctx)
		out.Record = rec
		if rec != nil {
			res.Bytes = rec.Bytes
		}
		return res, err
	})
	return out, err
}

func (r *Runner) cloneOptions(t *config.Target, m *manifest.Manifest, q CloneRequest) clone.Options {
	return clone.Options{Config: r.App.Config, Target: t, Repo: r.App.Repo, Catalog: r.Catalog, Log: r.log(), Manifest: m,
		Terminate: q.Terminate, Force: q.Force, Jobs: r.restoreJobs(q.Jobs), Progress: q.Progress}
}

// CloneRefreshJob re-clones every target of the instance from its newest set (scheduled).
func (r *Runner) CloneRefreshJob(ctx context.Context, instance string) (Result, error) {
	var res Result
	cfg := r.App.Config
	var targets []string
	for name, t := range cfg.Targets {
		if t.Instance == instance {
			targets = append(targets, name)
		}
	}
	if len(targets) == 0 {
		return res, skipf("instance %s has no clone targets", instance)
	}
	sort.Strings(targets)
	recs, err := r.Catalog.Snapshots(instance)
	if err != nil {
		return res, err
	}
	if len(recs) == 0 {
		return res, skipf("no snapshot set of %s to clone yet", instance)
	}
	m, err := manifest.Parse(recs[len(recs)-1].Manifest)
	if err != nil {
		return res, err
	}
	if err := r.preflight(ctx, &res); err != nil {
		return res, err
	}
	var failed []string
	for _, name := range targets {
		rec, err := clone.Clone(ctx, r.cloneOptions(cfg.Targets[name], m, CloneRequest{}))
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		res.Bytes += rec.Bytes
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("clone refresh failed: %s", strings.Join(failed, "; "))
	}
	return res, nil
}

// CloneDestroy drops a clone (a configured target, or one recorded but no longer configured).
// confirm, when set, runs after the target is known and before anything changes.
func (r *Runner) CloneDestroy(ctx context.Context, name string, terminate bool, confirm func() error) (*clone.DestroyResult, error) {
	if _, ok := r.App.Config.Targets[name]; !ok {
		var rec clone.Record
		found, err := r.Catalog.GetJSON(clone.BucketClones, name, &rec)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, usage("unknown clone target %q: configured targets are %s", name, targetNames(r.App.Config))
		}
	}
	if confirm != nil {
		if err := confirm(); err != nil {
			return nil, err
		}
	}
	return clone.Destroy(ctx, clone.DestroyOptions{Config: r.App.Config, Catalog: r.Catalog, Log: r.log(), Target: name, Terminate: terminate})
}

// CloneExpire destroys every clone past its target's ttl, per instance as the job
// "clone_ttl"; a dry run lists them and changes nothing.
func (r *Runner) CloneExpire(ctx context.Context, dryRun bool, now time.Time) ([]clone.ExpireResult, error) {
	out := []clone.ExpireResult{}
	if dryRun {
		recs, err := clone.List(r.Catalog)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			if e := clone.ExpiresAt(r.App.Config, rec); !e.IsZero() && !now.Before(e) {
				out = append(out, clone.ExpireResult{Target: rec.Target, Expired: e})
			}
		}
		return out, nil
	}
	var first error
	for _, name := range r.App.Config.InstanceNames() {
		_, err := r.Run(ctx, name, JobCloneTTL, func(ctx context.Context) (Result, error) {
			res, err := clone.ExpireInstance(ctx, r.App.Config, r.Catalog, r.log(), name, now)
			out = append(out, res...)
			if err == nil && len(res) == 0 {
				err = skipf("no clone past its TTL")
			}
			return Result{}, err
		})
		if err != nil && !errors.Is(err, ErrSkip) && first == nil {
			first = err
		}
	}
	return out, first
}

// CloneTTLJob is the scheduled clone_ttl of one instance.
func (r *Runner) CloneTTLJob(ctx context.Context, instance string) (Result, error) {
	res, err := clone.ExpireInstance(ctx, r.App.Config, r.Catalog, r.log(), instance, time.Now())
	if err == nil && len(res) == 0 {
		err = skipf("no clone past its TTL")
	}
	return Result{}, err
}

// CloneRow is one clone of `clones`: its record, age and ttl.
type CloneRow struct {
	clone.Record
	AgeSeconds float64    `json:"age_seconds"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Expired    bool       `json:"expired"`
}

// Clones lists the recorded clones with their age and expiry.
func (r *Runner) Clones(now time.Time) ([]CloneRow, error) {
	recs, err := clone.List(r.Catalog)
	if err != nil {
		return nil, err
	}
	rows := []CloneRow{}
	for _, rec := range recs {
		row := CloneRow{Record: rec, AgeSeconds: now.Sub(rec.Time).Seconds()}
		if e := clone.ExpiresAt(r.App.Config, rec); !e.IsZero() {
			row.ExpiresAt = &e
			row.Expired = !now.Before(e)
		}
		rows = append(rows, row)
	}
	return rows, nil
}
