package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/lifecycle/point"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
)

func cmdUpgradeOS() *cli.Command {
	osAction := func(f func(context.Context, upgrade.OSOptions) (*upgrade.OSRecord, error), print func(io.Writer, *upgrade.OSRecord)) cli.ActionFunc {
		return func(c *cli.Context) error {
			a, o, err := osOptions(c)
			if err != nil {
				return err
			}
			defer a.Close()
			r, err := f(c.Context, o)
			if r != nil {
				if c.Bool("json") {
					if perr := printJSON(c.App.Writer, r); perr != nil {
						return perr
					}
				} else if print != nil {
					print(c.App.Writer, r)
				}
			}
			if errors.Is(err, upgrade.ErrOSProblem) {
				return &exitError{code: exitVerify, err: err}
			}
			return upgradeErr(err)
		}
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
			Flags:  []cli.Flag{instanceFlag, jsonFlag},
			Action: osAction(upgrade.PrepareOS, nil),
		}, {
			Name:  "verify",
			Usage: "after the upgrade: services, cluster, rows, DHIS2 ping, config diff (exit 3 on a problem)",
			Description: `EXAMPLES:
   dhis2-life upgrade os verify
   dhis2-life upgrade os verify --instance hmis --json`,
			Flags:  []cli.Flag{instanceFlag, jsonFlag},
			Action: osAction(upgrade.VerifyOS, printOSReport),
		}, {
			Name:  "report",
			Usage: "print the host before (capture) and after (last verify)",
			Description: `EXAMPLES:
   dhis2-life upgrade os report
   dhis2-life upgrade os report --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag},
			Action: osAction(func(_ context.Context, o upgrade.OSOptions) (*upgrade.OSRecord, error) {
				return upgrade.LatestOS(o.Catalog, o.Instance.Name)
			}, printOSReport),
		}},
	}
}

func osOptions(c *cli.Context) (*app.App, upgrade.OSOptions, error) {
	a, name, err := loadInstance(c)
	if err != nil {
		return nil, upgrade.OSOptions{}, err
	}
	cat, err := a.Catalog()
	if err != nil {
		a.Close()
		return nil, upgrade.OSOptions{}, err
	}
	o := upgrade.OSOptions{Catalog: cat, Repo: a.Repo, Log: a.Log, Instance: a.Config.Instances[name],
		CreatePoint: func(ctx context.Context, reason string) (*point.Point, error) {
			return createPointCtx(ctx, a, name, reason, false)
		},
		SetManifest: func(_ context.Context, set string) (*manifest.Manifest, error) {
			return resolveSet(cat, set, name)
		}}
	if !c.Bool("json") {
		o.Out = c.App.Writer
	}
	return a, o, nil
}

func printOSReport(w io.Writer, r *upgrade.OSRecord) {
	fmt.Fprintf(w, "OS upgrade %s of %s (%s), rollback point %s\n", r.ID, r.Instance, r.State, r.Point)
	after := upgrade.OSState{}
	if r.After != nil {
		after = *r.After
	}
	fmt.Fprintf(w, "  %-22s %-40s %s\n", "", "before", "after")
	fmt.Fprintf(w, "  %-22s %-40s %s\n", "os", r.Before.OSRelease, orDash(after.OSRelease))
	fmt.Fprintf(w, "  %-22s %-40s %s\n", "postgresql", r.Before.Postgres, orDash(after.Postgres))
	names := map[string]bool{}
	for k := range r.Before.Packages {
		names[k] = true
	}
	for k := range after.Packages {
		names[k] = true
	}
	var keys []string
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, a := r.Before.Packages[k], after.Packages[k]
		if r.After != nil && a == b {
			continue // unchanged after the upgrade
		}
		fmt.Fprintf(w, "  %-22s %-40s %s\n", k, orDash(b), orDash(a))
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w, "checks:")
		for _, ch := range r.Checks {
			mark := "ok  "
			if !ch.OK {
				mark = "FAIL"
			}
			line := fmt.Sprintf("  %s %-16s %s", mark, ch.Name, ch.Detail)
			if !ch.OK && ch.Fix != "" {
				line += " — fix: " + ch.Fix
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, d := range r.Diffs {
		fmt.Fprintf(w, "config %s: %s\n", d.Path, d.Change)
		for _, l := range d.Lines {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
