package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/scheduler"
)

func cmdSchedule() *cli.Command {
	return &cli.Command{
		Name:  "schedule",
		Usage: "show the schedules, write systemd timers, or run one job now",
		Subcommands: []*cli.Command{{
			Name:  "print",
			Usage: "print the next runs, or with --systemd the equivalent timer and service units",
			Description: `Without --systemd: each scheduled job with its cron spec and next run.
With --systemd: one .service/.timer pair per scheduled job, each running
"dhis2-life schedule run JOB" (use them instead of the daemon, not together with it).
--dir writes the units into a directory (e.g. /etc/systemd/system) instead of stdout.

EXAMPLES:
   dhis2-life schedule print
   dhis2-life schedule print --systemd --dir /etc/systemd/system && systemctl daemon-reload \
     && systemctl enable --now dhis2-life-snapshot.timer dhis2-life-verify.timer`,
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "systemd", Usage: "print systemd timer and service units"},
				&cli.StringFlag{Name: "dir", Usage: "write the units into `DIR` instead of printing them"},
				&cli.StringFlag{Name: "bin", Usage: "dhis2-life binary path in ExecStart (default: this executable)"},
			},
			Action: withApp(func(c *cli.Context, a *app.App) error {
				if !c.Bool("systemd") {
					scheduler.PrintNext(c.App.Writer, a.Config, time.Now())
					return nil
				}
				bin := c.String("bin")
				if bin == "" {
					var err error
					if bin, err = os.Executable(); err != nil {
						return err
					}
				}
				return scheduler.WriteUnits(c.App.Writer, a.Config, bin, c.String("dir"))
			}),
		}, {
			Name:      "run",
			Usage:     "run one job now, as the daemon would (records, metrics textfile, alerts)",
			ArgsUsage: "JOB",
			Description: `Runs snapshot or verify for one instance (--instance) or every instance, recording
the run, updating daemon.textfile_dir and alerting like the daemon. Timers written by
"schedule print --systemd" call this. Exit 1 when a run failed.`,
			Flags:  []cli.Flag{instanceFlag},
			Action: scheduleRun,
		}},
	}
}

func scheduleRun(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErr("schedule run takes one job: %v", lifecycle.Jobs)
	}
	job, err := lifecycle.ParseJob(c.Args().First())
	if err != nil {
		return usageErr("%v", err)
	}
	d, err := newDaemon(c, true)
	if err != nil {
		return err
	}
	defer d.Close()
	names := d.Config().InstanceNames()
	if n := c.String("instance"); n != "" {
		if _, err := d.Config().Instance(n); err != nil {
			return usageErr("%v", err)
		}
		names = []string{n}
	}
	var errs []error
	for _, n := range names {
		if err := d.RunJob(c.Context, n, job); err != nil && !errors.Is(err, lifecycle.ErrSkip) {
			if errors.Is(err, context.Canceled) {
				return err
			}
			errs = append(errs, fmt.Errorf("%s of %s: %w", job, n, err))
		}
	}
	return errors.Join(errs...)
}
