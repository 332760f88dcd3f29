package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/retention"
)

// ResolveSet finds a set by ID, unique ID prefix or "latest" (of the instance when given).
func (r *Runner) ResolveSet(ref, instance string) (*manifest.Manifest, error) {
	if instance != "" {
		if _, err := r.instance(instance); err != nil {
			return nil, err
		}
	}
	if ref == "" {
		return nil, usage("name a snapshot set: an ID, an ID prefix or latest")
	}
	var rec catalog.SnapshotRecord
	if ref == "latest" {
		recs, err := r.Catalog.Snapshots(instance)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			of := ""
			if instance != "" {
				of = " of instance " + instance
			}
			return nil, fmt.Errorf("no snapshot sets in the catalogue%s: take one with `dhis2-life snapshot`, or on a new host run `dhis2-life catalog rebuild`", of)
		}
		rec = recs[len(recs)-1]
	} else {
		got, err := r.Catalog.Snapshot(ref)
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, fmt.Errorf("unknown snapshot set %q: list them with `dhis2-life snapshots` (on a new host run `dhis2-life catalog rebuild` first)", ref)
		}
		if err != nil {
			return nil, err
		}
		rec = got
	}
	return manifest.Parse(rec.Manifest)
}

// RestoreRequest is one restore of `dhis2-life restore`.
type RestoreRequest struct {
	Ref, Instance            string
	ToDB, ToDBPasswordFile   string
	FilesTo, Owner           string
	Force, Terminate, DryRun bool
	Jobs                     int
	// FromArchive reads the set from its archive object with the age identity file Identity.
	FromArchive bool
	Identity    string
	Progress    func(done, total int64)
}

// RestoreOutcome is a restore's plan (Options) and, unless it was a dry run, its result.
type RestoreOutcome struct {
	Options restore.Options
	// Object is the archive object restored from ("" = the repository).
	Object string
	Result *restore.Result
}

// Restore restores a set into a database and/or directory. A dry run checks the target
// (production databases are always refused) and returns the plan only.
func (r *Runner) Restore(ctx context.Context, q RestoreRequest) (*RestoreOutcome, error) {
	if q.ToDB == "" && q.FilesTo == "" {
		return nil, usage("restore needs --to-db DSN and/or --files-to DIR")
	}
	if q.Instance != "" {
		if _, err := r.instance(q.Instance); err != nil {
			return nil, err
		}
	}
	out := &RestoreOutcome{}
	var m *manifest.Manifest
	var err error
	if q.FromArchive {
		m, err = r.openArchive(ctx, q, out)
	} else {
		m, err = r.ResolveSet(q.Ref, q.Instance)
	}
	if err != nil {
		return nil, err
	}
	if err := r.restoreOptions(ctx, q, m, &out.Options); err != nil {
		return nil, err
	}
	if q.DryRun {
		if out.Options.SkipDatabase {
			return out, nil
		}
		return out, restore.GuardProduction(ctx, r.App.Config, out.Options.Target)
	}
	if !q.FromArchive {
		if err := r.preflight(ctx, nil); err != nil {
			return nil, err
		}
	}
	out.Result, err = restore.Restore(ctx, out.Options)
	return out, err
}

// restoreOptions fills o (keeping DBStream/FilesFrom) from the request for set m.
func (r *Runner) restoreOptions(ctx context.Context, q RestoreRequest, m *manifest.Manifest, o *restore.Options) error {
	*o = restore.Options{Config: r.App.Config, Repo: r.App.Repo, Log: r.log(), Manifest: m,
		Owner: q.Owner, FilesTo: q.FilesTo, Force: q.Force, Terminate: q.Terminate, Jobs: r.restoreJobs(q.Jobs),
		SkipDatabase: q.ToDB == "", Progress: q.Progress, DBStream: o.DBStream, FilesFrom: o.FilesFrom}
	if o.SkipDatabase {
		return nil
	}
	o.Target = pg.Conn{DSN: q.ToDB, PasswordFile: q.ToDBPasswordFile}
	if _, err := o.Target.Config(); err != nil {
		return usage("--to-db: %v", err)
	}
	if o.Target.Database() == "" {
		return usage("--to-db names no database")
	}
	o.Admin = r.adminFor(ctx, m.Instance, o.Target)
	return nil
}

// adminFor returns the instance's admin connection when target is on the same server.
func (r *Runner) adminFor(ctx context.Context, instance string, target pg.Conn) *pg.Conn {
	in, ok := r.App.Config.Instances[instance]
	if !ok {
		return nil
	}
	adm := app.AdminConn(in)
	if adm == nil {
		return nil
	}
	te, err1 := target.Resolve(ctx)
	ae, err2 := adm.Resolve(ctx)
	if err1 != nil || err2 != nil || !te.SameServer(ae) {
		return nil
	}
	return adm
}

// openArchive finds the set's archive object (in the catalogue, or by listing the bucket on
// a fresh host), reads its manifest and points out.Options' streams at it.
func (r *Runner) openArchive(ctx context.Context, q RestoreRequest, out *RestoreOutcome) (*manifest.Manifest, error) {
	if q.Identity == "" {
		return nil, usage("--from-archive needs --identity FILE (the age identity of one of archive.recipients)")
	}
	ids, err := crypt.ReadIdentities(q.Identity)
	if err != nil {
		return nil, usage("--identity: %v", err)
	}
	b, err := archiveBucket(ctx, r.App)
	if err != nil {
		return nil, err
	}
	ref := q.Ref
	if ref == "latest" {
		recs, err := retention.Records(r.Catalog)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("no archives recorded: name the set ID")
		}
		ref = recs[len(recs)-1].ID
	}
	obj, ver, err := retention.FindObject(ctx, r.Catalog, b, ref)
	if err != nil {
		return nil, err
	}
	ar := &retention.ArchiveReader{Store: b, Object: obj, VersionID: ver, Identities: ids}
	m, _, err := ar.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	out.Object = obj
	out.Options.DBStream = func(ctx context.Context) (io.ReadCloser, error) { return ar.Open(ctx, retention.EntryDB) }
	if p, ok := m.Parts["files"]; ok && p.Snapshot != "" {
		out.Options.FilesFrom = func(ctx context.Context) (io.ReadCloser, error) { return ar.Open(ctx, retention.EntryFiles) }
	}
	return m, nil
}
