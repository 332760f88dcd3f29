package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdSnapshots() *cli.Command {
	return &cli.Command{
		Name:  "snapshots",
		Usage: "list snapshot sets",
		Description: `Lists the snapshot sets in the catalogue, oldest first. --json prints an array of
manifests (the same JSON stored in the repository beside each set).

EXAMPLES:
   dhis2-life snapshots
   dhis2-life snapshots --instance hmis --json | jq '.[-1].id'`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			recs, err := r.Snapshots(c.String("instance"))
			if err != nil {
				return err
			}
			return render.Snapshots(c.App.Writer, c.Bool("json"), recs)
		}),
	}
}
