package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

// Clone prints `clone`: the plan of a dry run, or the clone now in place.
func Clone(w io.Writer, asJSON bool, o *lifecycle.CloneOutcome) error {
	t, m := o.Target, o.Manifest
	switch {
	case o.Live && o.Record == nil:
		_, err := fmt.Fprintf(w, "plan: take a snapshot set of %s now (--from live), then clone it into %s\n", t.Instance, t.Name)
		return err
	case o.Plan != nil:
		return clonePlan(w, asJSON, o)
	case asJSON:
		return JSON(w, o.Record)
	}
	rec := o.Record
	how := fmt.Sprintf("restore %s", ui.Duration(secs(rec.RestoreSeconds)))
	if rec.FromTemplate {
		how = fmt.Sprintf("copy of template %s in %s", rec.Template, ui.Duration(secs(rec.CopySeconds)))
	}
	fmt.Fprintf(w, "clone %s (%s profile) now holds set %s of %s (data as of %s): %s, %s in total (%s)\n",
		t.Name, t.Profile, m.ID, m.Instance, when(m.Time), ui.Bytes(rec.Bytes), ui.Duration(secs(rec.Seconds)), how)
	for _, ch := range rec.Changes {
		fmt.Fprintf(w, "  %-30s %6d  %s\n", ch.Rule, ch.Rows, ch.What)
	}
	fmt.Fprintf(w, "  %d verification checks passed\n", len(rec.Checks))
	if r := rec.PII; r != nil {
		fmt.Fprintf(w, "  personal data: no production value found (%d values sought in %d tables, %d columns, %d files; %s)\n", r.Values, r.Tables, r.Columns, r.Files, ui.Duration(secs(r.Seconds)))
	}
	for _, cc := range rec.Conf {
		fmt.Fprintf(w, "  dhis.conf %s: %s\n", cc.Key, cc.Action)
	}
	if rec.Expires != nil {
		fmt.Fprintf(w, "  expires %s (ttl; `dhis2-life clone expire` destroys it)\n", when(*rec.Expires))
	}
	warnings(w, rec.Warnings)
	return nil
}

func clonePlan(w io.Writer, asJSON bool, o *lifecycle.CloneOutcome) error {
	p, t, m := o.Plan, o.Target, o.Manifest
	if asJSON {
		return JSON(w, map[string]any{"dry_run": true, "target": t.Name, "profile": t.Profile, "set": m.ID, "instance": m.Instance,
			"generation": p.Gen.String(), "database": p.Target.Describe(), "temporary_database": p.Temp,
			"template": p.Template, "template_ready": p.TemplateReady, "home": p.Home, "sessions": p.Sessions})
	}
	fmt.Fprintf(w, "plan: clone set %s of %s (DHIS2 %s, data as of %s) into target %s (%s profile)\n",
		m.ID, m.Instance, p.Gen, when(m.Time), t.Name, t.Profile)
	switch {
	case p.Template != "" && p.TemplateReady:
		fmt.Fprintf(w, "  copy template %s into %s\n", p.Template, p.Temp)
	case p.Template != "":
		fmt.Fprintf(w, "  restore into template %s, scrub it, then copy it into %s\n", p.Template, p.Temp)
	default:
		fmt.Fprintf(w, "  restore into %s\n", p.Temp)
	}
	fmt.Fprintf(w, "  scrub (%s) in one transaction, %d custom scrub_sql entries; verify every rule\n", t.Profile, len(p.Scrub.CustomSQL))
	fmt.Fprintf(w, "  banner: %q\n", p.Scrub.Title())
	if p.Home != "" {
		fmt.Fprintf(w, "  files and a rewritten dhis.conf into %s\n", p.Home)
	}
	if len(t.BeforeHook) > 0 {
		fmt.Fprintf(w, "  before_hook: %s\n", strings.Join(t.BeforeHook, " "))
	}
	fmt.Fprintf(w, "  swap: %s → %s%s (dropped), %s → %s\n", p.Database, p.Database, clone.OldSuffix, p.Temp, p.Database)
	if len(p.Sessions) > 0 {
		fmt.Fprintf(w, "  NOTE: %s has %d sessions now (%s): the swap needs them gone (before_hook or --terminate)\n", p.Database, len(p.Sessions), strings.Join(p.Sessions, ", "))
	}
	if len(t.AfterHook) > 0 {
		fmt.Fprintf(w, "  after_hook: %s\n", strings.Join(t.AfterHook, " "))
	}
	fmt.Fprintln(w, "nothing was changed (--dry-run)")
	return nil
}

// CloneDestroy prints `clone destroy`.
func CloneDestroy(w io.Writer, asJSON bool, res *clone.DestroyResult) error {
	if asJSON {
		return JSON(w, res)
	}
	fmt.Fprintf(w, "clone %s destroyed: databases %s; directories %s\n", res.Target, orNone(res.Databases), orNone(res.Dirs))
	warnings(w, res.Warnings)
	return nil
}

// CloneExpire prints `clone expire`.
func CloneExpire(w io.Writer, asJSON, dryRun bool, res []clone.ExpireResult) error {
	if asJSON {
		return JSON(w, res)
	}
	for _, r := range res {
		switch {
		case dryRun:
			fmt.Fprintf(w, "would destroy clone %s (expired %s)\n", r.Target, when(r.Expired))
		case r.Error == "":
			fmt.Fprintf(w, "destroyed clone %s (expired %s)\n", r.Target, when(r.Expired))
		}
	}
	switch {
	case dryRun:
		fmt.Fprintf(w, "%d clones expired; nothing was changed (--dry-run)\n", len(res))
	case len(res) == 0:
		fmt.Fprintln(w, "no clone has expired")
	}
	return nil
}

// Clones lists clones (`clones`).
func Clones(w io.Writer, asJSON bool, rows []lifecycle.CloneRow) error {
	if asJSON {
		return JSON(w, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no clones (make one with `dhis2-life clone --to TARGET`)")
		return nil
	}
	now := time.Now()
	tb := ui.NewTable("TARGET", "PROFILE", "SET", "DATA AS OF", "AGE", "TTL", "SIZE", "DATABASE").RightAlign(6)
	for _, r := range rows {
		ttl := "-"
		if r.ExpiresAt != nil {
			ttl = "expires in " + ui.Duration(time.Until(*r.ExpiresAt))
			if r.Expired {
				ttl = "EXPIRED"
			}
		}
		tb.Row(r.Target, r.Profile, r.Set, when(r.SetTime), ui.Age(r.Time, now), ttl, ui.Bytes(r.Bytes), r.Database)
	}
	return tb.Write(w)
}

// CloneScan prints `clone scan`: what was searched and where production values were found
// (never a value).
func CloneScan(w io.Writer, asJSON bool, target string, rep *clone.ScanReport) error {
	if asJSON {
		return JSON(w, rep)
	}
	fmt.Fprintf(w, "scanned clone %s: %d tables, %d text columns, %d rows, %d files for %d production values in %s\n",
		target, rep.Tables, rep.Columns, rep.Rows, rep.Files, rep.Values, ui.Duration(secs(rep.Seconds)))
	for _, h := range rep.Hits {
		fmt.Fprintf(w, "FOUND %s.%s: %d rows/files hold production values\n", h.Table, h.Column, h.Count)
	}
	if len(rep.Hits) == 0 {
		fmt.Fprintln(w, "no production value found")
	}
	return nil
}
