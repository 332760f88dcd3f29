package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
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
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				p, err := r.CreatePoint(c.Context, c.String("instance"), c.String("reason"), c.Bool("verify"))
				if err != nil {
					return err
				}
				return render.PointCreated(c.App.Writer, c.Bool("json"), p)
			}),
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
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				if c.NArg() != 1 {
					return usageErr("point show takes one point ID (see `dhis2-life points`)")
				}
				p, err := r.Point(c.Args().First())
				if err != nil {
					return err
				}
				return render.PointShow(c.App.Writer, c.Bool("json"), p)
			}),
		}, {
			Name:      "release",
			Usage:     "forget a rollback point; retention decides about its set again",
			ArgsUsage: "ID",
			Description: `Removes the point's record from the catalogue and the repository. A point an
open or unfinalized upgrade still needs is refused.

EXAMPLES:
   dhis2-life point release pt-20261203T071500Z-1a2b`,
			Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
				if c.NArg() != 1 {
					return usageErr("point release takes one point ID (see `dhis2-life points`)")
				}
				p, err := r.ReleasePoint(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				return render.PointReleased(c.App.Writer, p)
			}),
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
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			ps, err := r.Points(c.String("instance"))
			if err != nil {
				return err
			}
			return render.Points(c.App.Writer, c.Bool("json"), ps)
		}),
	}
}
