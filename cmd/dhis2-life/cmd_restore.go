package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdRestore() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot set into a database and/or directory",
		ArgsUsage: "ID|latest",
		Description: `Restores a set into --to-db (created when missing; extensions first, then the
schema, the data, sequences, and indexes/constraints built in parallel) and its file
store into --files-to. Objects are owned by --owner (default: the --to-db user).
Refuses a non-empty target without --force, and always refuses any configured
instance's production database. On failure the half-restored database is dropped.
When --to-db is on the same server as the instance's admin_database, that superuser
connection creates the database and extensions.

EXAMPLES:
   dhis2-life restore latest --to-db postgres://dhis@127.0.0.1:5432/dhis2_restored
   dhis2-life restore 20261127T020000Z-3fa1 --to-db postgres://dhis@127.0.0.1/dhis2_copy --files-to /srv/dhis2-copy --force
   dhis2-life restore latest --to-db postgres://dhis@127.0.0.1/dhis2_copy --dry-run
   dhis2-life restore 20261127T020000Z-3fa1 --from-archive --identity key.txt --to-db postgres://dhis@127.0.0.1/dhis2_old
   dhis2-life restore --pitr "2026-12-01 14:05:00" --instance hmis --to-data-dir /srv/pg-pitr --port 5440 [--pause]`,
		Flags: append([]cli.Flag{
			instanceFlag,
			&cli.StringFlag{Name: "to-db", Usage: "target database `DSN` (no password: use --to-db-password-file or ~/.pgpass)"},
			&cli.StringFlag{Name: "to-db-password-file", Usage: "`FILE` (0600) with the target role's password"},
			&cli.StringFlag{Name: "files-to", Usage: "restore the file store and dhis.conf into `DIR`"},
			&cli.StringFlag{Name: "owner", Usage: "`ROLE` to own the restored objects (default: the --to-db user)"},
			&cli.BoolFlag{Name: "force", Usage: "replace a non-empty target database or directory"},
			&cli.BoolFlag{Name: "terminate", Usage: "end other sessions on the target database instead of refusing"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "parallel index/constraint builds (default tuning.restore_jobs)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and change nothing"},
			jsonFlag,
			&cli.BoolFlag{Name: "from-archive", Usage: "restore from the set's archive object (see `dhis2-life archives`), without the restic repository"},
			&cli.StringFlag{Name: "identity", Usage: "age identity `FILE` that decrypts the archive (with --from-archive)"},
		}, pitrRestoreFlags()...),
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			if c.IsSet("pitr") {
				return restorePITR(c, r)
			}
			if c.NArg() != 1 {
				return usageErr("restore takes one set: an ID, an ID prefix or latest")
			}
			prog := progress(c, r.App, "restore "+c.Args().First())
			out, err := r.Restore(c.Context, lifecycle.RestoreRequest{Ref: c.Args().First(), Instance: c.String("instance"),
				ToDB: c.String("to-db"), ToDBPasswordFile: c.String("to-db-password-file"), FilesTo: c.String("files-to"),
				Owner: c.String("owner"), Force: c.Bool("force"), Terminate: c.Bool("terminate"), DryRun: c.Bool("dry-run"),
				Jobs: c.Int("jobs"), FromArchive: c.Bool("from-archive"), Identity: c.String("identity"),
				Progress: func(done, total int64) { prog.Update(done, total, -1, "database") }})
			if err != nil {
				return err
			}
			if !c.Bool("dry-run") {
				prog.Done("restored")
			}
			return render.Restore(c.App.Writer, c.Bool("json"), c.Bool("dry-run"), out.Options, out.Object, out.Result)
		}),
	}
}
