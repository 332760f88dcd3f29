package lifecycle

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/lifecycle/point"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
	"github.com/dhis2-life/dhis2-life/restore"
)

// Job names of rollback points and upgrades (run records; not scheduled).
const (
	JobPoint   = "point"
	JobUpgrade = "upgrade"
)

// CreatePoint takes a rollback point of an instance ("" = the only one) as the job "point":
// a fresh snapshot set (drilled when verify), pinned until ReleasePoint.
func (r *Runner) CreatePoint(ctx context.Context, instance, reason string, verify bool) (*point.Point, error) {
	in, err := r.instance(instance)
	if err != nil {
		return nil, err
	}
	var p *point.Point
	_, err = r.Run(ctx, in.Name, JobPoint, func(ctx context.Context) (Result, error) {
		var res Result
		if err := r.preflight(ctx, &res); err != nil {
			return res, err
		}
		var err error
		p, err = r.createPoint(ctx, in, reason, verify, false)
		return res, err
	})
	return p, err
}

// createPoint takes the point; lockHeld says the caller holds the instance lock (an upgrade).
func (r *Runner) createPoint(ctx context.Context, in *config.Instance, reason string, verify, lockHeld bool) (*point.Point, error) {
	o := point.Options{Catalog: r.Catalog, Repo: r.App.Repo, Log: r.log(), Instance: in, Reason: reason,
		Snapshot: func(ctx context.Context) (*manifest.Manifest, error) {
			res, err := r.snapshotJob(ctx, in.Name, nil, lockHeld)
			return res.Manifest, err
		}}
	if verify {
		o.Verify = func(ctx context.Context, m *manifest.Manifest) error {
			_, err := r.VerifyJob(ctx, m, VerifyOptions{ReadDataSubset: DefaultReadDataSubset})
			return err
		}
	}
	return point.Create(ctx, o)
}

// Points lists the rollback points of an instance ("" = all), oldest first.
func (r *Runner) Points(instance string) ([]*point.Point, error) {
	return point.List(r.Catalog, instance)
}

// Point returns one rollback point.
func (r *Runner) Point(id string) (*point.Point, error) {
	return point.Get(r.Catalog, id)
}

// ReleasePoint forgets a rollback point (catalogue and repository); its set is no longer
// pinned. A point an open or unfinalized upgrade still needs is refused.
func (r *Runner) ReleasePoint(ctx context.Context, id string) (*point.Point, error) {
	inUse := func(id string) string {
		recs, _ := upgrade.List(r.Catalog, "")
		for _, u := range recs {
			if u.Point == id && (u.Open() || u.State == upgrade.StateDone) {
				return "upgrade " + u.ID + " (" + u.State + ")"
			}
		}
		return ""
	}
	return point.Release(ctx, r.Catalog, r.App.Repo, id, inUse)
}

// Upgrades lists the upgrades of an instance ("" = all), oldest first.
func (r *Runner) Upgrades(instance string) ([]*upgrade.Record, error) {
	return upgrade.List(r.Catalog, instance)
}

// UpgradeRequest is one `dhis2-life upgrade` call.
type UpgradeRequest struct {
	Instance string
	// To and Method are plan's and run's target major and pg_upgrade transfer mode ("" = copy).
	To     int
	Method string
	// OlderThan is finalize's minimum age of the finished upgrade.
	OlderThan time.Duration
	// Out receives one line per step as it runs (nil = none).
	Out io.Writer
}

// PlanUpgrade runs every preflight check of a PostgreSQL upgrade and lists its steps; it
// changes nothing.
func (r *Runner) PlanUpgrade(ctx context.Context, q UpgradeRequest) (*upgrade.PlanReport, error) {
	o, err := r.upgradeOptions(q)
	if err != nil {
		return nil, err
	}
	p, err := upgrade.Plan(ctx, o)
	if err != nil {
		return nil, upgradeErr(err)
	}
	return p, upgradeErr(p.Err())
}

// UpgradeRun runs a new PostgreSQL upgrade (rollback point, pg_upgrade into green, switch).
func (r *Runner) UpgradeRun(ctx context.Context, q UpgradeRequest) (*upgrade.Record, error) {
	return r.upgradeJob(ctx, q, upgrade.Run)
}

// UpgradeResume continues the instance's open upgrade from its current step.
func (r *Runner) UpgradeResume(ctx context.Context, q UpgradeRequest) (*upgrade.Record, error) {
	return r.upgradeJob(ctx, q, upgrade.Resume)
}

// UpgradeRollback returns the instance to blue.
func (r *Runner) UpgradeRollback(ctx context.Context, q UpgradeRequest) (*upgrade.Record, error) {
	return r.upgradeJob(ctx, q, upgrade.Rollback)
}

// UpgradeFinalize removes blue's data directory of the instance's finished upgrade.
func (r *Runner) UpgradeFinalize(ctx context.Context, q UpgradeRequest) (*upgrade.Record, error) {
	return r.upgradeJob(ctx, q, func(ctx context.Context, o upgrade.Options) (*upgrade.Record, error) {
		return upgrade.Finalize(ctx, o, q.OlderThan)
	})
}

// upgradeJob runs fn as the job "upgrade" holding the instance lock for its whole duration:
// no snapshot, drill or other job of the instance starts while blue or green is stopped.
func (r *Runner) upgradeJob(ctx context.Context, q UpgradeRequest, fn func(context.Context, upgrade.Options) (*upgrade.Record, error)) (*upgrade.Record, error) {
	o, err := r.upgradeOptions(q)
	if err != nil {
		return nil, err
	}
	var rec *upgrade.Record
	_, err = r.Run(ctx, o.Instance.Name, JobUpgrade, func(ctx context.Context) (Result, error) {
		lk, err := r.lock(o.Instance.Name, JobUpgrade)
		if err != nil {
			return Result{}, err
		}
		defer lk.Release()
		if lk.Stale {
			r.log().Warn("previous job of this instance was killed; removing stale restic locks", "job", lk.Previous.Job, "pid", lk.Previous.PID)
			if err := r.App.Repo.Unlock(ctx); err != nil {
				r.log().Warn("restic unlock failed", "err", err)
			}
		}
		rec, err = fn(ctx, o)
		return Result{}, err
	})
	return rec, upgradeErr(err)
}

// upgradeOptions builds the upgrade package's options of a request.
func (r *Runner) upgradeOptions(q UpgradeRequest) (upgrade.Options, error) {
	in, err := r.instance(q.Instance)
	if err != nil {
		return upgrade.Options{}, err
	}
	o := upgrade.Options{Catalog: r.Catalog, Log: r.log(), Instance: in, Method: q.Method, To: q.To, Out: q.Out,
		CreatePoint: func(ctx context.Context, reason string) (string, string, error) {
			// The upgrade holds the instance lock: the point's snapshot runs under it.
			p, err := r.createPoint(ctx, in, reason, false, true)
			if err != nil {
				return "", "", err
			}
			return p.ID, p.Set, nil
		},
		RestoreSet: func(ctx context.Context, setID string) ([]string, error) { return r.restoreOwnSet(ctx, in, setID) }}
	if o.Method == "" {
		o.Method = "copy"
	}
	if in.App != nil {
		o.HealthTimeout = in.App.HealthTimeout.Duration
	}
	return o, nil
}

// restoreOwnSet restores set setID into the instance's own database in a freshly initialised
// cluster (the rollback of a link-mode upgrade) and returns the tables the set leaves out.
// The production guard is lifted for this instance only.
func (r *Runner) restoreOwnSet(ctx context.Context, in *config.Instance, setID string) ([]string, error) {
	m, err := r.ResolveSet(setID, in.Name)
	if err != nil {
		return nil, err
	}
	cfg := *r.App.Config
	cfg.Instances = map[string]*config.Instance{}
	for n, i := range r.App.Config.Instances {
		if n != in.Name {
			cfg.Instances[n] = i
		}
	}
	_, err = restore.Restore(ctx, restore.Options{Config: &cfg, Repo: r.App.Repo, Log: r.log(), Manifest: m,
		Target: app.InstanceConn(in), Admin: app.AdminConn(in), Force: true, Terminate: true, Jobs: r.restoreJobs(0)})
	var excluded []string
	for _, x := range m.Excluded {
		excluded = append(excluded, x.Schema+"."+x.Name)
	}
	return excluded, err
}

// upgradeErr makes the upgrade package's usage errors this package's (exit 2).
func upgradeErr(err error) error {
	var ue *upgrade.UsageError
	if errors.As(err, &ue) {
		return &UsageError{Msg: err.Error()}
	}
	return err
}
