package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

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
		Action: withSet(func(c *cli.Context, r *lifecycle.Runner, m *manifest.Manifest) error {
			out, err := r.Archive(c.Context, m)
			if err != nil {
				return err
			}
			return render.Archive(c.App.Writer, c.Bool("json"), out)
		}),
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
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			recs, err := r.Archives()
			if err != nil {
				return err
			}
			return render.Archives(c.App.Writer, c.Bool("json"), recs)
		}),
	}
}
