package lifecycle

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/lifecycle/point"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
	"github.com/dhis2-life/dhis2-life/restore"
)

// Kinds of upgrades (the newest one of an instance decides what resume, rollback and
// finalize act on).
const (
	KindPostgres = "postgres"
	KindDHIS2    = "dhis2"
	KindOS       = "os"
)

// UpgradeList is `upgrades`: every kind's records of an instance ("" = all).
type UpgradeList struct {
	Postgres []*upgrade.Record
	DHIS2    []*upgrade.DHIS2Record
	OS       []*upgrade.OSRecord
}

// UpgradeRow is one upgrade of any kind, in the shape `upgrades` prints: from and to are
// strings for every kind (a PostgreSQL major, a DHIS2 version, an OS release).
type UpgradeRow struct {
	Record   any
	ID       string
	Kind     string
	Instance string
	From, To string
	Method   string
	State    string
	Step     string
	Point    string
	Downtime time.Duration
	Created  time.Time
}

// Rows merges the list's records, oldest first.
func (l *UpgradeList) Rows() []UpgradeRow {
	var rows []UpgradeRow
	for _, r := range l.Postgres {
		rows = append(rows, UpgradeRow{Record: r, ID: r.ID, Kind: KindPostgres, Instance: r.Instance, From: strconv.Itoa(r.From), To: strconv.Itoa(r.To),
			Method: r.Method, State: r.State, Step: r.Step, Point: r.Point, Downtime: r.Downtime(), Created: r.Created})
	}
	for _, r := range l.DHIS2 {
		rows = append(rows, UpgradeRow{Record: r, ID: r.ID, Kind: KindDHIS2, Instance: r.Instance, From: r.From, To: r.To,
			Method: KindDHIS2, State: r.State, Step: r.Step, Point: r.Point, Downtime: r.Downtime(), Created: r.Created})
	}
	for _, r := range l.OS {
		rows = append(rows, UpgradeRow{Record: r, ID: r.ID, Kind: KindOS, Instance: r.Instance, From: r.From, To: r.To,
			Method: KindOS, State: r.State, Step: r.Step, Point: r.Point, Created: r.Created})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Created.Before(rows[j].Created) })
	return rows
}

// AllUpgrades lists the upgrades of every kind of an instance ("" = all).
func (r *Runner) AllUpgrades(instance string) (*UpgradeList, error) {
	var l UpgradeList
	var err error
	if l.Postgres, err = upgrade.List(r.Catalog, instance); err != nil {
		return nil, err
	}
	if l.DHIS2, err = upgrade.ListDHIS2(r.Catalog, instance); err != nil {
		return nil, err
	}
	if l.OS, err = upgrade.ListOS(r.Catalog, instance); err != nil {
		return nil, err
	}
	return &l, nil
}

// UpgradeOutcome is the record resume, rollback or finalize acted on: the newest upgrade of
// the instance, PostgreSQL or DHIS2 (exactly one is set on success).
type UpgradeOutcome struct {
	Postgres *upgrade.Record
	DHIS2    *upgrade.DHIS2Record
}

// newestKind is the kind of the instance's newest PostgreSQL or DHIS2 upgrade ("" = none).
func (r *Runner) newestKind(instance string) (string, error) {
	in, err := r.instance(instance)
	if err != nil {
		return "", err
	}
	return upgrade.LatestKind(r.Catalog, in.Name)
}

// dispatch runs the PostgreSQL or the DHIS2 variant of resume, rollback or finalize,
// whichever kind the instance's newest upgrade is.
func (r *Runner) dispatch(ctx context.Context, q UpgradeRequest,
	pgFn func(context.Context, upgrade.Options) (*upgrade.Record, error),
	dFn func(context.Context, upgrade.DHIS2Options) (*upgrade.DHIS2Record, error)) (*UpgradeOutcome, error) {
	kind, err := r.newestKind(q.Instance)
	if err != nil {
		return nil, err
	}
	out := &UpgradeOutcome{}
	if kind == KindDHIS2 {
		out.DHIS2, err = r.dhis2Job(ctx, q, dFn)
		return out, err
	}
	out.Postgres, err = r.upgradeJob(ctx, q, pgFn)
	return out, err
}

// lockedUpgrade runs fn as the job "upgrade" of an instance holding its lock for the whole
// duration: no snapshot, drill or other job of the instance starts while it runs.
func (r *Runner) lockedUpgrade(ctx context.Context, instance string, fn func(context.Context) error) error {
	_, err := r.Run(ctx, instance, JobUpgrade, func(ctx context.Context) (Result, error) {
		lk, err := r.lock(instance, JobUpgrade)
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
		return Result{}, fn(ctx)
	})
	return upgradeErr(err)
}

// PlanDHIS2Upgrade runs every preflight check of a DHIS2 upgrade to q.WAR and lists its
// steps; it changes nothing.
func (r *Runner) PlanDHIS2Upgrade(ctx context.Context, q UpgradeRequest) (*upgrade.DHIS2Plan, error) {
	o, err := r.dhis2Options(q)
	if err != nil {
		return nil, err
	}
	p, err := upgrade.PlanDHIS2(ctx, o)
	if err != nil {
		return nil, upgradeErr(err)
	}
	return p, upgradeErr(p.Err())
}

// DHIS2UpgradeRun runs a new blue-green DHIS2 upgrade to q.WAR (rollback point, final set,
// green database and app, health, proxy switch) holding the instance lock.
func (r *Runner) DHIS2UpgradeRun(ctx context.Context, q UpgradeRequest) (*upgrade.DHIS2Record, error) {
	return r.dhis2Job(ctx, q, upgrade.RunDHIS2)
}

func (r *Runner) dhis2Job(ctx context.Context, q UpgradeRequest, fn func(context.Context, upgrade.DHIS2Options) (*upgrade.DHIS2Record, error)) (*upgrade.DHIS2Record, error) {
	o, err := r.dhis2Options(q)
	if err != nil {
		return nil, err
	}
	var rec *upgrade.DHIS2Record
	err = r.lockedUpgrade(ctx, o.Instance.Name, func(ctx context.Context) error {
		var err error
		rec, err = fn(ctx, o)
		return err
	})
	return rec, err
}

// dhis2Options builds the upgrade package's DHIS2 options of a request.
func (r *Runner) dhis2Options(q UpgradeRequest) (upgrade.DHIS2Options, error) {
	in, err := r.instance(q.Instance)
	if err != nil {
		return upgrade.DHIS2Options{}, err
	}
	return upgrade.DHIS2Options{Catalog: r.Catalog, Log: r.log(), Instance: in, StateDir: r.App.Config.StateDir, WAR: q.WAR,
		ExportDir: q.ExportDir, Out: q.Out,
		CreatePoint: func(ctx context.Context, reason string) (string, string, error) {
			// The upgrade holds the instance lock: the point's snapshot runs under it.
			p, err := r.createPoint(ctx, in, reason, false, true)
			if err != nil {
				return "", "", err
			}
			return p.ID, p.Set, nil
		},
		Snapshot: func(ctx context.Context) (string, error) {
			res, err := r.snapshotJob(ctx, in.Name, nil, true)
			if err != nil {
				return "", err
			}
			return res.Manifest.ID, nil
		},
		RestoreTo: func(ctx context.Context, set, dsn string) error {
			m, err := r.ResolveSet(set, in.Name)
			if err != nil {
				return err
			}
			_, err = restore.Restore(ctx, restore.Options{Config: r.App.Config, Repo: r.App.Repo, Log: r.log(), Manifest: m,
				Target: pg.Conn{DSN: dsn, PasswordFile: in.DatabasePasswordFile}, Admin: app.AdminConn(in),
				Force: true, Terminate: true, Jobs: r.restoreJobs(0)})
			return err
		}}, nil
}

// RehearseDHIS2 clones a fresh set of the instance into the staging target q.Target ("" =
// the instance's only target with an app slot) and starts q.WAR there; production is not
// touched. The rehearsal is returned even when the new version fails to come up.
func (r *Runner) RehearseDHIS2(ctx context.Context, q UpgradeRequest) (*upgrade.Rehearsal, error) {
	in, err := r.instance(q.Instance)
	if err != nil {
		return nil, err
	}
	t, err := r.rehearsalTarget(in, q.Target)
	if err != nil {
		return nil, err
	}
	o := upgrade.RehearseOptions{Log: r.log(), Target: t, WAR: q.WAR, Out: q.Out,
		Clone: func(ctx context.Context) (string, error) {
			out, err := r.Clone(ctx, CloneRequest{Target: t.Name, From: "live", Terminate: true})
			if err != nil {
				return "", err
			}
			return out.Manifest.ID, nil
		}}
	rep, err := upgrade.Rehearse(ctx, o)
	return rep, upgradeErr(err)
}

func (r *Runner) rehearsalTarget(in *config.Instance, name string) (*config.Target, error) {
	if name == "" {
		var cands []string
		for n, t := range r.App.Config.Targets {
			if t.Instance == in.Name && t.App != nil {
				cands = append(cands, n)
			}
		}
		sort.Strings(cands)
		if len(cands) != 1 {
			return nil, usage("name the clone target with --target: instance %s has %d targets with an app slot ([targets.NAME.app]) %v", in.Name, len(cands), cands)
		}
		name = cands[0]
	}
	t, err := r.CloneTarget(name)
	if err != nil {
		return nil, err
	}
	if t.Instance != in.Name {
		return nil, usage("target %s is a clone of instance %s, not %s", name, t.Instance, in.Name)
	}
	return t, nil
}

// OSPrepare takes a rollback point and captures the host into the repository before an OS
// upgrade, holding the instance lock.
func (r *Runner) OSPrepare(ctx context.Context, q UpgradeRequest) (*upgrade.OSRecord, error) {
	o, err := r.osOptions(q)
	if err != nil {
		return nil, err
	}
	var rec *upgrade.OSRecord
	err = r.lockedUpgrade(ctx, o.Instance.Name, func(ctx context.Context) error {
		var err error
		rec, err = upgrade.PrepareOS(ctx, o)
		return err
	})
	return rec, err
}

// OSVerify checks the host after an OS upgrade against the capture; the error wraps
// upgrade.ErrOSProblem when a check fails.
func (r *Runner) OSVerify(ctx context.Context, q UpgradeRequest) (*upgrade.OSRecord, error) {
	o, err := r.osOptions(q)
	if err != nil {
		return nil, err
	}
	rec, err := upgrade.VerifyOS(ctx, o)
	return rec, upgradeErr(err)
}

// OSReport returns the instance's newest OS upgrade (before and after).
func (r *Runner) OSReport(q UpgradeRequest) (*upgrade.OSRecord, error) {
	in, err := r.instance(q.Instance)
	if err != nil {
		return nil, err
	}
	rec, err := upgrade.LatestOS(r.Catalog, in.Name)
	return rec, upgradeErr(err)
}

func (r *Runner) osOptions(q UpgradeRequest) (upgrade.OSOptions, error) {
	in, err := r.instance(q.Instance)
	if err != nil {
		return upgrade.OSOptions{}, err
	}
	return upgrade.OSOptions{Catalog: r.Catalog, Repo: r.App.Repo, Log: r.log(), Instance: in, Out: q.Out,
		CreatePoint: func(ctx context.Context, reason string) (*point.Point, error) {
			return r.createPoint(ctx, in, reason, false, true)
		},
		SetManifest: func(_ context.Context, set string) (*manifest.Manifest, error) {
			return r.ResolveSet(set, in.Name)
		}}, nil
}
