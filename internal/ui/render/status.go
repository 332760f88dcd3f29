package render

import (
	"fmt"
	"io"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

// Status prints `status`.
func Status(w io.Writer, asJSON bool, rep *lifecycle.Report) error {
	if asJSON {
		return JSON(w, rep)
	}
	for _, n := range lifecycle.SortedKeys(rep.Instances) {
		st := rep.Instances[n]
		verdict := "OK"
		if !st.OK {
			verdict = "PROBLEM"
		}
		fmt.Fprintf(w, "%s: %s\n", n, verdict)
		if s := st.LastSnapshot; s != nil {
			fmt.Fprintf(w, "  last snapshot   %s, %s ago, %s read, %s added (%d sets)\n", s.ID, ui.Duration(secs(s.AgeSeconds)), ui.Bytes(s.Bytes), ui.Bytes(s.AddedBytes), st.Snapshots)
		} else {
			fmt.Fprintf(w, "  last snapshot   none\n")
		}
		if d := st.LastGoodDrill; d != nil {
			fmt.Fprintf(w, "  last good drill %s ago, set %s, restore %s (RTO)\n", ui.Duration(secs(d.AgeSeconds)), d.SetID, ui.Duration(secs(d.RestoreSeconds)))
		} else {
			fmt.Fprintf(w, "  last good drill none\n")
		}
		if d := st.LastDrill; d != nil && !d.OK {
			fmt.Fprintf(w, "  newest drill    FAILED %s ago (set %s)\n", ui.Duration(secs(d.AgeSeconds)), d.SetID)
		}
		for _, job := range lifecycle.Jobs {
			if t, ok := st.NextRuns[job]; ok {
				fmt.Fprintf(w, "  next %-11s %s (in %s)\n", job, t.Local().Format(time.RFC3339), ui.Duration(time.Until(t)))
			}
		}
		if r := st.Repository; r != nil {
			fmt.Fprintf(w, "  repository      %s stored (%s before compression), measured %s\n", ui.Bytes(r.Bytes), ui.Bytes(r.UncompressedBytes), ui.Age(r.MeasuredAt, time.Now()))
		}
		fmt.Fprintf(w, "  failures (7d)   %d\n", st.Failures7d)
		fmt.Fprintf(w, "  clones          %d\n", len(st.Clones))
		walStatus(w, st.WAL)
		for _, p := range st.Problems {
			fmt.Fprintf(w, "  PROBLEM: %s\n", p)
		}
	}
	return nil
}

// NotifyTest prints each notifier's result of `notify test` and returns how many failed.
func NotifyTest(w io.Writer, errs map[string]error) int {
	failed := 0
	for _, k := range lifecycle.SortedKeys(errs) {
		if errs[k] != nil {
			failed++
			fmt.Fprintf(w, "FAIL %-9s %v\n", k, errs[k])
		} else {
			fmt.Fprintf(w, "ok   %-9s sent\n", k)
		}
	}
	return failed
}

// EscrowRecovered prints `escrow recover`; intoDir is set when --to named a directory.
func EscrowRecovered(w io.Writer, r *lifecycle.EscrowRecovered, intoDir bool) error {
	e := r.Escrow
	fmt.Fprintf(w, "escrow bundle of %s (written %s) recovered:\n", e.Host, e.Created.Format(time.RFC3339))
	for i, p := range r.Paths {
		fmt.Fprintf(w, "  %s (%s, mode 0600)\n", p, e.Files[i].Role)
	}
	if intoDir {
		fmt.Fprintln(w, "the recovered config names the original paths (repository.password_file, state_dir): move the files there or edit it; then run `dhis2-life catalog rebuild`")
	}
	return nil
}

// ConfigCheck prints `config check` and returns the number of errors (warnings aside).
func ConfigCheck(w io.Writer, asJSON bool, path string, problems []*config.Error) (int, error) {
	nerr := 0
	out := []map[string]any{}
	for _, p := range problems {
		if !p.IsWarning() {
			nerr++
		}
		out = append(out, map[string]any{"file": p.File, "line": p.Line, "key": p.Key, "message": p.Msg, "fix": p.Fix, "warning": p.IsWarning()})
	}
	if asJSON {
		return nerr, JSON(w, map[string]any{"ok": nerr == 0, "problems": out})
	}
	for _, p := range problems {
		fmt.Fprintln(w, p.Error())
	}
	if nerr == 0 {
		fmt.Fprintf(w, "%s: configuration OK (%s)\n", path, ui.Count(len(problems), "warning"))
	}
	return nerr, nil
}
