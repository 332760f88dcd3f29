package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/point"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
)

func cmdPoint() *cli.Command {
	return &cli.Command{
		Name:  "point",
		Usage: "rollback points: a pinned snapshot set plus what is needed to return to it",
		Description: `A rollback point pins a fresh snapshot set (retention never forgets it) and
records what is needed to return to it. ` + "`dhis2-life upgrade postgres run`" + ` takes one itself.

EXAMPLES:
   dhis2-life point create --reason "before the OS upgrade" --verify
   dhis2-life points
   dhis2-life point show pt-20261203T071500Z-1a2b
   dhis2-life point release pt-20261203T071500Z-1a2b`,
		Subcommands: []*cli.Command{{
			Name:  "create",
			Usage: "take a snapshot set and record it as a rollback point",
			Description: `Takes a fresh snapshot set (and drills it with --verify), then records the set ID,
the PostgreSQL version, the cluster's data directory and port, copies of postgresql.conf
and pg_hba.conf, the DHIS2 (flyway) version, the OS release and the versions of the
installed postgresql*, postgis*, openjdk*, tomcat* and nginx* packages. The record is
stored in the repository too (catalog rebuild brings it back); retention never forgets
the set until ` + "`dhis2-life point release`" + `.

EXAMPLES:
   dhis2-life point create --reason "before PostgreSQL 15"
   dhis2-life point create --instance hmis --verify --json`,
			Flags: []cli.Flag{instanceFlag, jsonFlag,
				&cli.StringFlag{Name: "reason", Usage: "why the point is taken (shown in `points`)"},
				&cli.BoolFlag{Name: "verify", Usage: "drill the set before recording the point"}},
			Action: func(c *cli.Context) error {
				a, name, err := loadInstance(c)
				if err != nil {
					return err
				}
				defer a.Close()
				p, err := createPoint(c, a, name, c.String("reason"), c.Bool("verify"))
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, p)
				}
				fmt.Fprintf(c.App.Writer, "rollback point %s of %s: set %s, PostgreSQL %s, DHIS2 %s%s\n", p.ID, p.Instance, p.Set, p.PostgresVersion, p.DHIS2Version, verifiedText(p))
				for _, w := range p.Warnings {
					fmt.Fprintf(c.App.Writer, "warning: %s\n", w)
				}
				return nil
			},
		}, {
			Name:      "show",
			Usage:     "print one rollback point",
			ArgsUsage: "ID",
			Description: `Prints everything a rollback point recorded; --json includes the copies of
postgresql.conf and pg_hba.conf.

EXAMPLES:
   dhis2-life point show pt-20261203T071500Z-1a2b
   dhis2-life point show pt-20261203T071500Z-1a2b --json`,
			Flags: []cli.Flag{jsonFlag},
			Action: func(c *cli.Context) error {
				a, cat, err := loadCatalog(c)
				if err != nil {
					return err
				}
				defer a.Close()
				if c.NArg() != 1 {
					return usageErr("point show takes one point ID (see `dhis2-life points`)")
				}
				p, err := point.Get(cat, c.Args().First())
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, p)
				}
				w := c.App.Writer
				fmt.Fprintf(w, "point      %s\ninstance   %s\nset        %s\ncreated    %s\nreason     %s\npostgres   %s\ndhis2      %s\n",
					p.ID, p.Instance, p.Set, p.Created.Format("2006-01-02 15:04:05Z"), p.Reason, p.PostgresVersion, p.DHIS2Version)
				fmt.Fprintf(w, "cluster    %s (port %d)\nos         %s\nverified   %s\n", p.Cluster.DataDir, p.Cluster.Port, p.OSRelease, strings.TrimPrefix(verifiedText(p), ", "))
				for _, k := range pointKeys(p.Files) {
					fmt.Fprintf(w, "file       %s (%s)\n", k, ui.Bytes(int64(len(p.Files[k]))))
				}
				for _, k := range pointKeys(p.Packages) {
					fmt.Fprintf(w, "package    %s %s\n", k, p.Packages[k])
				}
				return nil
			},
		}, {
			Name:      "release",
			Usage:     "forget a rollback point; retention decides about its set again",
			ArgsUsage: "ID",
			Description: `Removes the point's record from the catalogue and the repository. A point an
open or unfinalized upgrade still needs is refused.

EXAMPLES:
   dhis2-life point release pt-20261203T071500Z-1a2b`,
			Action: func(c *cli.Context) error {
				a, cat, err := loadCatalog(c)
				if err != nil {
					return err
				}
				defer a.Close()
				if c.NArg() != 1 {
					return usageErr("point release takes one point ID (see `dhis2-life points`)")
				}
				inUse := func(id string) string {
					recs, _ := upgrade.List(cat, "")
					for _, r := range recs {
						if r.Point == id && (r.Open() || r.State == upgrade.StateDone) {
							return "upgrade " + r.ID + " (" + r.State + ")"
						}
					}
					return ""
				}
				p, err := point.Release(c.Context, cat, a.Repo, c.Args().First(), inUse)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "rollback point %s released; set %s is no longer pinned by it\n", p.ID, p.Set)
				return nil
			},
		}},
	}
}

func cmdPoints() *cli.Command {
	return &cli.Command{
		Name:  "points",
		Usage: "list rollback points",
		Description: `Lists rollback points, oldest first.

EXAMPLES:
   dhis2-life points
   dhis2-life points --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			a, cat, err := loadCatalog(c)
			if err != nil {
				return err
			}
			defer a.Close()
			ps, err := point.List(cat, c.String("instance"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if ps == nil {
					ps = []*point.Point{}
				}
				return printJSON(c.App.Writer, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(c.App.Writer, "no rollback points (take one with `dhis2-life point create`)")
				return nil
			}
			t := ui.NewTable("ID", "INSTANCE", "CREATED", "SET", "POSTGRES", "DHIS2", "REASON")
			for _, p := range ps {
				t.Row(p.ID, p.Instance, p.Created.Format("2006-01-02 15:04"), p.Set, p.PostgresVersion, p.DHIS2Version, p.Reason)
			}
			return t.Write(c.App.Writer)
		},
	}
}

func verifiedText(p *point.Point) string {
	switch {
	case p.Verified == nil:
		return ", not drilled"
	case *p.Verified:
		return ", drill passed"
	}
	return ", drill FAILED"
}

func pointKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// loadInstance loads the app and resolves --instance.
func loadInstance(c *cli.Context) (*app.App, string, error) {
	a, err := load(c)
	if err != nil {
		return nil, "", err
	}
	name, err := instanceName(c, a)
	if err != nil {
		a.Close()
		return nil, "", err
	}
	return a, name, nil
}

// loadCatalog loads the app and opens the catalogue.
func loadCatalog(c *cli.Context) (*app.App, *catalog.Catalog, error) {
	a, err := load(c)
	if err != nil {
		return nil, nil, err
	}
	cat, err := a.Catalog()
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, cat, nil
}

// jobEnv is what lifecycle's snapshot and drill jobs need.
func jobEnv(a *app.App, in *config.Instance) (lifecycle.Env, error) {
	self, err := os.Executable()
	if err != nil {
		return lifecycle.Env{}, fmt.Errorf("finding own executable for the dump producer: %w", err)
	}
	return lifecycle.Env{App: a, Instance: in, Store: &lifecycle.Store{Path: catalog.Path(a.Config.StateDir)},
		Producer:    []string{self, "--config", a.Config.Path, "--log-level", "warn", "internal", "dump-stream", "--instance", in.Name},
		ToolVersion: version}, nil
}

// createPoint takes a rollback point of instance name.
func createPoint(c *cli.Context, a *app.App, name, reason string, verify bool) (*point.Point, error) {
	return createPointCtx(c.Context, a, name, reason, verify)
}

func createPointCtx(ctx context.Context, a *app.App, name, reason string, verify bool) (*point.Point, error) {
	in := a.Config.Instances[name]
	env, err := jobEnv(a, in)
	if err != nil {
		return nil, err
	}
	cat, err := a.Catalog()
	if err != nil {
		return nil, err
	}
	o := point.Options{Catalog: cat, Repo: a.Repo, Log: a.Log, Instance: in, Reason: reason,
		Snapshot: func(ctx context.Context) (*manifest.Manifest, error) {
			res, err := lifecycle.SnapshotJob(ctx, env)
			return res.Manifest, err
		}}
	if verify {
		o.Verify = func(ctx context.Context, m *manifest.Manifest) error {
			res, err := lifecycle.VerifyJob(ctx, env)
			if err == nil && res.Drill != nil && res.Drill.Set != m.ID {
				return errors.New("the drill did not drill the point's set")
			}
			return err
		}
	}
	return point.Create(ctx, o)
}
