package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/lifecycle/point"
)

// Rebuilt is what RebuildCatalog found: sets per instance, rollback points, and the
// manifests and point records it could not read.
type Rebuilt struct {
	Instances map[string]int `json:"instances"`
	Skipped   []string       `json:"skipped"`
	Points    int            `json:"points"`
	// DamagedMovedTo is where a damaged catalogue was set aside (RebuildDamaged), and Lost
	// what it held that the repository cannot give back.
	DamagedMovedTo string `json:"damaged_moved_to,omitempty"`
	Lost           string `json:"lost,omitempty"`
}

// RebuildDamaged is `catalog rebuild`: once the repository answers, a damaged catalogue is
// moved aside to catalog.db.damaged-<time> (kept as evidence) and the snapshot index is
// rebuilt into a new one (RebuildCatalog); an intact catalogue is rebuilt in place.
func RebuildDamaged(ctx context.Context, a *app.App, toolVersion string) (*Rebuilt, error) {
	if err := a.Preflight(ctx); err != nil {
		return nil, err
	}
	_, moved, err := a.CatalogForRebuild()
	if err != nil {
		return nil, err
	}
	r, err := NewRunner(a, toolVersion)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := r.Close(); cerr != nil {
			a.Log.Warn("some alerts were not delivered", "err", cerr)
		}
	}()
	out, err := r.RebuildCatalog(ctx)
	if out != nil && moved != "" {
		out.DamagedMovedTo, out.Lost = moved, app.LostWithCatalogue
	}
	return out, err
}

// RebuildCatalog re-derives the catalogue's snapshot index from the manifests in the
// repository (recovery from the bucket alone). Parts without a manifest (a killed run) are
// ignored; drills, runs and other records are kept. Instances the repository no longer holds
// lose their index too. Rollback points are stored in the repository too and come back (they
// pin their sets).
func (r *Runner) RebuildCatalog(ctx context.Context) (*Rebuilt, error) {
	if err := r.preflight(ctx, nil); err != nil {
		return nil, err
	}
	snaps, err := r.App.Repo.Snapshots(ctx, manifest.TagApp, "part:manifest")
	if err != nil {
		return nil, err
	}
	out := &Rebuilt{Instances: map[string]int{}}
	byInstance := map[string][]catalog.SnapshotRecord{}
	for _, s := range snaps {
		var buf bytes.Buffer
		err := r.App.Repo.Dump(ctx, s.ID, "/"+manifest.ManifestFile, &buf)
		var m *manifest.Manifest
		if err == nil {
			m, err = manifest.Parse(buf.Bytes())
		}
		if err != nil && unreachable(err) {
			// An unreachable repository is no reason to drop a set from the catalogue.
			return nil, fmt.Errorf("catalog rebuild stopped, catalogue unchanged: reading the manifest of %s: %w", s.ShortID, err)
		}
		if err != nil {
			out.Skipped = append(out.Skipped, fmt.Sprintf("%s: %v", s.ShortID, err))
			r.log().Warn("manifest skipped", "snapshot", s.ShortID, "err", err)
			continue
		}
		byInstance[m.Instance] = append(byInstance[m.Instance], catalog.SnapshotRecord{ID: m.ID, Instance: m.Instance, Time: m.Time, Manifest: buf.Bytes()})
	}
	existing, err := r.Catalog.Snapshots("")
	if err != nil {
		return nil, err
	}
	for _, rec := range existing {
		if _, ok := byInstance[rec.Instance]; !ok {
			byInstance[rec.Instance] = nil
		}
	}
	names := make([]string, 0, len(byInstance))
	for n := range byInstance {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := r.Catalog.ReplaceSnapshots(n, byInstance[n]); err != nil {
			return nil, err
		}
		out.Instances[n] = len(byInstance[n])
	}
	points, skipped, err := point.Rebuild(ctx, r.Catalog, r.App.Repo)
	if err != nil {
		return nil, fmt.Errorf("bringing back rollback points: %w", err)
	}
	for _, s := range skipped {
		r.log().Warn("rollback point skipped", "detail", s)
	}
	out.Points, out.Skipped = points, append(out.Skipped, skipped...)
	return out, nil
}

// unreachable reports whether err is about reaching the repository rather than its content.
func unreachable(err error) bool {
	for _, k := range []error{restic.ErrUnreachable, restic.ErrTimeout, restic.ErrLocked, restic.ErrInterrupted, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}
