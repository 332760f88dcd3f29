package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui"
)

func cmdSnapshots() *cli.Command {
	return &cli.Command{
		Name:  "snapshots",
		Usage: "list snapshot sets",
		Description: `Lists the snapshot sets in the catalogue, oldest first. --json prints an array of
manifests (the same JSON stored in the repository beside each set).

EXAMPLES:
   dhis2-life snapshots
   dhis2-life snapshots --instance hmis --json | jq '.[-1].id'`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			name := c.String("instance")
			if name != "" {
				if _, err := a.Config.Instance(name); err != nil {
					return usageErr("%v", err)
				}
			}
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			recs, err := cat.Snapshots(name)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				out := make([]json.RawMessage, 0, len(recs))
				for _, r := range recs {
					out = append(out, r.Manifest)
				}
				return printJSON(c.App.Writer, out)
			}
			if len(recs) == 0 {
				fmt.Fprintln(c.App.Writer, "no snapshot sets (take one with `dhis2-life snapshot`; on a new host run `dhis2-life catalog rebuild`)")
				return nil
			}
			t := ui.NewTable("ID", "INSTANCE", "TIME", "AGE", "DHIS2", "TABLES", "ROWS", "SIZE", "ADDED", "FILES").RightAlign(5, 6, 7, 8, 9)
			now := time.Now()
			for _, r := range recs {
				m, err := manifest.Parse(r.Manifest)
				if err != nil {
					t.Row(r.ID, r.Instance, r.Time.Local().Format("2006-01-02 15:04"), ui.Age(r.Time, now), "?", "?", "?", "?", "?", "manifest unreadable")
					continue
				}
				files := "-"
				if p, ok := m.Parts["files"]; ok && p.Snapshot != "" {
					files = fmt.Sprint(p.FilesProcessed)
				}
				t.Row(m.ID, m.Instance, m.Time.Local().Format("2006-01-02 15:04"), ui.Age(m.Time, now), m.DHIS2.Flyway,
					fmt.Sprint(len(m.Tables)), fmtCount(m.TotalRows()), ui.Bytes(m.TotalBytes()), ui.Bytes(m.AddedBytes()), files)
			}
			return t.Write(c.App.Writer)
		},
	}
}
