package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
	"github.com/dhis2-life/dhis2-life/restore"
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
   dhis2-life upgrade dhis2 rehearse --war dhis2-stable-2.41.2.war
   dhis2-life upgrade dhis2 run --war dhis2-stable-2.41.2.war
   dhis2-life upgrade os prepare
   dhis2-life upgrade resume
   dhis2-life upgrade rollback
   dhis2-life upgrade finalize --older-than 7d`,
		Subcommands: []*cli.Command{cmdUpgradeDHIS2(), cmdUpgradeOS(), {
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
				Action: func(c *cli.Context) error {
					a, o, err := upgradeOptions(c)
					if err != nil {
						return err
					}
					defer a.Close()
					p, err := upgrade.Plan(c.Context, o)
					if err != nil {
						return upgradeErr(err)
					}
					if c.Bool("json") {
						if err := printJSON(c.App.Writer, p); err != nil {
							return err
						}
					} else {
						printPlan(c.App.Writer, p)
					}
					return upgradeErr(p.Err())
				},
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
				Action: func(c *cli.Context) error {
					a, o, err := upgradeOptions(c)
					if err != nil {
						return err
					}
					defer a.Close()
					r, err := upgrade.Run(c.Context, o)
					return upgradeResult(c, r, err)
				},
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
			Action: func(c *cli.Context) error {
				a, o, err := upgradeOptions(c)
				if err != nil {
					return err
				}
				defer a.Close()
				if d, err := latestIsDHIS2(o); err != nil {
					return err
				} else if d {
					r, err := upgrade.ResumeDHIS2(c.Context, dhis2OptionsFor(c, a, o.Catalog, o.Instance.Name))
					return dhis2Result(c, r, err)
				}
				r, err := upgrade.Resume(c.Context, o)
				return upgradeResult(c, r, err)
			},
		}, {
			Name:  "rollback",
			Usage: "return to blue: after a failed or interrupted upgrade, or after done (copy, clone)",
			Description: `Stops the app and green, starts blue on its port again, checks blue's row counts
equal those before the upgrade and starts the app. Changes made on green after the
upgrade finished are not carried back. A link-mode upgrade whose green has started
cannot return to blue's data directory: restore the rollback point instead.
A DHIS2 upgrade rolled back after its proxy switch sends the proxy back to blue, stops
green, starts blue and reports the rows created or updated per table on green since the
switch (--export-since-switch DIR writes them as CSV first); green's database keeps them.

EXAMPLES:
   dhis2-life upgrade rollback
   dhis2-life upgrade rollback --export-since-switch /var/tmp/green-rows
   dhis2-life upgrade rollback --instance hmis --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag, &cli.StringFlag{Name: "export-since-switch", Usage: "DHIS2 upgrades: write the rows entered on green since the switch as CSV into `DIR`"}},
			Action: func(c *cli.Context) error {
				a, o, err := upgradeOptions(c)
				if err != nil {
					return err
				}
				defer a.Close()
				if d, err := latestIsDHIS2(o); err != nil {
					return err
				} else if d {
					r, err := upgrade.RollbackDHIS2(c.Context, dhis2OptionsFor(c, a, o.Catalog, o.Instance.Name))
					return dhis2Result(c, r, err)
				}
				r, err := upgrade.Rollback(c.Context, o)
				return upgradeResult(c, r, err)
			},
		}, {
			Name:  "finalize",
			Usage: "remove blue's data directory (PostgreSQL) or blue's database (DHIS2) of a finished upgrade",
			Description: `Deletes the old cluster kept for rollback, once the upgrade is done (and has been
done for at least --older-than). After this, only the rollback point can go back.

EXAMPLES:
   dhis2-life upgrade finalize
   dhis2-life upgrade finalize --older-than 7d`,
			Flags: []cli.Flag{instanceFlag, jsonFlag, &cli.StringFlag{Name: "older-than", Value: "0s", Usage: "only when the upgrade finished at least this long ago (e.g. 7d)"}},
			Action: func(c *cli.Context) error {
				d, err := config.ParseDuration(c.String("older-than"))
				if err != nil {
					return usageErr("--older-than %q: %v (use e.g. 7d or 36h)", c.String("older-than"), err)
				}
				a, o, err := upgradeOptions(c)
				if err != nil {
					return err
				}
				defer a.Close()
				if isD, err := latestIsDHIS2(o); err != nil {
					return err
				} else if isD {
					r, err := upgrade.FinalizeDHIS2(c.Context, dhis2OptionsFor(c, a, o.Catalog, o.Instance.Name), d)
					return dhis2Result(c, r, err)
				}
				r, err := upgrade.Finalize(c.Context, o, d)
				return upgradeResult(c, r, err)
			},
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
		Action: func(c *cli.Context) error {
			a, cat, err := loadCatalog(c)
			if err != nil {
				return err
			}
			defer a.Close()
			recs, err := upgrade.List(cat, c.String("instance"))
			if err != nil {
				return err
			}
			drecs, err := upgrade.ListDHIS2(cat, c.String("instance"))
			if err != nil {
				return err
			}
			orecs, err := upgrade.ListOS(cat, c.String("instance"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, mergeUpgrades(recs, drecs, orecs))
			}
			if len(recs) == 0 && len(drecs) == 0 && len(orecs) == 0 {
				fmt.Fprintln(c.App.Writer, "no upgrades")
				return nil
			}
			t := ui.NewTable("ID", "INSTANCE", "FROM", "TO", "METHOD", "STATE", "STEP", "DOWNTIME", "POINT")
			for _, r := range recs {
				dt := "-"
				if d := r.Downtime(); d > 0 {
					dt = ui.Duration(d)
				}
				t.Row(r.ID, r.Instance, fmt.Sprint(r.From), fmt.Sprint(r.To), r.Method, r.State, r.Step, dt, r.Point)
			}
			for _, r := range drecs {
				dt := "-"
				if d := r.Downtime(); d > 0 {
					dt = ui.Duration(d)
				}
				t.Row(r.ID, r.Instance, r.From, r.To, "dhis2", r.State, r.Step, dt, r.Point)
			}
			for _, r := range orecs {
				t.Row(r.ID, r.Instance, r.From, orDash(r.To), "os", r.State, r.Step, "-", r.Point)
			}
			return t.Write(c.App.Writer)
		},
	}
}

// upgradeOptions loads the app and builds the upgrade options of --instance.
func upgradeOptions(c *cli.Context) (*app.App, upgrade.Options, error) {
	a, name, err := loadInstance(c)
	if err != nil {
		return nil, upgrade.Options{}, err
	}
	cat, err := a.Catalog()
	if err != nil {
		a.Close()
		return nil, upgrade.Options{}, err
	}
	in := a.Config.Instances[name]
	o := upgrade.Options{Catalog: cat, Log: a.Log, Instance: in, Method: c.String("method"), To: c.Int("to"),
		CreatePoint: func(ctx context.Context, reason string) (string, string, error) {
			p, err := createPointCtx(ctx, a, name, reason, false)
			if err != nil {
				return "", "", err
			}
			return p.ID, p.Set, nil
		},
		RestoreSet: func(ctx context.Context, setID string) ([]string, error) {
			m, err := resolveSet(cat, setID, name)
			if err != nil {
				return nil, err
			}
			// The target is the instance's own database in a freshly initialised cluster
			// (link-mode rollback): the production guard is lifted for this instance only.
			cfg := *a.Config
			cfg.Instances = map[string]*config.Instance{}
			for n, i := range a.Config.Instances {
				if n != name {
					cfg.Instances[n] = i
				}
			}
			_, err = restore.Restore(ctx, restore.Options{Config: &cfg, Repo: a.Repo, Log: a.Log, Manifest: m,
				Target: app.InstanceConn(in), Admin: app.AdminConn(in), Force: true, Terminate: true, Jobs: a.Config.Tuning.RestoreJobs})
			var excluded []string
			for _, x := range m.Excluded {
				excluded = append(excluded, x.Schema+"."+x.Name)
			}
			return excluded, err
		}}
	if o.Method == "" {
		o.Method = "copy"
	}
	if !c.Bool("json") {
		o.Out = c.App.Writer
	}
	if in.App != nil {
		o.HealthTimeout = in.App.HealthTimeout.Duration
	}
	return a, o, nil
}

// upgradeErr maps the upgrade package's errors to exit codes.
func upgradeErr(err error) error {
	var ue *upgrade.UsageError
	if errors.As(err, &ue) {
		return &exitError{code: exitUsage, err: err}
	}
	return err
}

func upgradeResult(c *cli.Context, r *upgrade.Record, err error) error {
	if c.Bool("json") && r != nil {
		if perr := printJSON(c.App.Writer, r); perr != nil {
			return perr
		}
	}
	return upgradeErr(err)
}

func printPlan(w io.Writer, p *upgrade.PlanReport) {
	fmt.Fprintf(w, "upgrade of %s: PostgreSQL %d -> %d, method %s\n", p.Instance, p.From, p.To, p.Method)
	fmt.Fprintf(w, "blue:  %s, port %d, programs %s\n", p.Blue.DataDir, p.Blue.Port, p.Blue.BinDir)
	fmt.Fprintf(w, "green: %s, programs %s (takes port %d)\n\nchecks:\n", p.Green.DataDir, p.Green.BinDir, p.Blue.Port)
	for _, ch := range p.Checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		line := fmt.Sprintf("  %s %-20s %s", mark, ch.Name, ch.Detail)
		if !ch.OK && ch.Fix != "" {
			line += " — fix: " + ch.Fix
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "\nsteps:")
	for i, s := range p.Steps {
		fmt.Fprintf(w, "  %2d. %s\n", i+1, s)
	}
	fmt.Fprintf(w, "\nrollback: %s\n", p.Rollback)
}
