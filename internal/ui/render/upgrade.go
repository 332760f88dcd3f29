package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/point"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
)

// PointCreated prints `point create`.
func PointCreated(w io.Writer, asJSON bool, p *point.Point) error {
	if asJSON {
		return JSON(w, p)
	}
	fmt.Fprintf(w, "rollback point %s of %s: set %s, PostgreSQL %s, DHIS2 %s%s\n", p.ID, p.Instance, p.Set, p.PostgresVersion, p.DHIS2Version, verifiedText(p))
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return nil
}

// PointShow prints `point show`; JSON includes the copies of the config files.
func PointShow(w io.Writer, asJSON bool, p *point.Point) error {
	if asJSON {
		return JSON(w, p)
	}
	fmt.Fprintf(w, "point      %s\ninstance   %s\nset        %s\ncreated    %s\nreason     %s\npostgres   %s\ndhis2      %s\n",
		p.ID, p.Instance, p.Set, p.Created.Format("2006-01-02 15:04:05Z"), p.Reason, p.PostgresVersion, p.DHIS2Version)
	fmt.Fprintf(w, "cluster    %s (port %d)\nos         %s\nverified   %s\n", p.Cluster.DataDir, p.Cluster.Port, p.OSRelease, strings.TrimPrefix(verifiedText(p), ", "))
	for _, k := range lifecycle.SortedKeys(p.Files) {
		fmt.Fprintf(w, "file       %s (%s)\n", k, ui.Bytes(int64(len(p.Files[k]))))
	}
	for _, k := range lifecycle.SortedKeys(p.Packages) {
		fmt.Fprintf(w, "package    %s %s\n", k, p.Packages[k])
	}
	return nil
}

// PointReleased prints `point release`.
func PointReleased(w io.Writer, p *point.Point) error {
	_, err := fmt.Fprintf(w, "rollback point %s released; set %s is no longer pinned by it\n", p.ID, p.Set)
	return err
}

// Points prints `points`.
func Points(w io.Writer, asJSON bool, ps []*point.Point) error {
	if asJSON {
		if ps == nil {
			ps = []*point.Point{}
		}
		return JSON(w, ps)
	}
	if len(ps) == 0 {
		_, err := fmt.Fprintln(w, "no rollback points (take one with `dhis2-life point create`)")
		return err
	}
	t := ui.NewTable("ID", "INSTANCE", "CREATED", "SET", "POSTGRES", "DHIS2", "REASON")
	for _, p := range ps {
		t.Row(p.ID, p.Instance, p.Created.Format("2006-01-02 15:04"), p.Set, p.PostgresVersion, p.DHIS2Version, p.Reason)
	}
	return t.Write(w)
}

func verifiedText(p *point.Point) string {
	switch {
	case p.Verified == nil:
		return ", not drilled"
	case *p.Verified:
		return ", drill passed"
	}
	return ", drill FAILED"
}

// Upgrades prints `upgrades`.
func Upgrades(w io.Writer, asJSON bool, recs []*upgrade.Record) error {
	if asJSON {
		if recs == nil {
			recs = []*upgrade.Record{}
		}
		return JSON(w, recs)
	}
	if len(recs) == 0 {
		_, err := fmt.Fprintln(w, "no upgrades")
		return err
	}
	t := ui.NewTable("ID", "INSTANCE", "FROM", "TO", "METHOD", "STATE", "STEP", "DOWNTIME", "POINT")
	for _, r := range recs {
		dt := "-"
		if d := r.Downtime(); d > 0 {
			dt = ui.Duration(d)
		}
		t.Row(r.ID, r.Instance, fmt.Sprint(r.From), fmt.Sprint(r.To), r.Method, r.State, r.Step, dt, r.Point)
	}
	return t.Write(w)
}

// UpgradeRecord prints an upgrade's record after run, resume, rollback or finalize: JSON
// only (the human view is the step lines printed while it ran). A nil record prints nothing.
func UpgradeRecord(w io.Writer, asJSON bool, r *upgrade.Record) error {
	if !asJSON || r == nil {
		return nil
	}
	return JSON(w, r)
}

// UpgradePlan prints `upgrade postgres plan`: every check, every step and how to roll back.
func UpgradePlan(w io.Writer, asJSON bool, p *upgrade.PlanReport) error {
	if asJSON {
		return JSON(w, p)
	}
	fmt.Fprintf(w, "upgrade of %s: PostgreSQL %d -> %d, method %s\n", p.Instance, p.From, p.To, p.Method)
	fmt.Fprintf(w, "blue:  %s, port %d, programs %s\n", p.Blue.DataDir, p.Blue.Port, p.Blue.BinDir)
	fmt.Fprintf(w, "green: %s, programs %s (takes port %d)\n\nchecks:\n", p.Green.DataDir, p.Green.BinDir, p.Blue.Port)
	for _, ch := range p.Checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		line := fmt.Sprintf("  %s %-20s %s", mark, ch.Name, ch.Detail)
		if !ch.OK && ch.Fix != "" {
			line += " — fix: " + ch.Fix
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "\nsteps:")
	for i, s := range p.Steps {
		fmt.Fprintf(w, "  %2d. %s\n", i+1, s)
	}
	_, err := fmt.Fprintf(w, "\nrollback: %s\n", p.Rollback)
	return err
}
