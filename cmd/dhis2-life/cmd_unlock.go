package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdUnlock() *cli.Command {
	return &cli.Command{
		Name:  "unlock",
		Usage: "remove stale restic locks left by killed runs",
		Description: `Runs restic unlock: removes only locks of processes that no longer run (or
older than 30 minutes). dhis2-life does this by itself when it finds that its previous
run of an instance was killed.

EXAMPLES:
   dhis2-life unlock`,
		Action: withApp(func(c *cli.Context, a *app.App) error {
			if err := lifecycle.Unlock(c.Context, a); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, "stale locks removed")
			return nil
		}),
	}
}
