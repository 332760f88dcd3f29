package clone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/restore"
)

// ErrUnknownTarget is returned for a target neither configured nor recorded.
var ErrUnknownTarget = errors.New("unknown clone target")

// List returns the recorded clones, sorted by target.
func List(cat *catalog.Catalog) ([]Record, error) {
	var out []Record
	err := cat.ListJSON(BucketClones, func(key string, raw []byte) error {
		var r Record
		if err := jsonUnmarshal(raw, &r); err != nil {
			return fmt.Errorf("clone record %s: %w", key, err)
		}
		out = append(out, r)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out, err
}

// ExpiresAt returns when a clone expires under the current configuration (its target's ttl),
// or the recorded expiry when the target is no longer configured; zero means never.
func ExpiresAt(cfg *config.Config, r Record) time.Time {
	if t, ok := cfg.Targets[r.Target]; ok {
		if t.TTL.Duration > 0 {
			return r.Time.Add(t.TTL.Duration)
		}
		return time.Time{}
	}
	if r.Expires != nil {
		return *r.Expires
	}
	return time.Time{}
}

// DestroyOptions configure Destroy.
type DestroyOptions struct {
	Config    *config.Config
	Catalog   *catalog.Catalog
	Log       *slog.Logger
	Target    string
	Terminate bool
}

// DestroyResult says what Destroy removed.
type DestroyResult struct {
	Target    string   `json:"target"`
	Databases []string `json:"databases_dropped"`
	Dirs      []string `json:"dirs_removed"`
	Warnings  []string `json:"warnings,omitempty"`
}

// resolveTarget returns the configured target, or one rebuilt from the clone record when the
// target was removed from the configuration.
func resolveTarget(cfg *config.Config, cat *catalog.Catalog, name string) (*config.Target, error) {
	if t, ok := cfg.Targets[name]; ok {
		return t, nil
	}
	var r Record
	ok, err := cat.GetJSON(BucketClones, name, &r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w %q: configured targets are %v", ErrUnknownTarget, name, targetNames(cfg))
	}
	return &config.Target{Name: name, Instance: r.Instance, Database: r.Database, DHIS2Home: r.Home, Profile: r.Profile}, nil
}

func targetNames(cfg *config.Config) []string {
	var n []string
	for k := range cfg.Targets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Destroy drops a clone's database, its working copies and templates, and its home (only
// when it holds the clone marker), then forgets the record. It never touches a production
// database or DHIS2_HOME.
func Destroy(ctx context.Context, o DestroyOptions) (*DestroyResult, error) {
	t, err := resolveTarget(o.Config, o.Catalog, o.Target)
	if err != nil {
		return nil, err
	}
	if err := destroyable(o.Catalog, t); err != nil {
		return nil, err
	}
	lk, err := lock.Acquire(filepath.Join(o.Config.StateDir, "locks"), "clone-"+t.Name, "clone-destroy")
	if err != nil {
		return nil, fmt.Errorf("target %s is busy: %w", t.Name, err)
	}
	defer lk.Release()
	target := TargetConn(t)
	db := target.Database()
	for _, d := range []string{db, tmpName(db), oldName(db)} {
		if err := restore.GuardProduction(ctx, o.Config, target.WithDatabase(d)); err != nil {
			return nil, err
		}
	}
	if err := guardHome(o.Config, t.DHIS2Home); err != nil {
		return nil, err
	}
	if err := RunHook(ctx, o.Log, "before_hook", t.BeforeHook, t.HookTimeout.Duration, []string{"DHIS2_LIFE_TARGET=" + t.Name, "DHIS2_LIFE_DATABASE=" + db, "DHIS2_HOME=" + t.DHIS2Home}); err != nil {
		return nil, err
	}
	srv := server{target: target, admin: AdminFor(ctx, o.Config, t), owner: target.User()}
	admin, err := srv.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.Background())
	res := &DestroyResult{Target: t.Name}
	if ok, err := dbExists(ctx, admin, db); err != nil {
		return nil, err
	} else if ok {
		if !o.Terminate {
			if err := busy(ctx, admin, db); err != nil {
				return nil, err
			}
		}
		if err := dropDB(ctx, admin, db); err != nil {
			return nil, err
		}
		res.Databases = append(res.Databases, db)
	}
	for _, d := range []string{tmpName(db), oldName(db)} {
		if ok, _ := dbExists(ctx, admin, d); ok {
			if err := dropDB(ctx, admin, d); err != nil {
				res.Warnings = append(res.Warnings, err.Error())
			} else {
				res.Databases = append(res.Databases, d)
			}
		}
	}
	before := map[string]bool{}
	rows, _ := admin.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, templatePrefix(t.Name))
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			before[n] = true
		}
	}
	rows.Close()
	if err := dropTemplates(ctx, o.Config, o.Catalog, admin, t.Name, "", o.Log); err != nil {
		res.Warnings = append(res.Warnings, err.Error())
	}
	for n := range before {
		if ok, _ := dbExists(ctx, admin, n); !ok {
			res.Databases = append(res.Databases, n)
		}
	}
	if h := t.DHIS2Home; h != "" {
		for _, d := range []string{h, h + ".dhis2life-new", h + ".dhis2life-old"} {
			if _, err := os.Stat(d); err != nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(d, HomeMarker)); err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s was left in place: it has no %s marker, so dhis2-life did not create it", d, HomeMarker))
				continue
			}
			if err := os.RemoveAll(d); err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("removing %s: %v", d, err))
				continue
			}
			res.Dirs = append(res.Dirs, d)
		}
	}
	if err := o.Catalog.DeleteKey(BucketClones, t.Name); err != nil {
		return res, err
	}
	o.Log.Info("clone destroyed", "target", t.Name, "databases", res.Databases, "dirs", res.Dirs)
	return res, nil
}

// ExpireResult is one expired clone.
type ExpireResult struct {
	Target  string    `json:"target"`
	Expired time.Time `json:"expired"`
	Error   string    `json:"error,omitempty"`
}

// Expire destroys every clone past its TTL (ending its sessions). It returns the clones it
// handled; the error joins the failures.
func Expire(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, log *slog.Logger, now time.Time) ([]ExpireResult, error) {
	return ExpireInstance(ctx, cfg, cat, log, "", now)
}

// ExpireInstance is Expire for the clones of one instance ("" = all). The clones of an
// instance no longer configured belong to the first configured instance, so that the
// per-instance daemon jobs never race each other for the same clone.
func ExpireInstance(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, log *slog.Logger, instance string, now time.Time) ([]ExpireResult, error) {
	recs, err := List(cat)
	if err != nil {
		return nil, err
	}
	var out []ExpireResult
	var errs []error
	for _, r := range recs {
		if instance != "" {
			owner := r.Instance
			if _, ok := cfg.Instances[owner]; !ok {
				if names := cfg.InstanceNames(); len(names) > 0 {
					owner = names[0]
				}
			}
			if owner != instance {
				continue
			}
		}
		e := ExpiresAt(cfg, r)
		if e.IsZero() || now.Before(e) {
			continue
		}
		x := ExpireResult{Target: r.Target, Expired: e}
		if _, err := Destroy(ctx, DestroyOptions{Config: cfg, Catalog: cat, Log: log, Target: r.Target, Terminate: true}); err != nil {
			x.Error = err.Error()
			errs = append(errs, fmt.Errorf("expiring %s: %w", r.Target, err))
		}
		out = append(out, x)
	}
	return out, errors.Join(errs...)
}

// ErrNotAClone is returned when destroy would drop a database dhis2-life did not clone.
var ErrNotAClone = errors.New("not a recorded clone")

// destroyable refuses to drop a target's database unless the catalogue records a clone in
// exactly that database: the configured database may have been changed to one dhis2-life
// never created.
func destroyable(cat *catalog.Catalog, t *config.Target) error {
	var r Record
	ok, err := cat.GetJSON(BucketClones, t.Name, &r)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no clone of target %s is recorded in the catalogue; dhis2-life drops only databases it cloned (drop it by hand if you mean to)", ErrNotAClone, t.Name)
	}
	rec, cur := pg.Conn{DSN: r.Database}, pg.Conn{DSN: t.Database}
	if rec.Database() != cur.Database() || rec.Describe() != cur.Describe() {
		return fmt.Errorf("%w: target %s was cloned into %s but is now configured as %s; restore the configuration or drop the database by hand", ErrNotAClone, t.Name, rec.Describe(), cur.Describe())
	}
	return nil
}
