package retention

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/s3"
)

// NewArchiver assembles the archive writer from [archive]: it parses the recipients and
// checks the bucket (existence, object lock when lock_mode is set) in bounded time. env holds
// the S3 credentials (KEY=VALUE). It returns (nil, nil) when no [archive] is configured.
func NewArchiver(ctx context.Context, cfg *config.Config, env []string, repo Repository, cat *catalog.Catalog, log *slog.Logger) (*Archiver, error) {
	ac := cfg.Archive
	if ac == nil {
		return nil, nil
	}
	rs, err := crypt.ParseRecipients(ac.Recipients, ac.RecipientsFile)
	if err != nil {
		return nil, &config.Error{File: cfg.Path, Line: cfg.LineOf("archive.recipients"), Key: "archive.recipients", Msg: err.Error(), Fix: "use age public keys (age1…)"}
	}
	b, err := s3.NewArchiveBucket(ac, append(os.Environ(), env...))
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Check(cctx); err != nil {
		return nil, err // Check's errors name the archive bucket already
	}
	return &Archiver{Store: b, Repo: repo, Catalog: cat, Recipients: rs, Bucket: ac.Bucket,
		Prefix: ac.Prefix, LockMode: ac.LockMode, StorageClass: ac.StorageClass, Log: log}, nil
}
