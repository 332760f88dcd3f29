package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/ui"
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
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr("clone scan needs exactly one TARGET")
			}
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			t, err := cloneTarget(a, c.Args().First())
			if err != nil {
				return err
			}
			rep, err := clone.ScanTarget(c.Context, a.Config, t)
			if err != nil {
				return cloneErr(err)
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else {
				w := c.App.Writer
				fmt.Fprintf(w, "scanned clone %s: %d tables, %d text columns, %d rows, %d files for %d production values in %s\n",
					t.Name, rep.Tables, rep.Columns, rep.Rows, rep.Files, rep.Values, ui.Duration(secs(rep.Seconds)))
				for _, h := range rep.Hits {
					fmt.Fprintf(w, "FOUND %s.%s: %d rows/files hold production values\n", h.Table, h.Column, h.Count)
				}
				if len(rep.Hits) == 0 {
					fmt.Fprintln(w, "no production value found")
				}
			}
			if err := rep.Error(); err != nil {
				return &exitError{code: exitVerify, err: fmt.Errorf("clone %s holds personal data of production: %w", t.Name, err)}
			}
			return nil
		},
	}
}
