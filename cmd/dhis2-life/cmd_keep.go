package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/retention"
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
		Action: func(c *cli.Context) error {
			s, err := loadSet(c)
			if err != nil {
				return err
			}
			defer s.app.Close()
			cat, m := s.cat, s.m
			if err := cat.PutJSON(retention.KeepBucket, m.ID, retention.KeepMark{SetID: m.ID, Created: time.Now().UTC(), Note: c.String("note")}); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "set %s is kept until `dhis2-life unkeep %s`\n", m.ID, m.ID)
			return nil
		},
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
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			if c.NArg() != 1 {
				return usageErr("unkeep takes one set ID")
			}
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			id := c.Args().First()
			if m, err := resolveSet(cat, id, c.String("instance")); err == nil {
				id = m.ID
			}
			var k retention.KeepMark
			ok, err := cat.GetJSON(retention.KeepBucket, id, &k)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("set %s has no keep mark (see `dhis2-life retention plan`)", id)
			}
			if err := cat.DeleteKey(retention.KeepBucket, id); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "set %s is no longer kept by a mark; `dhis2-life retention plan` shows what happens to it\n", id)
			return nil
		},
	}
}
