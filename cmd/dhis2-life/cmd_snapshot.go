package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdSnapshot() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "take a snapshot set (database, file store, manifest)",
		Description: `Dumps the instance's database as one consistent stream (pg_dump schema plus
DHIS2's largest tables in period order, regenerable analytics/resource data
excluded), then backs up DHIS2_HOME's file store and dhis.conf, then stores the
manifest with exact row counts. The set is recorded only when all parts are stored.

EXAMPLES:
   dhis2-life snapshot
   dhis2-life snapshot --instance hmis --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			prog := progress(c, r.App, "snapshot")
			m, err := r.Snapshot(c.Context, c.String("instance"), snapshotProgress(prog))
			if err != nil {
				return err
			}
			prog.Done("set " + m.ID + " stored")
			return render.Snapshot(c.App.Writer, c.Bool("json"), m)
		}),
	}
}

func snapshotProgress(prog *ui.Progress) lifecycle.SnapshotProgress {
	return func(part string, st restic.Status, estimate int64) {
		total := st.TotalBytes
		if part == "db" && total == 0 {
			total = estimate
		}
		prog.Update(st.BytesDone, total, -1, part)
	}
}
