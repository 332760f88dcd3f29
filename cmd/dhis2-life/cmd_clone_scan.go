package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdCloneScan() *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "search a clone (database and file store) for production's personal data",
		ArgsUsage: "TARGET",
		Description: `Reads production's identifying values from the target's instance database (values of
unique, phone, email, username and name-like tracked entity attributes and data elements,
their history, contacts of program messages and SMS, and, for training targets, the
usernames, names and contacts of users not in keep_accounts), then searches every text,
varchar, char, json and jsonb column of every table of the clone, and every file of its
file store, for them (whole words, case-insensitive). The values stay in memory: the report
names tables, columns and files, never a value. A clone run does the same scan before its
swap. Exit 3 when a value is found.

EXAMPLES:
   dhis2-life clone scan training
   dhis2-life clone scan training --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			if c.NArg() != 1 {
				return usageErr("clone scan needs exactly one TARGET")
			}
			t, rep, err := r.CloneScan(c.Context, c.Args().First())
			if rep != nil {
				if perr := render.CloneScan(c.App.Writer, c.Bool("json"), t.Name, rep); perr != nil {
					return perr
				}
			}
			return err
		}),
	}
}
