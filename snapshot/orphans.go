package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// OrphanGrace is how old the parts of an unrecorded set must be before they are forgotten
// when the caller does not hold the instance's job lock.
const OrphanGrace = time.Hour

// PartsRepository is what ForgetOrphans needs of a repository (*restic.Repo has it).
type PartsRepository interface {
	Snapshots(ctx context.Context, tags ...string) ([]restic.Snapshot, error)
	Forget(ctx context.Context, ids ...string) error
}

// ForgetOrphans forgets the parts of sets of instance that a killed snapshot left behind:
// restic snapshots of this host tagged set:<ID> whose set has no manifest part and is not in
// the catalogue. The caller holds the instance's job lock (so no snapshot of the instance
// runs); parts younger than grace are left alone all the same (0 = none). It returns the
// set IDs whose parts were forgotten.
func ForgetOrphans(ctx context.Context, repo PartsRepository, cat *catalog.Catalog, instance string, grace time.Duration, log *slog.Logger) ([]string, error) {
	snaps, err := repo.Snapshots(ctx, manifest.TagApp, "instance:"+instance)
	if err != nil {
		return nil, fmt.Errorf("listing the repository's snapshots for orphaned parts: %w", err)
	}
	host, _ := os.Hostname()
	type set struct {
		ids      []string
		manifest bool
		young    bool
		foreign  bool
	}
	sets := map[string]*set{}
	for _, s := range snaps {
		id := s.Tag("set")
		if id == "" {
			continue
		}
		st := sets[id]
		if st == nil {
			st = &set{}
			sets[id] = st
		}
		st.ids = append(st.ids, s.ID)
		if s.Tag("part") == "manifest" {
			st.manifest = true
		}
		if s.Hostname != host {
			st.foreign = true
		}
		// Back-dated sets (--time) carry an old time; the lock is what protects them.
		if grace > 0 && time.Since(s.Time) < grace {
			st.young = true
		}
	}
	var forgotten []string
	ids := make([]string, 0, len(sets))
	for id := range sets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		st := sets[id]
		if st.manifest || st.young || st.foreign {
			continue
		}
		if _, err := cat.Snapshot(id); err == nil {
			continue
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return forgotten, err
		}
		sort.Strings(st.ids)
		if err := repo.Forget(ctx, st.ids...); err != nil {
			return forgotten, fmt.Errorf("forgetting the orphaned parts of set %s: %w", id, err)
		}
		log.Warn("forgot the parts of a set a killed snapshot left behind (it was never recorded)", "set", id, "parts", len(st.ids))
		forgotten = append(forgotten, id)
	}
	return forgotten, nil
}
