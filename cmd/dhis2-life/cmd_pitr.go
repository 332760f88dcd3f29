package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/pitr"
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

// parseTarget parses a --pitr time: RFC 3339, or "YYYY-MM-DD HH:MM[:SS[.frac]]" in local time.
func parseTarget(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("--pitr %q is not a time: use \"2026-12-01 14:05:00\" (local time) or RFC 3339 such as 2026-12-01T14:05:00Z", s)
}

// restorePITR is `restore --pitr TIME --to-data-dir DIR --port P [--pause]`.
func restorePITR(c *cli.Context) error {
	target, err := parseTarget(c.String("pitr"))
	if err != nil {
		return err
	}
	if c.NArg() != 0 {
		return usageErr("restore --pitr takes no set: it starts from the newest base backup before the time")
	}
	if c.String("to-db") != "" || c.String("files-to") != "" || c.Bool("from-archive") {
		return usageErr("restore --pitr restores a whole cluster into --to-data-dir: it takes no --to-db, --files-to or --from-archive")
	}
	if c.String("to-data-dir") == "" || c.Int("port") == 0 {
		return usageErr("restore --pitr needs --to-data-dir DIR and --port PORT")
	}
	a, in, err := walInstance(c)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Preflight(c.Context); err != nil {
		return err
	}
	ro, err := pitrRestoreOptions(a, c, target)
	if err != nil {
		return err
	}
	ro.Instance = in
	ro.DataDir, ro.Port, ro.Pause = c.String("to-data-dir"), c.Int("port"), c.Bool("pause")
	res, err := pitr.Restore(c.Context, ro)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, res)
	}
	reached := "no transaction after the base backup"
	if res.Reached != nil {
		reached = "last transaction committed " + res.Reached.Local().Format("2006-01-02 15:04:05.000")
	}
	fmt.Fprintf(c.App.Writer, "cluster restored to %s from base backup %s into %s in %s: %s, listening on port %d (%s)\n",
		target.Local().Format("2006-01-02 15:04:05"), res.Base, res.DataDir, ui.Duration(secs(res.Seconds)), res.State, res.Port, reached)
	if res.State == "paused" {
		fmt.Fprintln(c.App.Writer, "paused in recovery: inspect it, then SELECT pg_wal_replay_resume(); to promote it")
	}
	return nil
}

func pitrRestoreOptions(a *app.App, c *cli.Context, target time.Time) (pitr.RestoreOptions, error) {
	in := a.Config.Instances[c.String("instance")]
	if in == nil {
		var err error
		if in, err = a.Config.Instance(""); err != nil {
			return pitr.RestoreOptions{}, usageErr("%v", err)
		}
	}
	bin, err := selfBinary(in)
	if err != nil {
		return pitr.RestoreOptions{}, err
	}
	return pitr.RestoreOptions{Instance: in, Repo: a.Repo, Log: a.Log, Target: target,
		RestoreCommand: pitr.Command(bin, a.Config.Path, in.Name, "fetch", "%f", "%p")}, nil
}

// verifyPITR is `verify --pitr TIME`: the point-in-time drill.
func verifyPITR(c *cli.Context) error {
	target, err := parseTarget(c.String("pitr"))
	if err != nil {
		return err
	}
	a, in, err := walInstance(c)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Preflight(c.Context); err != nil {
		return err
	}
	cat, err := a.Catalog()
	if err != nil {
		return err
	}
	ro, err := pitrRestoreOptions(a, c, target)
	if err != nil {
		return err
	}
	rep, err := pitr.Drill(c.Context, pitr.DrillOptions{Restore: ro, Production: app.InstanceConn(in), Catalog: cat, Margin: in.WAL.DrillMargin.Duration,
		KeepScratch: c.Bool("keep-scratch")})
	if err != nil {
		return err
	}
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
			fmt.Fprintf(w, "%s %-40s %s\n", mark, ch.Name, ch.Detail)
		}
		verdict := "PASSED"
		if !rep.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "PITR drill to %s %s: restore took %s, achieved RPO %s\n", target.Local().Format("2006-01-02 15:04:05"),
			verdict, ui.Duration(secs(rep.RestoreSeconds)), ui.Duration(secs(rep.RPOSeconds)))
	}
	if !rep.OK {
		return &exitError{code: exitVerify, err: errors.New("PITR drill failed: see the checks above")}
	}
	return nil
}

// addWALStatus adds the WAL archiving state of instances with [instances.NAME.wal] to a status
// report; lag past wal_max_lag is a problem (exit 3).
func addWALStatus(ctx context.Context, a *app.App, rep *lifecycle.Report) {
	for name, st := range rep.Instances {
		in := a.Config.Instances[name]
		if in == nil || in.WAL == nil || st == nil {
			continue
		}
		ws := pitr.Status(ctx, in, time.Now())
		if cat, err := a.Catalog(); err == nil {
			if d, err := pitr.LastDrill(cat, name); err == nil && d != nil {
				ws.LastDrill = d
				if !d.OK {
					ws.Problems = append(ws.Problems, "newest PITR drill ("+d.ID+") failed: see `dhis2-life verify --pitr`")
				}
			}
		}
		st.WAL = ws
		st.Problems = append(st.Problems, ws.Problems...)
		st.OK = len(st.Problems) == 0
		rep.OK = rep.OK && st.OK
	}
}

func printWALStatus(w io.Writer, v any) {
	ws, ok := v.(*pitr.WALStatus)
	if !ok {
		return
	}
	switch {
	case ws.Error != "":
		fmt.Fprintf(w, "  WAL archive     unknown (%s)\n", ws.Error)
	case ws.LastArchivedAt == nil:
		fmt.Fprintf(w, "  WAL archive     nothing archived yet (archive_mode %s)\n", ws.ArchiveMode)
	default:
		fmt.Fprintf(w, "  WAL archive     last %s, %s ago; waiting %s (wal_max_lag %s); %d failures\n", ws.LastArchived,
			ui.Duration(secs(ws.AgeSeconds)), ui.Duration(secs(ws.LagSeconds)), ui.Duration(secs(ws.MaxLagSeconds)), ws.FailedCount)
	}
	if d := ws.LastDrill; d != nil {
		verdict := "passed"
		if !d.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  last PITR drill %s %s ago, to %s, achieved RPO %s\n", verdict, ui.Duration(time.Since(d.Time)),
			d.Target.Local().Format("2006-01-02 15:04:05"), ui.Duration(secs(d.RPOSeconds)))
	}
}
