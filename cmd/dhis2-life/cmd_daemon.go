package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/lifecycle/scheduler"
)

// newDaemon builds the scheduler of `daemon` and `schedule run`; a configuration it refuses
// is a usage error.
func newDaemon(c *cli.Context, noListen bool) (*scheduler.Daemon, error) {
	d, err := scheduler.New(scheduler.Options{ConfigPath: config.ResolvePath(c.String("config")), Log: logger(c),
		ToolVersion: version, NoListen: noListen})
	if err != nil {
		if _, ok := err.(*config.Error); ok {
			return nil, err
		}
		return nil, &exitError{code: exitUsage, err: err}
	}
	return d, nil
}

func cmdDaemon() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run the schedules: snapshots, drills, metrics and alerts",
		Description: `Runs the jobs of [schedule] (snapshot, verify) for every instance, one job per
instance at a time (schedule.overlap = "wait" queues, "skip" skips), records every run in the
catalogue, serves Prometheus metrics on daemon.metrics_listen (/metrics, /status, /healthz),
writes daemon.textfile_dir/dhis2_life.prom for node_exporter, and alerts through [notify].
At start-up a job whose last success is older than its schedule's period runs once.

SIGHUP reloads the configuration (a broken one is logged and the old one kept); SIGTERM
or SIGINT stops scheduling, lets a running job finish for daemon.stop_timeout, then
cancels it and records the outcome.

EXAMPLES:
   dhis2-life daemon
   systemctl reload dhis2-life   # SIGHUP`,
		Action: func(c *cli.Context) error {
			d, err := newDaemon(c, false)
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			if addr := d.Addr(); addr != "" {
				fmt.Fprintf(c.App.ErrWriter, "dhis2-life daemon: metrics on http://%s/metrics\n", addr)
			}
			return d.Run(c.Context, hup)
		},
	}
}
