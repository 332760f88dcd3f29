package render

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

// Snapshot prints a stored set (`snapshot`).
func Snapshot(w io.Writer, asJSON bool, m *manifest.Manifest) error {
	if asJSON {
		return JSON(w, map[string]any{"id": m.ID, "instance": m.Instance, "time": m.Time,
			"rows": m.TotalRows(), "bytes": m.TotalBytes(), "added_bytes": m.AddedBytes(),
			"seconds": m.Finished.Sub(m.Started).Seconds(), "manifest": m})
	}
	fmt.Fprintf(w, "snapshot set %s of %s stored in %s: %d tables, %s rows, %s read, %s added; %d tables' data excluded as regenerable\n",
		m.ID, m.Instance, ui.Duration(m.Finished.Sub(m.Started)), len(m.Tables), Count(m.TotalRows()),
		ui.Bytes(m.TotalBytes()), ui.Bytes(m.AddedBytes()), len(m.Excluded))
	warnings(w, m.Warnings)
	return nil
}

// Snapshots lists sets (`snapshots`); --json prints their manifests.
func Snapshots(w io.Writer, asJSON bool, recs []catalog.SnapshotRecord) error {
	if asJSON {
		out := make([]json.RawMessage, 0, len(recs))
		for _, r := range recs {
			out = append(out, r.Manifest)
		}
		return JSON(w, out)
	}
	if len(recs) == 0 {
		fmt.Fprintln(w, "no snapshot sets (take one with `dhis2-life snapshot`; on a new host run `dhis2-life catalog rebuild`)")
		return nil
	}
	t := ui.NewTable("ID", "INSTANCE", "TIME", "AGE", "DHIS2", "TABLES", "ROWS", "SIZE", "ADDED", "FILES").RightAlign(5, 6, 7, 8, 9)
	now := time.Now()
	for _, r := range recs {
		m, err := manifest.Parse(r.Manifest)
		if err != nil {
			t.Row(r.ID, r.Instance, when(r.Time), ui.Age(r.Time, now), "?", "?", "?", "?", "?", "manifest unreadable")
			continue
		}
		files := "-"
		if p, ok := m.Parts["files"]; ok && p.Snapshot != "" {
			files = fmt.Sprint(p.FilesProcessed)
		}
		t.Row(m.ID, m.Instance, when(m.Time), ui.Age(m.Time, now), m.DHIS2.Flyway,
			fmt.Sprint(len(m.Tables)), Count(m.TotalRows()), ui.Bytes(m.TotalBytes()), ui.Bytes(m.AddedBytes()), files)
	}
	return t.Write(w)
}

// Rebuilt prints `catalog rebuild`.
func Rebuilt(w io.Writer, asJSON bool, out *lifecycle.Rebuilt) error {
	if asJSON {
		return JSON(w, out)
	}
	if out.DamagedMovedTo != "" {
		fmt.Fprintf(w, "the damaged catalogue was moved to %s; not in the repository, so not rebuilt: %s\n", out.DamagedMovedTo, out.Lost)
	}
	if out.Points > 0 {
		fmt.Fprintf(w, "%d rollback points\n", out.Points)
	}
	total := 0
	for _, n := range lifecycle.SortedKeys(out.Instances) {
		fmt.Fprintf(w, "%s: %d snapshot sets\n", n, out.Instances[n])
		total += out.Instances[n]
	}
	fmt.Fprintf(w, "catalogue rebuilt from the repository: %d sets", total)
	if len(out.Skipped) > 0 {
		fmt.Fprintf(w, ", %d unreadable manifests skipped", len(out.Skipped))
	}
	fmt.Fprintln(w)
	return nil
}
