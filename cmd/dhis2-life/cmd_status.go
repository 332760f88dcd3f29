package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdStatus() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show snapshot and drill ages, next runs and failures; exit 3 when limits are exceeded",
		Description: `Per instance: the newest snapshot set (age, size), the newest drill and the newest
successful one (age, measured restore time), the next scheduled runs, clones, and failed runs
in the last 7 days. Exits 3 when the newest snapshot set is older than instances.NAME.rpo, the
newest successful drill is older than instances.NAME.drill_max_age, or the newest drill failed:
usable as a Nagios-style check.

EXAMPLES:
   dhis2-life status
   dhis2-life status --json | jq '.instances.hmis.last_snapshot.age_seconds'`,
		Flags: []cli.Flag{jsonFlag, instanceFlag},
		Action: withApp(func(c *cli.Context, a *app.App) error {
			only := c.String("instance")
			if only != "" {
				if _, err := a.Config.Instance(only); err != nil {
					return usageErr("%v", err)
				}
			}
			rep, err := lifecycle.LoadStatus(c.Context, a)
			if err != nil {
				return err
			}
			if only != "" {
				rep.Instances = map[string]*lifecycle.InstanceStatus{only: rep.Instances[only]}
				rep.OK = rep.Instances[only].OK
			}
			if err := render.Status(c.App.Writer, c.Bool("json"), rep); err != nil {
				return err
			}
			if !rep.OK {
				return &exitError{code: exitVerify, err: fmt.Errorf("limits exceeded: %s", strings.Join(rep.SortedProblems(), "; "))}
			}
			return nil
		}),
	}
}
