package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdBaseBackup() *cli.Command {
	return &cli.Command{
		Name:  "base-backup",
		Usage: "stream a pg_basebackup of the cluster into the repository (for restore --pitr)",
		Description: `Runs pg_basebackup (tar format, no WAL in the tar: the WAL archive holds it) over
admin_database (a superuser or REPLICATION role, allowed by pg_hba.conf for replication)
and streams it into restic as a set with two parts, tagged part:base and
part:base-manifest; the manifest holds the start and stop LSN and the timeline.
Needs WAL archiving (dhis2-life wal setup). Logical snapshot sets are not affected.
Recorded as the job base_backup ([schedule] base_backup runs it for every instance
with WAL archiving). --list shows the base backups in the repository.

EXAMPLES:
   dhis2-life base-backup --instance hmis
   dhis2-life base-backup --instance hmis --json
   dhis2-life base-backup --instance hmis --list`,
		Flags: []cli.Flag{instanceFlag, jsonFlag, &cli.BoolFlag{Name: "list", Usage: "list the base backups instead of taking one"}},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			if c.Bool("list") {
				bases, err := lifecycle.ListBaseBackups(c.Context, r.App, c.String("instance"))
				if err != nil {
					return err
				}
				return render.BaseBackups(c.App.Writer, c.Bool("json"), bases)
			}
			prog := progress(c, r.App, "base-backup")
			m, err := r.BaseBackup(c.Context, c.String("instance"), func(st restic.Status) { prog.Update(st.BytesDone, st.TotalBytes, -1, "base") })
			if err != nil {
				return err
			}
			prog.Done("base backup " + m.ID + " stored")
			return render.BaseBackup(c.App.Writer, c.Bool("json"), m)
		}),
	}
}
