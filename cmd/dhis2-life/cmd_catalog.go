package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdCatalog() *cli.Command {
	return &cli.Command{
		Name:  "catalog",
		Usage: "manage the local catalogue (an index of the repository)",
		Subcommands: []*cli.Command{{
			Name:  "rebuild",
			Usage: "re-derive the snapshot index from the repository",
			Description: `Reads every set's manifest from the repository and replaces the catalogue's
snapshot index with them, and brings back the rollback points stored there. Parts
without a manifest (a set whose run was killed) are ignored. Drills, runs and other records are kept. Use it on a fresh host that has only
the config, the repository password and the S3 credentials. A damaged catalogue is first
moved aside to catalog.db.damaged-<time>; what only it held (drills, runs, keep marks,
clone and archive records) does not come back.

EXAMPLES:
   dhis2-life catalog rebuild
   dhis2-life catalog rebuild --json`,
			Flags: []cli.Flag{jsonFlag},
			Action: withApp(func(c *cli.Context, a *app.App) error {
				out, err := lifecycle.RebuildDamaged(c.Context, a, version)
				if err != nil {
					return err
				}
				return render.Rebuilt(c.App.Writer, c.Bool("json"), out)
			}),
		}},
	}
}
