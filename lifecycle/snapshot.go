package lifecycle

import (
	"context"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/snapshot"
)

// BucketRepository holds RepositorySize records by instance name.
const BucketRepository = "repository-size"

// RepositorySize is the stored size of the repository (restic stats --mode raw-data).
type RepositorySize struct {
	Bytes             int64     `json:"bytes"`
	UncompressedBytes int64     `json:"uncompressed_bytes"`
	Snapshots         int64     `json:"restic_snapshots"`
	MeasuredAt        time.Time `json:"measured_at"`
}

// SnapshotProgress reports a snapshot's progress per part ("db", "files", "manifest"); for
// the database stream, estimate stands in for the unknown total.
type SnapshotProgress func(part string, st restic.Status, estimate int64)

// measureRepository measures the repository's stored size (nil when it cannot: restic stats
// reads the index, so it is bounded, and its failure fails nothing).
func (r *Runner) measureRepository(ctx context.Context) *RepositorySize {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	st, err := r.App.Repo.RawStats(sctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log().Warn("could not measure the repository size", "err", err)
		}
		return nil
	}
	return &RepositorySize{Bytes: st.TotalSize, UncompressedBytes: st.TotalUncompressedSize, Snapshots: st.SnapshotsCount}
}

// recordRepositorySize records for status and metrics the size measured when the set began
// plus what its parts added (their restic snapshots, the data they added); the set's manifest,
// a few KiB, is counted as a snapshot but not in bytes. Another writer of the repository at
// the same time is counted at the next measurement.
func (r *Runner) recordRepositorySize(instance string, rs *RepositorySize, m *manifest.Manifest) {
	if rs == nil {
		return
	}
	for _, p := range m.Parts {
		if p.Snapshot != "" {
			rs.Bytes += p.AddedPacked
			rs.UncompressedBytes += p.Added
			rs.Snapshots++
		}
	}
	rs.Snapshots++ // the manifest part
	rs.MeasuredAt = m.Finished
	if err := r.Catalog.PutJSON(BucketRepository, instance, rs); err != nil {
		r.log().Warn("could not record the repository size", "err", err)
	}
}

// Producer is the dump producer argv of an instance: this executable's `internal dump-stream`,
// which snapshot.Take starts beside restic (restic reads it through `internal relay`).
func Producer(self, configPath, instance string) []string {
	return []string{self, "--config", configPath, "--log-level", "warn", "internal", "dump-stream", "--instance", instance}
}

// Snapshot takes a snapshot set of an instance ("" = the only one) as the job "snapshot".
func (r *Runner) Snapshot(ctx context.Context, instance string, progress SnapshotProgress) (*manifest.Manifest, error) {
	in, err := r.instance(instance)
	if err != nil {
		return nil, err
	}
	res, err := r.Run(ctx, in.Name, JobSnapshot, func(ctx context.Context) (Result, error) {
		return r.SnapshotJob(ctx, in.Name, progress)
	})
	return res.Manifest, err
}

// SnapshotJob is Snapshot without the run record: preflight, the set (snapshot.Take holds the
// instance lock), then the repository's stored size for status and metrics.
func (r *Runner) SnapshotJob(ctx context.Context, instance string, progress SnapshotProgress) (Result, error) {
	return r.snapshotJob(ctx, instance, progress, false)
}

// snapshotJob is SnapshotJob; lockHeld says the caller holds the instance lock already.
func (r *Runner) snapshotJob(ctx context.Context, instance string, progress SnapshotProgress, lockHeld bool) (Result, error) {
	var res Result
	cfg := r.App.Config
	if err := r.preflight(ctx, &res); err != nil {
		return res, err
	}
	// The repository is measured beside the set (every restic run spends about half a second
	// deriving the repository key; after the set it would add that to every snapshot).
	// A failed set stops the measurement (against unreachable storage it would wait for its
	// own timeout).
	mctx, stopMeasuring := context.WithCancel(ctx)
	defer stopMeasuring()
	measured := make(chan *RepositorySize, 1)
	go func() { measured <- r.measureRepository(mctx) }()
	m, err := snapshot.Take(ctx, snapshot.Options{
		Config: cfg, Instance: cfg.Instances[instance], Repo: r.App.Repo, Catalog: r.Catalog, Log: r.log(),
		Producer: Producer(r.Self, cfg.Path, instance), ToolVersion: r.ToolVersion, Progress: progress, LockHeld: lockHeld,
		RelayCommand: []string{r.Self, "internal", "relay"},
	})
	if err != nil {
		stopMeasuring()
		<-measured
		return res, err
	}
	size := <-measured
	res.Manifest, res.Bytes = m, m.AddedBytes()
	r.recordRepositorySize(instance, size, m)
	return res, nil
}
