package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

// pitrRestoreFlags are restore's point-in-time flags.
func pitrRestoreFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pitr", Usage: "restore the cluster to `TIME` (\"2026-12-01 14:05:00\" local time, or RFC 3339) from a base backup and the WAL archive"},
		&cli.StringFlag{Name: "to-data-dir", Usage: "with --pitr: new or empty data `DIR` for the restored cluster"},
		&cli.IntFlag{Name: "port", Usage: "with --pitr: `PORT` the restored cluster listens on (127.0.0.1)"},
		&cli.BoolFlag{Name: "pause", Usage: "with --pitr: stay paused in recovery at the target (read-only) instead of promoting"},
	}
}

// restorePITR is `restore --pitr TIME --to-data-dir DIR --port P [--pause]`.
func restorePITR(c *cli.Context, r *lifecycle.Runner) error {
	target, err := lifecycle.ParsePITRTime(c.String("pitr"))
	if err != nil {
		return err
	}
	if c.NArg() != 0 {
		return usageErr("restore --pitr takes no set: it starts from the newest base backup before the time")
	}
	if c.String("to-db") != "" || c.String("files-to") != "" || c.Bool("from-archive") {
		return usageErr("restore --pitr restores a whole cluster into --to-data-dir: it takes no --to-db, --files-to or --from-archive")
	}
	res, err := r.RestorePITR(c.Context, lifecycle.PITRRestoreRequest{Instance: c.String("instance"), Target: target,
		DataDir: c.String("to-data-dir"), Port: c.Int("port"), Pause: c.Bool("pause")})
	if err != nil {
		return err
	}
	return render.PITRRestore(c.App.Writer, c.Bool("json"), res)
}

// verifyPITR is `verify --pitr TIME`: the point-in-time drill (exit 3 when a check fails).
func verifyPITR(c *cli.Context, r *lifecycle.Runner) error {
	target, err := lifecycle.ParsePITRTime(c.String("pitr"))
	if err != nil {
		return err
	}
	rep, err := r.VerifyPITR(c.Context, c.String("instance"), target, c.Bool("keep-scratch"))
	if rep == nil || (err != nil && !errors.Is(err, lifecycle.ErrDrillFailed)) {
		return err
	}
	if rerr := render.PITRDrill(c.App.Writer, c.Bool("json"), rep); rerr != nil {
		return rerr
	}
	return err
}
