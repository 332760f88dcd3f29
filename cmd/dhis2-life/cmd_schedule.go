package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/lifecycle"
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
			Action: func(c *cli.Context) error {
				a, err := load(c)
				if err != nil {
					return err
				}
				defer a.Close()
				w := c.App.Writer
				if !c.Bool("systemd") {
					next := lifecycle.NextRuns(a.Config, time.Now())
					for _, job := range lifecycle.Jobs {
						if spec := lifecycle.ScheduleOf(a.Config, job); spec != "" {
							fmt.Fprintf(w, "%-14s %-16q next %s\n", job, spec, next[job].Local().Format(time.RFC3339))
						}
					}
					return nil
				}
				bin := c.String("bin")
				if bin == "" {
					if bin, err = os.Executable(); err != nil {
						return err
					}
				}
				units, err := lifecycle.SystemdUnits(a.Config, bin)
				if err != nil {
					return usageErr("%v", err)
				}
				if len(units) == 0 {
					return usageErr("nothing is scheduled: set [schedule] snapshot = \"0 2 * * *\" etc.")
				}
				names := make([]string, 0, len(units))
				for n := range units {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					if dir := c.String("dir"); dir != "" {
						if err := os.WriteFile(filepath.Join(dir, n), []byte(units[n]), 0o644); err != nil {
							return err
						}
						fmt.Fprintf(w, "wrote %s\n", filepath.Join(dir, n))
						continue
					}
					fmt.Fprintf(w, "# ---- %s ----\n%s\n", n, units[n])
				}
				return nil
			},
		}, {
			Name:      "run",
			Usage:     "run one job now, as the daemon would (records, metrics textfile, alerts)",
			ArgsUsage: "JOB",
			Description: `Runs snapshot or verify for one instance (--instance) or every instance, recording
the run, updating daemon.textfile_dir and alerting like the daemon. Timers written by
"schedule print --systemd" call this. Exit 1 when a run failed.`,
			Flags: []cli.Flag{instanceFlag},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErr("schedule run takes one job: %v", lifecycle.Jobs)
				}
				job, err := lifecycle.ParseJob(c.Args().First())
				if err != nil {
					return usageErr("%v", err)
				}
				o, err := daemonOptions(c)
				if err != nil {
					return err
				}
				o.NoListen = true
				d, err := lifecycle.New(o)
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
			},
		}},
	}
}
