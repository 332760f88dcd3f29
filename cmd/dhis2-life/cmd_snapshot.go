package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/snapshot"
)

func cmdSnapshot() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "take a snapshot set (database, file store, manifest)",
		Description: `Dumps the instance's database as one consistent stream (pg_dump schema plus
DHIS2's largest tables in period order, regenerable analytics/resource data
excluded), then backs up DHIS2_HOME's file store and dhis.conf, then stores the
manifest with exact row counts. The set is recorded only when all parts are stored.

EXAMPLES:
   dhis2-life snapshot
   dhis2-life snapshot --instance hmis --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			name, err := instanceName(c, a)
			if err != nil {
				return err
			}
			in := a.Config.Instances[name]
			if err := a.Preflight(c.Context); err != nil {
				return err
			}
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding own executable for the dump producer: %w", err)
			}
			prog := newProgress(c, a.Log, "snapshot "+name)
			start := time.Now()
			run := catalog.RunRecord{ID: start.UTC().Format("20060102T150405.000Z") + "-snapshot-" + name, Instance: name, Job: "snapshot", Start: start.UTC(), Outcome: catalog.OutcomeRunning}
			_ = cat.PutRun(run)
			m, err := snapshot.Take(c.Context, snapshot.Options{
				Config: a.Config, Instance: in, Repo: a.Repo, Catalog: cat, Log: a.Log,
				Producer:    []string{self, "--config", a.Config.Path, "--log-level", "warn", "internal", "dump-stream", "--instance", name},
				ToolVersion: version,
				Progress: func(part string, st restic.Status, estimate int64) {
					total := st.TotalBytes
					if part == "db" && total == 0 {
						total = estimate
					}
					prog.Update(st.BytesDone, total, -1, part)
				},
			})
			run.End = time.Now().UTC()
			if err != nil {
				run.Outcome, run.Error = catalog.OutcomeFailed, err.Error()
				_ = cat.PutRun(run)
				return err
			}
			run.Outcome, run.Bytes = catalog.OutcomeOK, m.AddedBytes()
			_ = cat.PutRun(run)
			prog.Done(fmt.Sprintf("set %s stored", m.ID))
			if c.Bool("json") {
				return printJSON(c.App.Writer, map[string]any{"id": m.ID, "instance": m.Instance, "time": m.Time,
					"rows": m.TotalRows(), "bytes": m.TotalBytes(), "added_bytes": m.AddedBytes(),
					"seconds": m.Finished.Sub(m.Started).Seconds(), "manifest": m})
			}
			fmt.Fprintf(c.App.Writer, "snapshot set %s of %s stored in %s: %d tables, %s rows, %s read, %s added; %d tables' data excluded as regenerable\n",
				m.ID, m.Instance, ui.Duration(m.Finished.Sub(m.Started)), len(m.Tables), fmtCount(m.TotalRows()),
				ui.Bytes(m.TotalBytes()), ui.Bytes(m.AddedBytes()), len(m.Excluded))
			for _, w := range m.Warnings {
				fmt.Fprintf(c.App.Writer, "warning: %s\n", w)
			}
			return nil
		},
	}
}

func fmtCount(n int64) string {
	s := fmt.Sprint(n)
	out := ""
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out += ","
		}
		out += string(r)
	}
	return out
}
