package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/scheduler"
)

func cmdMunin() *cli.Command {
	return &cli.Command{
		Name:      "munin",
		Usage:     "act as a munin plugin (snapshot age, size, drill restore time)",
		ArgsUsage: "[config|autoconf]",
		Description: `A multigraph munin plugin. Install it with a wrapper, e.g.
/etc/munin/plugins/dhis2_life containing
   #!/bin/sh
   exec /usr/local/bin/dhis2-life munin "$@"
and in /etc/munin/plugin-conf.d/dhis2_life:
   [dhis2_life]
   user dhis2-life
   env.DHIS2_LIFE_CONFIG /etc/dhis2-life/dhis2-life.toml`,
		Action: func(c *cli.Context) error {
			mode, w := c.Args().First(), c.App.Writer
			switch mode {
			case "autoconf":
				fmt.Fprintln(w, "yes")
				return nil
			case "config", "":
			default:
				return usageErr("munin takes config, autoconf or nothing (fetch), not %q", mode)
			}
			a, err := load(c)
			if err != nil {
				return err
			}
			if mode == "config" {
				scheduler.MuninConfig(w, a.Config)
				return nil
			}
			rep, err := lifecycle.LoadStatus(c.Context, a)
			if err != nil {
				return err
			}
			scheduler.MuninFetch(w, a.Config, rep)
			return nil
		},
	}
}
