package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
)

func cmdUpgradeOS() *cli.Command {
	osAction := func(f func(*lifecycle.Runner, *cli.Context) (*upgrade.OSRecord, error), report bool) cli.ActionFunc {
		return withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			rec, err := f(r, c)
			if perr := render.OSRecord(c.App.Writer, c.Bool("json"), report, rec); perr != nil {
				return perr
			}
			if errors.Is(err, upgrade.ErrOSProblem) {
				return &exitError{code: exitVerify, err: err}
			}
			return err
		})
	}
	return &cli.Command{
		Name:  "os",
		Usage: "OS upgrades: rollback point + host capture before, checks and config diff after",
		Description: `prepare takes a rollback point and captures the host (os-release, package
selections, dhis.conf, PostgreSQL and nginx configuration, the units of
[instances.NAME.os] services, crontabs, [instances.NAME.os] files) into the repository with
the point. After the OS upgrade and reboot, verify checks the services, the cluster's port
and version, row counts against the point, DHIS2's ping, and diffs the configuration
(exit 3 on a problem); report prints before and after.

EXAMPLES:
   dhis2-life upgrade os prepare
   dhis2-life upgrade os verify
   dhis2-life upgrade os report --json`,
		Subcommands: []*cli.Command{{
			Name:  "prepare",
			Usage: "take a rollback point and capture the host into the repository",
			Description: `EXAMPLES:
   dhis2-life upgrade os prepare
   dhis2-life upgrade os prepare --instance hmis --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag},
			Action: osAction(func(r *lifecycle.Runner, c *cli.Context) (*upgrade.OSRecord, error) {
				return r.OSPrepare(c.Context, upgradeRequest(c))
			}, false),
		}, {
			Name:  "verify",
			Usage: "after the upgrade: services, cluster, rows, DHIS2 ping, config diff (exit 3 on a problem)",
			Description: `EXAMPLES:
   dhis2-life upgrade os verify
   dhis2-life upgrade os verify --instance hmis --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag},
			Action: osAction(func(r *lifecycle.Runner, c *cli.Context) (*upgrade.OSRecord, error) {
				return r.OSVerify(c.Context, upgradeRequest(c))
			}, true),
		}, {
			Name:  "report",
			Usage: "print the host before (capture) and after (last verify)",
			Description: `EXAMPLES:
   dhis2-life upgrade os report
   dhis2-life upgrade os report --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag},
			Action: osAction(func(r *lifecycle.Runner, c *cli.Context) (*upgrade.OSRecord, error) {
				return r.OSReport(upgradeRequest(c))
			}, true),
		}},
	}
}
