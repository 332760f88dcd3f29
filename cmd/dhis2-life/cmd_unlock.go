package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
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
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Preflight(c.Context); err != nil {
				return err
			}
			if err := a.Repo.Unlock(c.Context); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, "stale locks removed")
			return nil
		},
	}
}
