package lifecycle

import (
	"context"
	"os"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/s3"
	"github.com/dhis2-life/dhis2-life/retention"
)

// archiveBucket connects to [archive] and checks the bucket (existence, object lock).
func archiveBucket(ctx context.Context, a *app.App) (*s3.ArchiveBucket, error) {
	if a.Config.Archive == nil {
		return nil, usage("no [archive] table in %s: add one (see `dhis2-life config example`)", a.Config.Path)
	}
	b, err := s3.NewArchiveBucket(a.Config.Archive, append(os.Environ(), a.Env...))
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Check(cctx); err != nil {
		return nil, err
	}
	return b, nil
}

// archiver assembles the archive writer from [archive] (recipients checked first).
func (r *Runner) archiver(ctx context.Context) (*retention.Archiver, error) {
	ac := r.App.Config.Archive
	if ac == nil {
		return nil, usage("no [archive] table in %s: add one (see `dhis2-life config example`)", r.App.Config.Path)
	}
	if _, err := crypt.ParseRecipients(ac.Recipients, ac.RecipientsFile); err != nil {
		return nil, usage("%v", err)
	}
	return retention.NewArchiver(ctx, r.App.Config, r.App.Env, r.App.Repo, r.Catalog, r.log())
}

// ArchiveOutcome is the archive of a set; Already is set when it was archived before.
type ArchiveOutcome struct {
	*retention.ArchiveRecord
	Already bool `json:"already"`
}

// Archive writes set m's archive object as the job "archive" (under the instance lock, as
// retention archives: never two uploads of one set). A set archived before is not written again.
func (r *Runner) Archive(ctx context.Context, m *manifest.Manifest) (*ArchiveOutcome, error) {
	out := &ArchiveOutcome{}
	_, err := r.Run(ctx, m.Instance, JobArchive, func(ctx context.Context) (Result, error) {
		var res Result
		lk, err := r.lock(m.Instance, JobArchive)
		if err != nil {
			return res, err
		}
		defer lk.Release()
		rec, err := r.Catalog.Snapshot(m.ID)
		if err != nil {
			return res, err
		}
		if prev, err := retention.Record(r.Catalog, m.ID); err != nil || prev != nil {
			out.ArchiveRecord, out.Already = prev, prev != nil
			return res, err
		}
		arc, err := r.archiver(ctx)
		if err != nil {
			return res, err
		}
		if err := r.preflight(ctx, &res); err != nil {
			return res, err
		}
		out.ArchiveRecord, err = arc.Archive(ctx, m, rec.Manifest, []string{"manual"})
		if out.ArchiveRecord != nil {
			res.Bytes = out.Size
		}
		return res, err
	})
	return out, err
}

// Archives lists the recorded archives, oldest first.
func (r *Runner) Archives() ([]retention.ArchiveRecord, error) {
	recs, err := retention.Records(r.Catalog)
	if recs == nil {
		recs = []retention.ArchiveRecord{}
	}
	return recs, err
}
