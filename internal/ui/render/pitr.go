package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/internal/wal"
	"github.com/dhis2-life/dhis2-life/pitr"
)

const pitrTime = "2006-01-02 15:04:05"

// BaseBackup prints `base-backup`.
func BaseBackup(w io.Writer, asJSON bool, m *pitr.BaseManifest) error {
	if asJSON {
		return JSON(w, m)
	}
	_, err := fmt.Fprintf(w, "base backup %s of %s stored in %s: %s, WAL %s..%s (LSN %s..%s, timeline %d), %s added\n",
		m.ID, m.Instance, ui.Duration(m.Finished.Sub(m.Started)), ui.Bytes(m.Part.Bytes), m.StartWAL, m.StopWAL,
		m.StartLSN, m.StopLSN, m.Timeline, ui.Bytes(m.Part.AddedPacked))
	return err
}

// BaseBackups prints `base-backup --list`.
func BaseBackups(w io.Writer, asJSON bool, bases []*pitr.BaseManifest) error {
	if asJSON {
		return JSON(w, bases)
	}
	t := ui.NewTable("ID", "FINISHED", "START LSN", "STOP LSN", "TIMELINE", "SIZE")
	for _, b := range bases {
		t.Row(b.ID, b.Finished.Format(time.RFC3339), b.StartLSN, b.StopLSN, fmt.Sprint(b.Timeline), ui.Bytes(b.Part.Bytes))
	}
	return t.Write(w)
}

// WALSetup prints `wal setup`.
func WALSetup(w io.Writer, asJSON bool, plan *pitr.SetupPlan) error {
	if asJSON {
		return JSON(w, plan)
	}
	changes := false
	for _, s := range plan.Settings {
		mark := "ok    "
		if s.Change {
			changes = true
			mark = "change"
			if plan.Applied {
				mark = "set   "
			}
		}
		fmt.Fprintf(w, "%s %-16s %q", mark, s.Name, s.Current)
		if s.Change {
			fmt.Fprintf(w, " -> %q", s.Wanted)
		}
		fmt.Fprintln(w)
	}
	switch {
	case !plan.Applied && changes:
		fmt.Fprintln(w, "run again with --apply to set these (archive_mode and wal_level then need a restart of PostgreSQL)")
	case plan.RestartNeeded:
		fmt.Fprintln(w, "restart PostgreSQL for archive_mode/wal_level to take effect (e.g. systemctl restart postgresql@15-main)")
	default:
		fmt.Fprintln(w, "WAL archiving is configured")
	}
	return nil
}

// WALList prints `wal list`.
func WALList(w io.Writer, asJSON bool, objs []wal.Object) error {
	if asJSON {
		return JSON(w, objs)
	}
	t := ui.NewTable("NAME", "KIND", "STORED", "ARCHIVED")
	for _, o := range objs {
		t.Row(o.Name, o.Kind, ui.Bytes(o.Size), o.Modified.UTC().Format(time.RFC3339))
	}
	return t.Write(w)
}

// WALPrune prints `wal prune`.
func WALPrune(w io.Writer, asJSON bool, plan *pitr.PrunePlan) error {
	if asJSON {
		return JSON(w, plan)
	}
	for _, b := range plan.KeepBases {
		fmt.Fprintf(w, "keep   base %s (%s)\n", b.ID, strings.Join(b.Reasons, "; "))
	}
	for _, b := range plan.ForgetBases {
		fmt.Fprintf(w, "forget base %s (%s)\n", b.ID, strings.Join(b.Reasons, "; "))
	}
	verb := "deleted"
	if !plan.Applied {
		verb = "would delete"
	}
	cutoff := plan.Cutoff
	if cutoff == "" {
		cutoff = "(no base backup: nothing is deleted)"
	}
	_, err := fmt.Fprintf(w, "WAL: %s %d files older than %s, %d kept\n", verb, len(plan.DeleteWAL), cutoff, plan.KeptWAL)
	return err
}

// PITRRestore prints `restore --pitr`.
func PITRRestore(w io.Writer, asJSON bool, res *pitr.RestoreResult) error {
	if asJSON {
		return JSON(w, res)
	}
	reached := "no transaction after the base backup"
	if res.Reached != nil {
		reached = "last transaction committed " + res.Reached.Local().Format("2006-01-02 15:04:05.000")
	}
	fmt.Fprintf(w, "cluster restored to %s from base backup %s into %s in %s: %s, listening on port %d (%s)\n",
		res.Target.Local().Format(pitrTime), res.Base, res.DataDir, ui.Duration(secs(res.Seconds)), res.State, res.Port, reached)
	if res.State == "paused" {
		fmt.Fprintln(w, "paused in recovery: inspect it, then SELECT pg_wal_replay_resume(); to promote it")
	}
	return nil
}

// PITRDrill prints `verify --pitr`: each check and the verdict.
func PITRDrill(w io.Writer, asJSON bool, rep *pitr.DrillReport) error {
	if asJSON {
		return JSON(w, rep)
	}
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
	_, err := fmt.Fprintf(w, "PITR drill to %s %s: restore took %s, achieved RPO %s\n", rep.Target.Local().Format(pitrTime),
		verdict, ui.Duration(secs(rep.RestoreSeconds)), ui.Duration(secs(rep.RPOSeconds)))
	return err
}

// walStatus prints the WAL archiving lines of an instance's status (nothing without [wal]).
func walStatus(w io.Writer, ws *pitr.WALStatus) {
	if ws == nil {
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
			d.Target.Local().Format(pitrTime), ui.Duration(secs(d.RPOSeconds)))
	}
}
