package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdKeep() *cli.Command {
	return &cli.Command{
		Name:      "keep",
		Usage:     "pin a snapshot set: retention never forgets it",
		ArgsUsage: "ID|latest",
		Description: `Marks a set to be kept whatever the retention policy says, until ` + "`dhis2-life unkeep`" + `.

EXAMPLES:
   dhis2-life keep 20261127T020000Z-3fa1 --note "before the 2.42 upgrade"
   dhis2-life keep latest`,
		Flags: []cli.Flag{instanceFlag, &cli.StringFlag{Name: "note", Usage: "why the set is kept (shown in `retention plan`)"}},
		Action: withSet(func(c *cli.Context, r *lifecycle.Runner, m *manifest.Manifest) error {
			if err := r.Keep(m, c.String("note")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "set %s is kept until `dhis2-life unkeep %s`\n", m.ID, m.ID)
			return nil
		}),
	}
}

func cmdUnkeep() *cli.Command {
	return &cli.Command{
		Name:      "unkeep",
		Usage:     "remove a set's keep mark (the retention policy decides again)",
		ArgsUsage: "ID",
		Description: `Removes the keep mark of ` + "`dhis2-life keep`" + `. Rollback points still pin their sets.

EXAMPLES:
   dhis2-life unkeep 20261127T020000Z-3fa1`,
		Flags: []cli.Flag{instanceFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			if c.NArg() != 1 {
				return usageErr("unkeep takes one set ID")
			}
			id, err := r.Unkeep(c.Args().First(), c.String("instance"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "set %s is no longer kept by a mark; `dhis2-life retention plan` shows what happens to it\n", id)
			return nil
		}),
	}
}
