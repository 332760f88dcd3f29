package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/restore"
)

// Restore prints a restore (`restore`): the plan of a dry run, or what was restored from the
// repository or from archive object ("" = the repository).
func Restore(w io.Writer, asJSON, dryRun bool, o restore.Options, object string, res *restore.Result) error {
	if dryRun {
		return restorePlan(w, asJSON, o)
	}
	if asJSON {
		return JSON(w, res)
	}
	m := o.Manifest
	from := ""
	if object != "" {
		from = " from archive " + object
	}
	if !o.SkipDatabase {
		fmt.Fprintf(w, "restored set %s%s into database %s in %s: %d tables, %s rows, %d sequences", m.ID, from, o.Target.Describe(),
			ui.Duration(secs(res.Seconds)), res.Tables, Count(res.Rows), res.Sequences)
		if object == "" {
			fmt.Fprintf(w, " (schema %s, data %s, indexes %s)", ui.Duration(secs(res.PreDataSeconds)),
				ui.Duration(secs(res.DataSeconds)), ui.Duration(secs(res.PostDataSeconds)))
		}
		fmt.Fprintln(w)
	}
	if res.FilesTo != "" {
		fmt.Fprintf(w, "restored the file store and dhis.conf of set %s%s into %s\n", m.ID, from, res.FilesTo)
	}
	return nil
}

func restorePlan(w io.Writer, asJSON bool, o restore.Options) error {
	m := o.Manifest
	plan := map[string]any{"set": m.ID, "instance": m.Instance, "time": m.Time, "dry_run": true}
	var b strings.Builder
	fmt.Fprintf(&b, "plan: restore set %s of %s (data as of %s)\n", m.ID, m.Instance, m.Time.Local().Format("2006-01-02 15:04:05"))
	if !o.SkipDatabase {
		via := "the target role"
		if o.Admin != nil {
			via = "admin_database " + o.Admin.Describe()
		}
		plan["database"], plan["tables"], plan["rows"], plan["excluded"] = o.Target.Describe(), len(m.Tables), m.TotalRows(), len(m.Excluded)
		fmt.Fprintf(&b, "  database %s (created if missing, via %s; refused if not empty unless --force)\n", o.Target.Describe(), via)
		fmt.Fprintf(&b, "  extensions first: %s\n", extNames(m))
		fmt.Fprintf(&b, "  schema, then %d tables (%s rows), %d sequences, then indexes/constraints with %d jobs\n", len(m.Tables), Count(m.TotalRows()), len(m.Sequences), o.Jobs)
		fmt.Fprintf(&b, "  %d regenerable tables restored empty (run DHIS2 analytics afterwards)\n", len(m.Excluded))
	}
	if o.FilesTo != "" {
		plan["files_to"] = o.FilesTo
		fmt.Fprintf(&b, "  file store and dhis.conf into %s\n", o.FilesTo)
	}
	if asJSON {
		return JSON(w, plan)
	}
	_, err := fmt.Fprint(w, b.String()+"nothing was changed (--dry-run)\n")
	return err
}

func extNames(m *manifest.Manifest) string {
	var names []string
	for _, e := range m.Extensions {
		names = append(names, e.Name)
	}
	return orNone(names)
}

// Verify prints a drill's checks and verdict (`verify`).
func Verify(w io.Writer, asJSON bool, setID string, rep *restore.Report) error {
	if asJSON {
		return JSON(w, rep)
	}
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
	fmt.Fprintf(w, "drill of set %s %s: restore took %s (RTO), data age %s (RPO)\n", setID, verdict,
		ui.Duration(secs(rep.RestoreSeconds)), ui.Duration(secs(rep.DataAgeSeconds)))
	return nil
}

// Export prints the summary of `export` (to where the dump did not go).
func Export(w io.Writer, asJSON bool, res *restore.ExportResult, output string) error {
	if asJSON {
		return JSON(w, res)
	}
	if output == "-" {
		output = "standard output"
	}
	fmt.Fprintf(w, "exported set %s (%s format) to %s in %s: %d tables, %s rows, %d sequences, %s\n",
		res.Set, res.Format, output, ui.Duration(secs(res.Seconds)), res.Tables, Count(res.Rows), res.Sequences, ui.Bytes(res.Bytes))
	return nil
}
