package lifecycle

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
)

// CloneTTLJob destroys the clones of the instance's targets whose TTL has passed.
func CloneTTLJob(ctx context.Context, env Env) (Result, error) {
	var res Result
	cat, err := catalog.Open(env.Store.Path)
	if err != nil {
		return res, err
	}
	defer cat.Close()
	out, err := clone.ExpireInstance(ctx, env.App.Config, cat, env.App.Log, env.Instance.Name, time.Now())
	if err != nil {
		return res, err
	}
	if len(out) == 0 {
		return res, fmt.Errorf("%w: no clone past its TTL", ErrSkip)
	}
	return res, nil
}

// CloneRefreshJob re-clones every target of the instance from its newest snapshot set.
func CloneRefreshJob(ctx context.Context, env Env) (Result, error) {
	var res Result
	cfg := env.App.Config
	var targets []string
	for name, t := range cfg.Targets {
		if t.Instance == env.Instance.Name {
			targets = append(targets, name)
		}
	}
	if len(targets) == 0 {
		return res, fmt.Errorf("%w: instance %s has no clone targets", ErrSkip, env.Instance.Name)
	}
	sort.Strings(targets)
	cat, err := catalog.Open(env.Store.Path)
	if err != nil {
		return res, err
	}
	defer cat.Close()
	recs, err := cat.Snapshots(env.Instance.Name)
	if err != nil {
		return res, err
	}
	if len(recs) == 0 {
		return res, fmt.Errorf("%w: no snapshot set of %s to clone yet", ErrSkip, env.Instance.Name)
	}
	m, err := manifest.Parse(recs[len(recs)-1].Manifest)
	if err != nil {
		return res, err
	}
	if err := preflight(ctx, env, &res); err != nil {
		return res, err
	}
	var failed []string
	for _, name := range targets {
		rec, err := clone.Clone(ctx, clone.Options{Config: cfg, Target: cfg.Targets[name], Repo: env.App.Repo,
			Catalog: cat, Log: env.App.Log, Manifest: m, Jobs: cfg.Tuning.RestoreJobs})
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
