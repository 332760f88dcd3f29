package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/s3"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/retention"
)

// archiveBucket connects to [archive] and checks the bucket (existence, object lock).
func archiveBucket(ctx context.Context, a *app.App) (*s3.ArchiveBucket, error) {
	if a.Config.Archive == nil {
		return nil, usageErr("no [archive] table in %s: add one (see `dhis2-life config example`)", a.Config.Path)
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

func archiveRecipients(a *app.App) ([]age.Recipient, error) {
	rs, err := crypt.ParseRecipients(a.Config.Archive.Recipients, a.Config.Archive.RecipientsFile)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return rs, nil
}

// newArchiver assembles the archive writer from the configuration.
func newArchiver(c *cli.Context, a *app.App, cat *catalog.Catalog) (*retention.Archiver, error) {
	if a.Config.Archive == nil {
		return nil, usageErr("no [archive] table in %s: add one (see `dhis2-life config example`)", a.Config.Path)
	}
	if _, err := archiveRecipients(a); err != nil {
		return nil, err
	}
	return retention.NewArchiver(c.Context, a.Config, a.Env, a.Repo, cat, a.Log)
}

func cmdArchive() *cli.Command {
	return &cli.Command{
		Name:      "archive",
		Usage:     "write a set's self-contained, encrypted, object-locked archive",
		ArgsUsage: "ID|latest",
		Description: `Writes one object to the [archive] bucket: a tar of the set's manifest, database
stream and file store tarball, age-encrypted to archive.recipients, uploaded in
multipart parts of archive.part_size_mb with archive.storage_class and object-lock
retention (lock_mode for lock_days) when configured. The object is read back and its
size and sha256 checked before it is recorded; restore it without the repository with
` + "`dhis2-life restore ID --from-archive --identity FILE --to-db DSN`" + `.

EXAMPLES:
   dhis2-life archive latest
   dhis2-life archive 20261127T020000Z-3fa1`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			s, err := loadSet(c)
			if err != nil {
				return err
			}
			defer s.app.Close()
			a, cat, m := s.app, s.cat, s.m
			// Retention apply archives under the same lock: never two uploads of one set.
			lk, err := lock.Acquire(filepath.Join(a.Config.StateDir, "locks"), m.Instance, "archive")
			if err != nil {
				return fmt.Errorf("instance %s is busy: %w; wait for it to finish", m.Instance, err)
			}
			defer lk.Release()
			rec, err := cat.Snapshot(m.ID)
			if err != nil {
				return err
			}
			if prev, err := retention.Record(cat, m.ID); err != nil {
				return err
			} else if prev != nil {
				fmt.Fprintf(c.App.Writer, "set %s is already archived as %s (%s, sha256 %s)\n", m.ID, prev.Object, ui.Bytes(prev.Size), prev.SHA256)
				return nil
			}
			arc, err := newArchiver(c, a, cat)
			if err != nil {
				return err
			}
			if err := a.Preflight(c.Context); err != nil {
				return err
			}
			res, err := arc.Archive(c.Context, m, rec.Manifest, []string{"manual"})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			until := "no object lock"
			if res.RetainUntil != nil {
				until = res.LockMode + " until " + res.RetainUntil.Format("2006-01-02")
			}
			fmt.Fprintf(c.App.Writer, "archived set %s as %s/%s: %s, sha256 %s, %s (confirmed by reading it back)\n",
				m.ID, res.Bucket, res.Object, ui.Bytes(res.Size), res.SHA256, until)
			return nil
		},
	}
}

func cmdArchives() *cli.Command {
	return &cli.Command{
		Name:  "archives",
		Usage: "list recorded archives",
		Description: `Lists the confirmed archives recorded in the catalogue. --json prints an array of
{"id","object","size","sha256","retain_until", ...}.

EXAMPLES:
   dhis2-life archives
   dhis2-life archives --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			recs, err := retention.Records(cat)
			if err != nil {
				return err
			}
			if recs == nil {
				recs = []retention.ArchiveRecord{}
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, recs)
			}
			if len(recs) == 0 {
				fmt.Fprintln(c.App.Writer, "no archives recorded")
				return nil
			}
			t := ui.NewTable("SET", "INSTANCE", "OBJECT", "SIZE", "RETAIN UNTIL", "SHA256").RightAlign(3)
			for _, r := range recs {
				until := "-"
				if r.RetainUntil != nil {
					until = r.RetainUntil.Format("2006-01-02") + " " + r.LockMode
				}
				t.Row(r.ID, r.Instance, r.Bucket+"/"+r.Object, ui.Bytes(r.Size), until, r.SHA256[:16]+"…")
			}
			return t.Write(c.App.Writer)
		},
	}
}

// restoreFromArchive is `restore ID --from-archive --identity FILE`: the set is read from its
// archive object; the restic repository is not used.
func restoreFromArchive(c *cli.Context, a *app.App) error {
	if c.String("identity") == "" {
		return usageErr("--from-archive needs --identity FILE (the age identity of one of archive.recipients)")
	}
	ids, err := crypt.ReadIdentities(c.String("identity"))
	if err != nil {
		return usageErr("--identity: %v", err)
	}
	b, err := archiveBucket(c.Context, a)
	if err != nil {
		return err
	}
	// The catalogue is optional: a fresh host finds the object by listing the bucket.
	cat, err := a.Catalog()
	if err != nil {
		a.Log.Warn("no catalogue; looking the archive up in the bucket", "err", err)
		cat = nil
	}
	ref := c.Args().First()
	if ref == "latest" && cat != nil {
		recs, err := retention.Records(cat)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return fmt.Errorf("no archives recorded: name the set ID")
		}
		ref = recs[len(recs)-1].ID
	}
	obj, ver, err := retention.FindObject(c.Context, cat, b, ref)
	if err != nil {
		return err
	}
	ar := &retention.ArchiveReader{Store: b, Object: obj, VersionID: ver, Identities: ids}
	m, _, err := ar.Manifest(c.Context)
	if err != nil {
		return err
	}
	opts, err := restoreOptions(c, a, m)
	if err != nil {
		return err
	}
	opts.DBStream = func(ctx context.Context) (io.ReadCloser, error) { return ar.Open(ctx, retention.EntryDB) }
	if p, ok := m.Parts["files"]; ok && p.Snapshot != "" {
		opts.FilesFrom = func(ctx context.Context) (io.ReadCloser, error) { return ar.Open(ctx, retention.EntryFiles) }
	}
	if c.Bool("dry-run") {
		return printRestorePlan(c, opts)
	}
	prog := newProgress(c, a.Log, "restore "+m.ID+" from archive")
	opts.Progress = func(done, total int64) { prog.Update(done, total, -1, "database") }
	res, err := restore.Restore(c.Context, opts)
	if err != nil {
		return err
	}
	prog.Done("restored")
	if c.Bool("json") {
		return printJSON(c.App.Writer, res)
	}
	if !opts.SkipDatabase {
		fmt.Fprintf(c.App.Writer, "restored set %s from archive %s into database %s in %s: %d tables, %s rows, %d sequences\n",
			m.ID, obj, opts.Target.Describe(), ui.Duration(secs(res.Seconds)), res.Tables, fmtCount(res.Rows), res.Sequences)
	}
	if res.FilesTo != "" {
		fmt.Fprintf(c.App.Writer, "restored the file store and dhis.conf of set %s from archive %s into %s\n", m.ID, obj, res.FilesTo)
	}
	return nil
}
