package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

// daemonOptions builds the lifecycle options shared by `daemon` and `schedule run`.
func daemonOptions(c *cli.Context) (lifecycle.Options, error) {
	self, err := os.Executable()
	if err != nil {
		return lifecycle.Options{}, fmt.Errorf("finding own executable for the dump producer: %w", err)
	}
	return lifecycle.Options{
		ConfigPath:  config.ResolvePath(c.String("config")),
		Log:         logger(c),
		ToolVersion: version,
		Producer: func(cfg *config.Config, instance string) []string {
			return []string{self, "--config", cfg.Path, "--log-level", "warn", "internal", "dump-stream", "--instance", instance}
		},
		Notifiers: testNotifierHook,
	}, nil
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
			o, err := daemonOptions(c)
			if err != nil {
				return err
			}
			d, err := lifecycle.New(o)
			if err != nil {
				if _, ok := err.(*config.Error); ok {
					return err
				}
				return &exitError{code: exitUsage, err: err}
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
