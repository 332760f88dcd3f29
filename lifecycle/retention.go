package lifecycle

import (
	"context"
	"time"

	"github.com/dhis2-life/dhis2-life/retention"
)

// instanceNames returns the named instance or, for "", every configured one.
func (r *Runner) instanceNames(name string) ([]string, error) {
	if name == "" {
		return r.App.Config.InstanceNames(), nil
	}
	in, err := r.instance(name)
	if err != nil {
		return nil, err
	}
	return []string{in.Name}, nil
}

// RetentionPlan is an instance's plan and, when apply would refuse it, why.
type RetentionPlan struct {
	*retention.InstancePlan
	Refusal error
}

// RetentionPlans plans the retention of an instance ("" = every instance). It changes nothing.
func (r *Runner) RetentionPlans(instance string) ([]RetentionPlan, error) {
	names, err := r.instanceNames(instance)
	if err != nil {
		return nil, err
	}
	var out []RetentionPlan
	for _, name := range names {
		p, err := retention.BuildPlan(r.App.Config, r.Catalog, name, time.Local)
		if err != nil {
			return nil, err
		}
		out = append(out, RetentionPlan{InstancePlan: p, Refusal: retention.CheckPlan(p, r.App.Config.Archive != nil, false)})
	}
	return out, nil
}

// RetentionRequest selects what `retention apply` does.
type RetentionRequest struct {
	Instance                  string
	DryRun, AllowEmpty, Prune bool
}

// RetentionApply carries out the retention plan of an instance ("" = every instance), each as
// the job "retention" (a dry run records nothing). It returns the results of the instances it
// got to and the first error.
func (r *Runner) RetentionApply(ctx context.Context, q RetentionRequest) ([]*retention.Result, error) {
	names, err := r.instanceNames(q.Instance)
	if err != nil {
		return nil, err
	}
	opts := retention.ApplyOptions{DryRun: q.DryRun, AllowEmpty: q.AllowEmpty, Prune: q.Prune}
	var results []*retention.Result
	var first error
	for _, name := range names {
		var res *retention.Result
		var err error
		if q.DryRun {
			res, err = r.applyRetention(ctx, name, opts, nil)
		} else {
			_, err = r.Run(ctx, name, JobRetention, func(ctx context.Context) (Result, error) {
				var job Result
				res, err = r.applyRetention(ctx, name, opts, &job)
				return job, err
			})
		}
		if res != nil {
			results = append(results, res)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return results, first
}

// RetentionJob is the scheduled retention of an instance: skipped without a policy.
func (r *Runner) RetentionJob(ctx context.Context, instance string) (Result, error) {
	var job Result
	if r.App.Config.RetentionFor(instance) == nil {
		return job, skipf("no retention policy for %s", instance)
	}
	_, err := r.applyRetention(ctx, instance, retention.ApplyOptions{}, &job)
	return job, err
}

// applyRetention applies one instance's plan: the archiver is connected only when [archive]
// is configured (retention.Applier refuses plans that need one it lacks).
func (r *Runner) applyRetention(ctx context.Context, instance string, o retention.ApplyOptions, job *Result) (*retention.Result, error) {
	ap := &retention.Applier{Config: r.App.Config, Catalog: r.Catalog, Repo: r.App.Repo, Log: r.log(), Location: time.Local}
	if r.App.Config.Archive != nil {
		if o.DryRun {
			ap.Archiver = &retention.Archiver{}
		} else {
			arc, err := r.archiver(ctx)
			if err != nil {
				return nil, err
			}
			ap.Archiver = arc
		}
	}
	if !o.DryRun {
		if err := r.preflight(ctx, job); err != nil {
			return nil, err
		}
	}
	return ap.Apply(ctx, instance, o)
}
