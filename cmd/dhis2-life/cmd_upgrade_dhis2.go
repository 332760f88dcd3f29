package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
	"github.com/dhis2-life/dhis2-life/restore"
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
			Flags:  []cli.Flag{instanceFlag, jsonFlag, warFlag, &cli.StringFlag{Name: "target", Usage: "the clone `TARGET` (default: the instance's only target with an app slot)"}},
			Action: rehearseAction,
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
			Action: func(c *cli.Context) error {
				a, o, err := dhis2Options(c)
				if err != nil {
					return err
				}
				defer a.Close()
				p, err := upgrade.PlanDHIS2(c.Context, o)
				if err != nil {
					return upgradeErr(err)
				}
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, p); err != nil {
						return err
					}
				} else {
					printDHIS2Plan(c.App.Writer, p)
				}
				return upgradeErr(p.Err())
			},
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
			Action: func(c *cli.Context) error {
				a, o, err := dhis2Options(c)
				if err != nil {
					return err
				}
				defer a.Close()
				r, err := upgrade.RunDHIS2(c.Context, o)
				return dhis2Result(c, r, err)
			},
		}},
	}
}

// dhis2Options builds the DHIS2 upgrade options of --instance.
func dhis2Options(c *cli.Context) (*app.App, upgrade.DHIS2Options, error) {
	a, name, err := loadInstance(c)
	if err != nil {
		return nil, upgrade.DHIS2Options{}, err
	}
	cat, err := a.Catalog()
	if err != nil {
		a.Close()
		return nil, upgrade.DHIS2Options{}, err
	}
	return a, dhis2OptionsFor(c, a, cat, name), nil
}

// dhis2OptionsFor builds the DHIS2 upgrade options of instance name.
func dhis2OptionsFor(c *cli.Context, a *app.App, cat *catalog.Catalog, name string) upgrade.DHIS2Options {
	in := a.Config.Instances[name]
	o := upgrade.DHIS2Options{Catalog: cat, Log: a.Log, Instance: in, StateDir: a.Config.StateDir, WAR: c.String("war"),
		ExportDir: c.String("export-since-switch"),
		CreatePoint: func(ctx context.Context, reason string) (string, string, error) {
			p, err := createPointCtx(ctx, a, name, reason, false)
			if err != nil {
				return "", "", err
			}
			return p.ID, p.Set, nil
		},
		Snapshot: func(ctx context.Context) (string, error) {
			env, err := jobEnv(a, in)
			if err != nil {
				return "", err
			}
			res, err := lifecycle.SnapshotJob(ctx, env)
			if err != nil {
				return "", err
			}
			return res.Manifest.ID, nil
		},
		RestoreTo: func(ctx context.Context, set, dsn string) error {
			m, err := resolveSet(cat, set, name)
			if err != nil {
				return err
			}
			_, err = restore.Restore(ctx, restore.Options{Config: a.Config, Repo: a.Repo, Log: a.Log, Manifest: m,
				Target: pg.Conn{DSN: dsn, PasswordFile: in.DatabasePasswordFile}, Admin: app.AdminConn(in),
				Force: true, Terminate: true, Jobs: a.Config.Tuning.RestoreJobs})
			return err
		}}
	if !c.Bool("json") {
		o.Out = c.App.Writer
	}
	return o
}

// latestIsDHIS2 reports whether the instance's newest upgrade is a DHIS2 one (resume,
// rollback and finalize act on the newest upgrade of either kind).
func latestIsDHIS2(o upgrade.Options) (bool, error) {
	k, err := upgrade.LatestKind(o.Catalog, o.Instance.Name)
	return k == "dhis2", err
}

func dhis2Result(c *cli.Context, r *upgrade.DHIS2Record, err error) error {
	if c.Bool("json") && r != nil {
		if perr := printJSON(c.App.Writer, r); perr != nil {
			return perr
		}
	} else if r != nil && len(r.SinceSwitch) > 0 {
		fmt.Fprintf(c.App.Writer, "\nrows entered on green since the switch (%s):\n", r.SwitchedDB)
		t := ui.NewTable("TABLE", "CREATED", "UPDATED", "CSV")
		for _, ch := range r.SinceSwitch {
			t.Row(ch.Table, fmt.Sprint(ch.Created), fmt.Sprint(ch.Updated), ch.CSV)
		}
		_ = t.Write(c.App.Writer)
	}
	return upgradeErr(err)
}

func printDHIS2Plan(w io.Writer, p *upgrade.DHIS2Plan) {
	fmt.Fprintf(w, "upgrade of %s: DHIS2 %s -> %s (%s)\n", p.Instance, p.From, p.To, p.WAR)
	fmt.Fprintf(w, "blue:  database %s, upstream %s\n", p.BlueDB, p.BlueUpstream)
	fmt.Fprintf(w, "green: database %s, upstream %s\n\nchecks:\n", p.GreenDB, p.GreenUpstream)
	for _, ch := range p.Checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		line := fmt.Sprintf("  %s %-15s %s", mark, ch.Name, ch.Detail)
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

// mergeUpgrades lists upgrades of every kind, oldest first (`upgrades --json`).
func mergeUpgrades(pgs []*upgrade.Record, ds []*upgrade.DHIS2Record, oss []*upgrade.OSRecord) []any {
	type item struct {
		t time.Time
		v any
	}
	var items []item
	for _, r := range pgs {
		items = append(items, item{r.Created, r})
	}
	for _, r := range ds {
		items = append(items, item{r.Created, r})
	}
	for _, r := range oss {
		items = append(items, item{r.Created, r})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].t.Before(items[j].t) })
	out := []any{}
	for _, it := range items {
		out = append(out, it.v)
	}
	return out
}

func rehearseAction(c *cli.Context) error {
	a, name, err := loadInstance(c)
	if err != nil {
		return err
	}
	defer a.Close()
	cat, err := a.Catalog()
	if err != nil {
		return err
	}
	tname := c.String("target")
	if tname == "" {
		var cands []string
		for _, n := range targetList(a.Config) {
			if t := a.Config.Targets[n]; t.Instance == name && t.App != nil {
				cands = append(cands, n)
			}
		}
		if len(cands) != 1 {
			return usageErr("name the clone target with --target: instance %s has %d targets with an app slot ([targets.NAME.app]) %v", name, len(cands), cands)
		}
		tname = cands[0]
	}
	t, err := cloneTarget(a, tname)
	if err != nil {
		return err
	}
	if t.Instance != name {
		return usageErr("target %s is a clone of instance %s, not %s", tname, t.Instance, name)
	}
	if err := a.Preflight(c.Context); err != nil {
		return err
	}
	in := a.Config.Instances[name]
	o := upgrade.RehearseOptions{Log: a.Log, Target: t, WAR: c.String("war"),
		Clone: func(ctx context.Context) (string, error) {
			env, err := jobEnv(a, in)
			if err != nil {
				return "", err
			}
			res, err := lifecycle.SnapshotJob(ctx, env)
			if err != nil {
				return "", err
			}
			p, err := clone.Prepare(ctx, clone.Options{Config: a.Config, Target: t, Repo: a.Repo, Catalog: cat, Log: a.Log,
				Manifest: res.Manifest, Terminate: true, Jobs: a.Config.Tuning.RestoreJobs})
			if err != nil {
				return "", cloneErr(err)
			}
			if _, err := p.Run(ctx); err != nil {
				return "", cloneErr(err)
			}
			return res.Manifest.ID, nil
		}}
	if !c.Bool("json") {
		o.Out = c.App.Writer
	}
	rep, err := upgrade.Rehearse(c.Context, o)
	if rep != nil {
		if c.Bool("json") {
			if perr := printJSON(c.App.Writer, rep); perr != nil {
				return perr
			}
		} else {
			printRehearsal(c.App.Writer, rep)
		}
	}
	return upgradeErr(err)
}

func printRehearsal(w io.Writer, r *upgrade.Rehearsal) {
	status := "UP"
	if !r.OK {
		status = "FAILED"
	}
	fmt.Fprintf(w, "\nrehearsal of DHIS2 %s -> %s on %s (set %s): %s\n", r.From, r.To, r.Target, r.Set, status)
	fmt.Fprintf(w, "  clone %s, migrations %s, start-up %s\n", ui.Duration(secs(r.CloneSeconds)), ui.Duration(secs(r.MigrationSecs)), ui.Duration(secs(r.StartupSecs)))
	fmt.Fprintf(w, "  flyway rows %d -> %d: %d migrations applied, %d failed\n", r.FlywayBefore, r.FlywayAfter, len(r.Applied), len(r.Failed))
	for _, m := range r.Applied {
		fmt.Fprintf(w, "    ok     %-10s %6d ms  %s\n", m.Version, m.Millis, m.Description)
	}
	for _, m := range r.Failed {
		fmt.Fprintf(w, "    FAILED %-10s %6d ms  %s\n", m.Version, m.Millis, m.Description)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	if r.LogTail != "" {
		fmt.Fprintf(w, "  app log (tail):\n%s\n", r.LogTail)
	}
}
