package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdVerify() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "run a restore drill: restore a set into scratch space and prove it",
		ArgsUsage: "ID|latest",
		Description: `Restores the set into a scratch database on the instance's server (needs
admin_database or a role with CREATEDB) and its files into a temporary directory, then
checks: row counts equal the manifest, flyway version, required extensions, sequences,
excluded tables exist and are empty, every fileresource has its file (size and md5),
and restic check --read-data-subset. Records the result, the restore time (RTO) and
the data age (RPO) in the catalogue and drops the scratch database. Exit code 3 when a
check fails. Refused while another job of the instance runs.

EXAMPLES:
   dhis2-life verify latest
   dhis2-life verify 20261127T020000Z-3fa1 --json
   dhis2-life verify latest --read-data-subset 10%
   dhis2-life verify --pitr "2026-12-01 14:05:00" --instance hmis --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag,
			&cli.StringFlag{Name: "read-data-subset", Value: lifecycle.DefaultReadDataSubset, Usage: "restic check --read-data-subset `SUBSET` (e.g. 5%, 1/10; empty = none)"},
			&cli.BoolFlag{Name: "keep-scratch", Usage: "leave the scratch database and files for inspection"},
			&cli.StringFlag{Name: "pitr", Usage: "point-in-time drill: restore to `TIME` in a scratch cluster and check rows up to it are there, later ones not"},
		},
		Action: func(c *cli.Context) error {
			if c.IsSet("pitr") {
				return withRunner(verifyPITR)(c)
			}
			return withSet(verifySet)(c)
		},
	}
}

// verifySet drills one snapshot set.
func verifySet(c *cli.Context, r *lifecycle.Runner, m *manifest.Manifest) error {
	prog := progress(c, r.App, "verify "+m.ID)
	rep, err := r.Verify(c.Context, m, lifecycle.VerifyOptions{ReadDataSubset: c.String("read-data-subset"),
		KeepScratch: c.Bool("keep-scratch"), Progress: func(done, total int64) { prog.Update(done, total, -1, "restoring") }})
	if rep == nil || (err != nil && !errors.Is(err, lifecycle.ErrDrillFailed)) {
		return err
	}
	prog.Done("drill finished")
	if rerr := render.Verify(c.App.Writer, c.Bool("json"), m.ID, rep); rerr != nil {
		return rerr
	}
	return err
}
