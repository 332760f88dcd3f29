package render

import (
	"fmt"
	"io"
	"sort"

	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
)

// DHIS2Record prints a DHIS2 upgrade's record after run, resume, rollback or finalize: JSON,
// or (the step lines were printed while it ran) the rows entered on green since the switch
// that a rollback found. A nil record prints nothing.
func DHIS2Record(w io.Writer, asJSON bool, r *upgrade.DHIS2Record) error {
	if r == nil {
		return nil
	}
	if asJSON {
		return JSON(w, r)
	}
	if len(r.SinceSwitch) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nrows entered on green since the switch (%s):\n", r.SwitchedDB)
	t := ui.NewTable("TABLE", "CREATED", "UPDATED", "CSV")
	for _, ch := range r.SinceSwitch {
		t.Row(ch.Table, fmt.Sprint(ch.Created), fmt.Sprint(ch.Updated), ch.CSV)
	}
	return t.Write(w)
}

// DHIS2Plan prints `upgrade dhis2 plan`: every check, every step and how to roll back.
func DHIS2Plan(w io.Writer, asJSON bool, p *upgrade.DHIS2Plan) error {
	if asJSON {
		return JSON(w, p)
	}
	fmt.Fprintf(w, "upgrade of %s: DHIS2 %s -> %s (%s)\n", p.Instance, p.From, p.To, p.WAR)
	fmt.Fprintf(w, "blue:  database %s, upstream %s\n", p.BlueDB, p.BlueUpstream)
	fmt.Fprintf(w, "green: database %s, upstream %s\n\nchecks:\n", p.GreenDB, p.GreenUpstream)
	writeChecks(w, p.Checks, 15)
	fmt.Fprintln(w, "\nsteps:")
	for i, s := range p.Steps {
		fmt.Fprintf(w, "  %2d. %s\n", i+1, s)
	}
	_, err := fmt.Fprintf(w, "\nrollback: %s\n", p.Rollback)
	return err
}

func writeChecks(w io.Writer, checks []upgrade.Check, width int) {
	for _, ch := range checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		line := fmt.Sprintf("  %s %-*s %s", mark, width, ch.Name, ch.Detail)
		if !ch.OK && ch.Fix != "" {
			line += " — fix: " + ch.Fix
		}
		fmt.Fprintln(w, line)
	}
}

// Rehearsal prints `upgrade dhis2 rehearse`: migrations applied and failed, timings and the
// app log's tail when the new version did not come up.
func Rehearsal(w io.Writer, asJSON bool, r *upgrade.Rehearsal) error {
	if r == nil {
		return nil
	}
	if asJSON {
		return JSON(w, r)
	}
	status := "UP"
	if !r.OK {
		status = "FAILED"
	}
	fmt.Fprintf(w, "\nrehearsal of DHIS2 %s -> %s on %s (set %s): %s\n", r.From, r.To, r.Target, r.Set, status)
	fmt.Fprintf(w, "  clone %s, migrations %s, start-up %s\n", ui.Duration(secs(r.CloneSeconds)), ui.Duration(secs(r.MigrationSecs)), ui.Duration(secs(r.StartupSecs)))
	fmt.Fprintf(w, "  flyway rows %d -> %d: %d migrations applied, %d failed\n", r.FlywayBefore, r.FlywayAfter, len(r.Applied), len(r.Failed))
	for _, m := range r.Applied {
		fmt.Fprintf(w, "    ok     %-10s %6d ms  %s\n", m.Version, m.Millis, m.Description)
	}
	for _, m := range r.Failed {
		fmt.Fprintf(w, "    FAILED %-10s %6d ms  %s\n", m.Version, m.Millis, m.Description)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	if r.LogTail != "" {
		fmt.Fprintf(w, "  app log (tail):\n%s\n", r.LogTail)
	}
	return nil
}

// OSRecord prints an OS upgrade: JSON, or with report the host before and after, the checks
// and the configuration diffs (prepare prints its step lines while it runs).
func OSRecord(w io.Writer, asJSON, report bool, r *upgrade.OSRecord) error {
	if r == nil {
		return nil
	}
	if asJSON {
		return JSON(w, r)
	}
	if !report {
		return nil
	}
	fmt.Fprintf(w, "OS upgrade %s of %s (%s), rollback point %s\n", r.ID, r.Instance, r.State, r.Point)
	after := upgrade.OSState{}
	if r.After != nil {
		after = *r.After
	}
	fmt.Fprintf(w, "  %-22s %-40s %s\n", "", "before", "after")
	fmt.Fprintf(w, "  %-22s %-40s %s\n", "os", r.Before.OSRelease, orDash(after.OSRelease))
	fmt.Fprintf(w, "  %-22s %-40s %s\n", "postgresql", r.Before.Postgres, orDash(after.Postgres))
	names := map[string]bool{}
	for k := range r.Before.Packages {
		names[k] = true
	}
	for k := range after.Packages {
		names[k] = true
	}
	var keys []string
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, a := r.Before.Packages[k], after.Packages[k]
		if r.After != nil && a == b {
			continue // unchanged after the upgrade
		}
		fmt.Fprintf(w, "  %-22s %-40s %s\n", k, orDash(b), orDash(a))
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w, "checks:")
		writeChecks(w, r.Checks, 16)
	}
	for _, d := range r.Diffs {
		fmt.Fprintf(w, "config %s: %s\n", d.Path, d.Change)
		for _, l := range d.Lines {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	return nil
}
