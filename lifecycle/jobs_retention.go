package lifecycle

import (
	"context"
	"fmt"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/retention"
)

// RetentionJob applies the instance's retention policy: archives what must be archived,
// then forgets, and prunes when retention.prune_schedule is due.
func RetentionJob(ctx context.Context, env Env) (Result, error) {
	var res Result
	cfg := env.App.Config
	if cfg.RetentionFor(env.Instance.Name) == nil {
		return res, fmt.Errorf("%w: no retention policy for %s", ErrSkip, env.Instance.Name)
	}
	if err := preflight(ctx, env, &res); err != nil {
		return res, err
	}
	cat, err := catalog.Open(env.Store.Path)
	if err != nil {
		return res, err
	}
	defer cat.Close()
	arch, err := retention.NewArchiver(ctx, cfg, env.App.Env, env.App.Repo, cat, env.App.Log)
	if err != nil {
		return res, err
	}
	ap := retention.Applier{Config: cfg, Catalog: cat, Repo: env.App.Repo, Archiver: arch, Log: env.App.Log}
	if _, err := ap.Apply(ctx, env.Instance.Name, retention.ApplyOptions{}); err != nil {
		return res, err
	}
	return res, nil
}
