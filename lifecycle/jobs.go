package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/snapshot"
)

// Job names (the "job" metric label).
const (
	JobSnapshot     = "snapshot"
	JobVerify       = "verify"
	JobRetention    = "retention"
	JobCloneTTL     = "clone_ttl"
	JobCloneRefresh = "clone_refresh"
)

// Jobs lists every job in the order catch-up runs them.
var Jobs = []string{JobSnapshot, JobVerify, JobRetention, JobCloneRefresh, JobCloneTTL, JobBaseBackup}

// ErrUnknownJob is returned (wrapped) for a job name that does not exist.
var ErrUnknownJob = errors.New("unknown job")

// ErrSkip marks a run that had nothing to do (recorded as skipped, no alert).
var ErrSkip = errors.New("skipped")

// ParseJob checks a job name.
func ParseJob(s string) (string, error) {
	for _, j := range Jobs {
		if s == j {
			return j, nil
		}
	}
	return "", fmt.Errorf("%w %q: jobs are %s", ErrUnknownJob, s, strings.Join(Jobs, ", "))
}

// ScheduleOf returns a job's cron spec from [schedule] ("" = not scheduled).
func ScheduleOf(cfg *config.Config, job string) string {
	s := cfg.Schedule
	switch job {
	case JobSnapshot:
		return s.Snapshot
	case JobVerify:
		return s.Verify
	case JobRetention:
		return s.Retention
	case JobCloneTTL:
		return s.CloneTTL
	case JobCloneRefresh:
		return s.CloneFresh
	case JobBaseBackup:
		return s.BaseBackup
	}
	return ""
}

// Env is what a job gets.
type Env struct {
	App      *app.App
	Instance *config.Instance
	Store    *Store
	// Producer is the dump producer argv for snapshot.Take.
	Producer    []string
	ToolVersion string
}

// Result is what a job reports besides its error.
type Result struct {
	Bytes    int64
	Manifest *manifest.Manifest
	Drill    *restore.Report
	// RepoReachable is false when the repository could not be reached, nil when not checked.
	RepoReachable *bool
}

// JobFunc runs one job of one instance.
type JobFunc func(ctx context.Context, env Env) (Result, error)

// BuiltinJobs are the jobs this build can run.
func BuiltinJobs() map[string]JobFunc {
	return map[string]JobFunc{JobSnapshot: SnapshotJob, JobVerify: VerifyJob,
		JobRetention: RetentionJob, JobCloneTTL: CloneTTLJob, JobCloneRefresh: CloneRefreshJob,
		JobBaseBackup: BaseBackupJob}
}

func preflight(ctx context.Context, env Env, res *Result) error {
	err := env.App.Preflight(ctx)
	ok := err == nil
	res.RepoReachable = &ok
	return err
}

// SnapshotJob takes a snapshot set.
func SnapshotJob(ctx context.Context, env Env) (Result, error) {
	var res Result
	if err := preflight(ctx, env, &res); err != nil {
		return res, err
	}
	// The catalogue holds its file only during transactions, so the CLI keeps working
	// while this long job runs.
	cat, err := catalog.Open(env.Store.Path)
	if err != nil {
		return res, err
	}
	defer cat.Close()
	m, err := snapshot.Take(ctx, snapshot.Options{
		Config: env.App.Config, Instance: env.Instance, Repo: env.App.Repo, Catalog: cat, Log: env.App.Log,
		Producer: env.Producer, ToolVersion: env.ToolVersion,
	})
	if err != nil {
		return res, err
	}
	res.Manifest, res.Bytes = m, m.AddedBytes()
	// The repository's stored size, for status and metrics; restic stats reads the index,
	// so it is bounded and its failure does not fail the snapshot.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if st, err := env.App.Repo.RawStats(sctx); err != nil {
		env.App.Log.Warn("could not measure the repository size", "err", err)
	} else {
		rs := RepositorySize{Bytes: st.TotalSize, UncompressedBytes: st.TotalUncompressedSize, Snapshots: st.SnapshotsCount, MeasuredAt: time.Now().UTC()}
		if err := cat.PutJSON(BucketRepository, env.Instance.Name, rs); err != nil {
			env.App.Log.Warn("could not record the repository size", "err", err)
		}
	}
	return res, nil
}

// VerifyJob drills the newest snapshot set of the instance.
func VerifyJob(ctx context.Context, env Env) (Result, error) {
	var res Result
	name := env.Instance.Name
	var latest *catalog.SnapshotRecord
	err := env.Store.With(ctx, func(c *catalog.Catalog) error {
		recs, err := c.Snapshots(name)
		if err == nil && len(recs) > 0 {
			latest = &recs[len(recs)-1]
		}
		return err
	})
	if err != nil {
		return res, err
	}
	if latest == nil {
		return res, fmt.Errorf("%w: no snapshot set of %s to drill yet", ErrSkip, name)
	}
	m, err := manifest.Parse(latest.Manifest)
	if err != nil {
		return res, err
	}
	if err := preflight(ctx, env, &res); err != nil {
		return res, err
	}
	lk, err := lock.Acquire(filepath.Join(env.App.Config.StateDir, "locks"), name, "verify")
	if err != nil {
		return res, fmt.Errorf("instance %s is busy: %w", name, err)
	}
	defer lk.Release()
	cat, err := catalog.Open(env.Store.Path)
	if err != nil {
		return res, err
	}
	defer cat.Close()
	in := env.Instance
	rep, err := restore.Drill(ctx, restore.DrillOptions{
		Restore: restore.Options{Config: env.App.Config, Repo: env.App.Repo, Log: env.App.Log, Manifest: m,
			Target: app.InstanceConn(in), Admin: app.AdminConn(in), Jobs: env.App.Config.Tuning.RestoreJobs},
		ReadDataSubset: "2%", Catalog: cat,
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
		return res, fmt.Errorf("drill of set %s failed: %s", m.ID, strings.Join(bad, "; "))
	}
	return res, nil
}
