package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/pitr"
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
--list shows the base backups in the repository.

EXAMPLES:
   dhis2-life base-backup --instance hmis
   dhis2-life base-backup --instance hmis --json
   dhis2-life base-backup --instance hmis --list`,
		Flags: []cli.Flag{instanceFlag, jsonFlag, &cli.BoolFlag{Name: "list", Usage: "list the base backups instead of taking one"}},
		Action: func(c *cli.Context) error {
			a, in, err := walInstance(c)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Preflight(c.Context); err != nil {
				return err
			}
			if c.Bool("list") {
				bases, err := pitr.ListBase(c.Context, a.Repo, in.Name)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					if bases == nil {
						bases = []*pitr.BaseManifest{}
					}
					return printJSON(c.App.Writer, bases)
				}
				t := ui.NewTable("ID", "FINISHED", "START LSN", "STOP LSN", "TIMELINE", "SIZE")
				for _, b := range bases {
					t.Row(b.ID, b.Finished.Format(time.RFC3339), b.StartLSN, b.StopLSN, fmt.Sprint(b.Timeline), ui.Bytes(b.Part.Bytes))
				}
				return t.Write(c.App.Writer)
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding own executable for the base backup producer: %w", err)
			}
			prog := newProgress(c, a.Log, "base-backup "+in.Name)
			m, err := pitr.BaseBackup(c.Context, pitr.BaseOptions{
				Config: a.Config, Instance: in, Repo: a.Repo, Log: a.Log, ToolVersion: version,
				Producer: []string{self, "--config", a.Config.Path, "--log-level", "warn", "wal", "base-stream", "--instance", in.Name},
				Progress: func(st restic.Status) { prog.Update(st.BytesDone, st.TotalBytes, -1, "base") },
			})
			if err != nil {
				return err
			}
			prog.Done("base backup " + m.ID + " stored")
			if c.Bool("json") {
				return printJSON(c.App.Writer, m)
			}
			fmt.Fprintf(c.App.Writer, "base backup %s of %s stored in %s: %s, WAL %s..%s (LSN %s..%s, timeline %d), %s added\n",
				m.ID, m.Instance, ui.Duration(m.Finished.Sub(m.Started)), ui.Bytes(m.Part.Bytes), m.StartWAL, m.StopWAL,
				m.StartLSN, m.StopLSN, m.Timeline, ui.Bytes(m.Part.AddedPacked))
			return nil
		},
	}
}
