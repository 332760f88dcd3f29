package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
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
			mode := c.Args().First()
			w := c.App.Writer
			if mode == "autoconf" {
				fmt.Fprintln(w, "yes")
				return nil
			}
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			names := a.Config.InstanceNames()
			field := func(n string) string { return strings.NewReplacer("-", "_", ".", "_").Replace(n) }
			if mode == "config" {
				fmt.Fprintln(w, "multigraph dhis2_life_snapshot_age")
				fmt.Fprintln(w, "graph_title DHIS2 snapshot age\ngraph_vlabel hours\ngraph_category backup\ngraph_args --base 1000 -l 0")
				for _, n := range names {
					fmt.Fprintf(w, "%s.label %s\n", field(n), n)
					if in := a.Config.Instances[n]; in.RPO.Duration > 0 {
						fmt.Fprintf(w, "%s.critical %g\n", field(n), in.RPO.Hours())
					}
				}
				fmt.Fprintln(w, "multigraph dhis2_life_snapshot_size")
				fmt.Fprintln(w, "graph_title DHIS2 snapshot size\ngraph_vlabel bytes\ngraph_category backup\ngraph_args --base 1024 -l 0")
				for _, n := range names {
					fmt.Fprintf(w, "%s_read.label %s read\n%s_added.label %s added\n", field(n), n, field(n), n)
				}
				fmt.Fprintln(w, "multigraph dhis2_life_drill_restore")
				fmt.Fprintln(w, "graph_title DHIS2 drill restore time (RTO)\ngraph_vlabel seconds\ngraph_category backup\ngraph_args --base 1000 -l 0")
				for _, n := range names {
					fmt.Fprintf(w, "%s.label %s\n", field(n), n)
				}
				return nil
			}
			if mode != "" {
				return usageErr("munin takes config, autoconf or nothing (fetch), not %q", mode)
			}
			rep, err := loadStatus(c.Context, a)
			if err != nil {
				return err
			}
			fmt.Fprintln(w, "multigraph dhis2_life_snapshot_age")
			for _, n := range names {
				v := "U"
				if s := rep.Instances[n].LastSnapshot; s != nil {
					v = fmt.Sprintf("%.2f", time.Duration(s.AgeSeconds*float64(time.Second)).Hours())
				}
				fmt.Fprintf(w, "%s.value %s\n", field(n), v)
			}
			fmt.Fprintln(w, "multigraph dhis2_life_snapshot_size")
			for _, n := range names {
				read, added := "U", "U"
				if s := rep.Instances[n].LastSnapshot; s != nil {
					read, added = fmt.Sprint(s.Bytes), fmt.Sprint(s.AddedBytes)
				}
				fmt.Fprintf(w, "%s_read.value %s\n%s_added.value %s\n", field(n), read, field(n), added)
			}
			fmt.Fprintln(w, "multigraph dhis2_life_drill_restore")
			for _, n := range names {
				v := "U"
				if d := rep.Instances[n].LastGoodDrill; d != nil {
					v = fmt.Sprintf("%.1f", d.RestoreSeconds)
				}
				fmt.Fprintf(w, "%s.value %s\n", field(n), v)
			}
			return nil
		},
	}
}
