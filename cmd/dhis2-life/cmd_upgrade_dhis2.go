package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

var warFlag = &cli.StringFlag{Name: "war", Usage: "the new DHIS2 `WAR` file", Required: true}

func cmdUpgradeDHIS2() *cli.Command {
	return &cli.Command{
		Name:  "dhis2",
		Usage: "blue-green DHIS2 upgrade: green database + green app with the new WAR + proxy switch",
		Description: `Needs [instances.NAME.app] (the blue slot: stop, start, url; proxy = "nginx" with
upstream_file and nginx, or "hook" with proxy_hook; proxy_url) and [instances.NAME.app.green]
(stop, start, url, dhis2_home). The slot hooks get DHIS2_HOME, DHIS2_LIFE_WAR and
DHIS2_LIFE_SLOT in their environment.

EXAMPLES:
   dhis2-life upgrade dhis2 rehearse --war dhis2-stable-2.41.2.war
   dhis2-life upgrade dhis2 plan --war dhis2-stable-2.41.2.war
   dhis2-life upgrade dhis2 run --war dhis2-stable-2.41.2.war
   dhis2-life upgrade rollback --export-since-switch /var/tmp/green-rows`,
		Subcommands: []*cli.Command{{
			Name:  "rehearse",
			Usage: "clone a fresh set to the staging target and start the new WAR there; production untouched",
			Description: `Takes a fresh snapshot set, clones it into the staging target (scrubbed by its
profile, as ` + "`clone --to`" + `), starts the new WAR in the target's app slot
([targets.NAME.app]: stop, start, url, log_file) and waits for it. Reports the flyway
migrations applied (rows before/after), migration and start-up time, and failed migrations
with the app log's tail. Exits 1 when the new version does not come up. The new version keeps
running on the clone for testing.

EXAMPLES:
   dhis2-life upgrade dhis2 rehearse --war dhis2-stable-2.41.2.war
   dhis2-life upgrade dhis2 rehearse --instance hmis --target staging --war dhis.war --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag, warFlag, &cli.StringFlag{Name: "target", Usage: "the clone `TARGET` (default: the instance's only target with an app slot)"}},
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				rep, err := r.RehearseDHIS2(c.Context, upgradeRequest(c))
				if perr := render.Rehearsal(c.App.Writer, c.Bool("json"), rep); perr != nil {
					return perr
				}
				return err
			}),
		}, {
			Name:  "plan",
			Usage: "run every preflight check and print the steps; changes nothing",
			Description: `Reads the WAR's version, checks it is not a downgrade, blue's flyway history,
the PostgreSQL and Java versions the new DHIS2 needs (where known), disk for the green
database, that the green slot is free and the proxy serves blue (nginx -t), and prints every
step and how a rollback works.

EXAMPLES:
   dhis2-life upgrade dhis2 plan --war dhis2-stable-2.41.2.war
   dhis2-life upgrade dhis2 plan --instance hmis --war dhis.war --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag, warFlag},
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				p, err := r.PlanDHIS2Upgrade(c.Context, upgradeRequest(c))
				if p != nil {
					if rerr := render.DHIS2Plan(c.App.Writer, c.Bool("json"), p); rerr != nil {
						return rerr
					}
				}
				return err
			}),
		}, {
			Name:  "run",
			Usage: "upgrade: point, maintenance, final set, green db + app, health, proxy switch",
			Description: `Runs the plan's checks, then: rollback point, blue's stop hook (maintenance), a
final snapshot set, green's database restored from it (no scrub), green's dhis.conf and start
hook with the new WAR, health (ping, /api/system/info reports the new version, no failed
flyway rows), proxy switch, the new version answering through the proxy. Blue's database and
slot are kept. A failure before the switch tears green down and starts blue again. After a
crash or kill run ` + "`dhis2-life upgrade resume`" + ` or ` + "`dhis2-life upgrade rollback`" + `.

EXAMPLES:
   dhis2-life upgrade dhis2 run --war dhis2-stable-2.41.2.war
   dhis2-life upgrade dhis2 run --instance hmis --war dhis.war --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag, warFlag},
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				rec, err := r.DHIS2UpgradeRun(c.Context, upgradeRequest(c))
				if perr := render.DHIS2Record(c.App.Writer, c.Bool("json"), rec); perr != nil {
					return perr
				}
				return err
			}),
		}},
	}
}
