package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// Rebuilt is what RebuildCatalog found: sets per instance and the manifests it could not read.
type Rebuilt struct {
	Instances map[string]int `json:"instances"`
	Skipped   []string       `json:"skipped"`
}

// RebuildCatalog re-derives the catalogue's snapshot index from the manifests in the
// repository (recovery from the bucket alone). Parts without a manifest (a killed run) are
// ignored; drills, runs and other records are kept. Instances the repository no longer holds
// lose their index too.
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
