package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/restore"
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
check fails.

EXAMPLES:
   dhis2-life verify latest
   dhis2-life verify 20261127T020000Z-3fa1 --json
   dhis2-life verify latest --read-data-subset 10%
   dhis2-life verify --pitr "2026-12-01 14:05:00" --instance hmis --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag,
			&cli.StringFlag{Name: "read-data-subset", Value: "2%", Usage: "restic check --read-data-subset `SUBSET` (e.g. 5%, 1/10; empty = none)"},
			&cli.BoolFlag{Name: "keep-scratch", Usage: "leave the scratch database and files for inspection"},
			&cli.StringFlag{Name: "pitr", Usage: "point-in-time drill: restore to `TIME` in a scratch cluster and check rows up to it are there, later ones not"},
		},
		Action: func(c *cli.Context) error {
			if c.IsSet("pitr") {
				return verifyPITR(c)
			}
			s, err := loadSet(c)
			if err != nil {
				return err
			}
			defer s.app.Close()
			a, cat, m := s.app, s.cat, s.m
			in, ok := a.Config.Instances[m.Instance]
			if !ok {
				return usageErr("set %s belongs to instance %q, which is not configured here", m.ID, m.Instance)
			}
			if err := a.Preflight(c.Context); err != nil {
				return err
			}
			prog := newProgress(c, a.Log, "verify "+m.ID)
			rep, err := restore.Drill(c.Context, restore.DrillOptions{
				Restore: restore.Options{Config: a.Config, Repo: a.Repo, Log: a.Log, Manifest: m,
					Target: app.InstanceConn(in), Admin: app.AdminConn(in), Jobs: a.Config.Tuning.RestoreJobs,
					Progress: func(done, total int64) { prog.Update(done, total, -1, "restoring") }},
				ReadDataSubset: c.String("read-data-subset"), Catalog: cat, KeepScratch: c.Bool("keep-scratch"),
			})
			if err != nil {
				return err
			}
			prog.Done("drill finished")
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else {
				w := c.App.Writer
				for _, ch := range rep.Checks {
					mark := "ok  "
					if !ch.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(w, "%s %-18s %s\n", mark, ch.Name, ch.Detail)
				}
				verdict := "PASSED"
				if !rep.OK {
					verdict = "FAILED"
				}
				fmt.Fprintf(w, "drill of set %s %s: restore took %s (RTO), data age %s (RPO)\n", m.ID, verdict,
					ui.Duration(secs(rep.RestoreSeconds)), ui.Duration(secs(rep.DataAgeSeconds)))
			}
			if !rep.OK {
				return &exitError{code: exitVerify, err: fmt.Errorf("drill of set %s failed: see the checks above", m.ID)}
			}
			return nil
		},
	}
}
