package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
)

var (
	toFlag     = &cli.IntFlag{Name: "to", Usage: "target PostgreSQL major `VERSION` (e.g. 15)", Required: true}
	methodFlag = &cli.StringFlag{Name: "method", Value: "copy", Usage: "pg_upgrade transfer: copy, clone (reflinks) or link (hard links; rollback after start restores the rollback point)"}
)

func cmdUpgrade() *cli.Command {
	return &cli.Command{
		Name:  "upgrade",
		Usage: "blue-green upgrades with a rollback point: plan, run, resume, rollback, finalize",
		Description: `Upgrades are state machines in the catalogue: every step is recorded and safe to
repeat, so an interrupted upgrade is resumed or rolled back.

EXAMPLES:
   dhis2-life upgrade postgres plan --to 15
   dhis2-life upgrade postgres run --to 15
   dhis2-life upgrade resume
   dhis2-life upgrade rollback
   dhis2-life upgrade finalize --older-than 7d`,
		Subcommands: []*cli.Command{{
			Name:  "postgres",
			Usage: "upgrade the instance's PostgreSQL cluster to a new major with pg_upgrade",
			Description: `Needs [instances.NAME.cluster] (kind pgctl: data_dir, bin_dir; kind debian:
version, name; run_as) and [instances.NAME.app] (stop, start, url) in the config.

EXAMPLES:
   dhis2-life upgrade postgres plan --to 15
   dhis2-life upgrade postgres run --to 15 --method link`,
			Subcommands: []*cli.Command{{
				Name:  "plan",
				Usage: "run every preflight check and print the steps; changes nothing",
				Description: `Checks the new major's binaries, that every extension of every database exists
for it, free disk for the method, the app hooks, and runs pg_upgrade --check against the
running cluster. Prints every check and every step, and how a rollback would work.

EXAMPLES:
   dhis2-life upgrade postgres plan --to 15
   dhis2-life upgrade postgres plan --instance hmis --to 15 --method link --json`,
				Flags: []cli.Flag{instanceFlag, jsonFlag, toFlag, methodFlag},
				Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
					p, err := r.PlanUpgrade(c.Context, upgradeRequest(c))
					if p != nil {
						if rerr := render.UpgradePlan(c.App.Writer, c.Bool("json"), p); rerr != nil {
							return rerr
						}
					}
					return err
				}),
			}, {
				Name:  "run",
				Usage: "upgrade: rollback point, stop app, pg_upgrade into green, switch, start app",
				Description: `Runs the plan's checks, then the steps: rollback point, app stop (hook), exact
row counts on blue, stop blue, pg_upgrade into green's data directory, green takes
blue's port (blue keeps its data directory, stopped), start green, ALTER EXTENSION …
UPDATE, vacuumdb --analyze-in-stages, row counts equal blue's, app start (hook), health.
A failed step rolls back by itself. Each step is recorded: after a crash or kill run
` + "`dhis2-life upgrade resume`" + ` or ` + "`dhis2-life upgrade rollback`" + `.

EXAMPLES:
   dhis2-life upgrade postgres run --to 15
   dhis2-life upgrade postgres run --instance hmis --to 15 --method link`,
				Flags: []cli.Flag{instanceFlag, jsonFlag, toFlag, methodFlag},
				Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
					rec, err := r.UpgradeRun(c.Context, upgradeRequest(c))
					return upgradeResult(c, rec, err)
				}),
			}},
		}, {
			Name:  "resume",
			Usage: "continue the instance's open upgrade from its current step",
			Description: `Continues an upgrade that was interrupted (killed, crashed, power loss) at the
step it stopped at; every step is safe to repeat.

EXAMPLES:
   dhis2-life upgrade resume
   dhis2-life upgrade resume --instance hmis`,
			Flags: []cli.Flag{instanceFlag, jsonFlag},
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				rec, err := r.UpgradeResume(c.Context, upgradeRequest(c))
				return upgradeResult(c, rec, err)
			}),
		}, {
			Name:  "rollback",
			Usage: "return to blue: after a failed or interrupted upgrade, or after done (copy, clone)",
			Description: `Stops the app and green, starts blue on its port again, checks blue's row counts
equal those before the upgrade and starts the app. Changes made on green after the
upgrade finished are not carried back. A link-mode upgrade whose green has started
cannot return to blue's data directory: restore the rollback point instead.

EXAMPLES:
   dhis2-life upgrade rollback
   dhis2-life upgrade rollback --instance hmis --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag},
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				rec, err := r.UpgradeRollback(c.Context, upgradeRequest(c))
				return upgradeResult(c, rec, err)
			}),
		}, {
			Name:  "finalize",
			Usage: "remove blue's data directory of a finished upgrade",
			Description: `Deletes the old cluster kept for rollback, once the upgrade is done (and has been
done for at least --older-than). After this, only the rollback point can go back.

EXAMPLES:
   dhis2-life upgrade finalize
   dhis2-life upgrade finalize --older-than 7d`,
			Flags: []cli.Flag{instanceFlag, jsonFlag, &cli.StringFlag{Name: "older-than", Value: "0s", Usage: "only when the upgrade finished at least this long ago (e.g. 7d)"}},
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				d, err := config.ParseDuration(c.String("older-than"))
				if err != nil {
					return usageErr("--older-than %q: %v (use e.g. 7d or 36h)", c.String("older-than"), err)
				}
				q := upgradeRequest(c)
				q.OlderThan = d
				rec, err := r.UpgradeFinalize(c.Context, q)
				return upgradeResult(c, rec, err)
			}),
		}},
	}
}

func cmdUpgrades() *cli.Command {
	return &cli.Command{
		Name:  "upgrades",
		Usage: "list upgrades: state, current step, per-step timings",
		Description: `Lists every upgrade, oldest first, with its state (running, failed, done,
rolled_back, finalized), its current step and the app's downtime.

EXAMPLES:
   dhis2-life upgrades
   dhis2-life upgrades --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			recs, err := r.Upgrades(c.String("instance"))
			if err != nil {
				return err
			}
			return render.Upgrades(c.App.Writer, c.Bool("json"), recs)
		}),
	}
}

// upgradeRequest reads the upgrade flags; the step lines go to stdout unless --json.
func upgradeRequest(c *cli.Context) lifecycle.UpgradeRequest {
	q := lifecycle.UpgradeRequest{Instance: c.String("instance"), To: c.Int("to"), Method: c.String("method")}
	if !c.Bool("json") {
		q.Out = c.App.Writer
	}
	return q
}

// upgradeResult prints the record (--json) and returns the upgrade's error.
func upgradeResult(c *cli.Context, rec *upgrade.Record, err error) error {
	if perr := render.UpgradeRecord(c.App.Writer, c.Bool("json"), rec); perr != nil {
		return perr
	}
	return err
}
