package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

func cmdCatalog() *cli.Command {
	return &cli.Command{
		Name:  "catalog",
		Usage: "manage the local catalogue (an index of the repository)",
		Subcommands: []*cli.Command{{
			Name:  "rebuild",
			Usage: "re-derive the snapshot index from the repository",
			Description: `Reads every set's manifest from the repository and replaces the catalogue's
snapshot index with them. Parts without a manifest (a set whose run was killed) are
ignored. Drills, runs and other records are kept. Use it on a fresh host that has only
the config, the repository password and the S3 credentials.

EXAMPLES:
   dhis2-life catalog rebuild
   dhis2-life catalog rebuild --json`,
			Flags: []cli.Flag{jsonFlag},
			Action: func(c *cli.Context) error {
				a, err := load(c)
				if err != nil {
					return err
				}
				defer a.Close()
				if err := a.Preflight(c.Context); err != nil {
					return err
				}
				snaps, err := a.Repo.Snapshots(c.Context, manifest.TagApp, "part:manifest")
				if err != nil {
					return err
				}
				cat, err := a.Catalog()
				if err != nil {
					return err
				}
				byInstance := map[string][]catalog.SnapshotRecord{}
				var skipped []string
				for _, s := range snaps {
					var buf bytes.Buffer
					if err := a.Repo.Dump(c.Context, s.ID, "/"+manifest.ManifestFile, &buf); err != nil {
						// An unreachable repository is no reason to drop a set from the catalogue.
						if unreachable(err) {
							return fmt.Errorf("catalog rebuild stopped, catalogue unchanged: reading the manifest of %s: %w", s.ShortID, err)
						}
						skipped = append(skipped, fmt.Sprintf("%s: %v", s.ShortID, err))
						continue
					}
					m, err := manifest.Parse(buf.Bytes())
					if err != nil {
						skipped = append(skipped, fmt.Sprintf("%s: %v", s.ShortID, err))
						continue
					}
					byInstance[m.Instance] = append(byInstance[m.Instance], catalog.SnapshotRecord{ID: m.ID, Instance: m.Instance, Time: m.Time, Manifest: buf.Bytes()})
				}
				// Instances present in the catalogue but not the repository lose their index too.
				existing, err := cat.Snapshots("")
				if err != nil {
					return err
				}
				for _, r := range existing {
					if _, ok := byInstance[r.Instance]; !ok {
						byInstance[r.Instance] = nil
					}
				}
				names := make([]string, 0, len(byInstance))
				for n := range byInstance {
					names = append(names, n)
				}
				sort.Strings(names)
				counts := map[string]int{}
				for _, n := range names {
					if err := cat.ReplaceSnapshots(n, byInstance[n]); err != nil {
						return err
					}
					counts[n] = len(byInstance[n])
				}
				for _, s := range skipped {
					a.Log.Warn("manifest skipped", "detail", s)
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, map[string]any{"instances": counts, "skipped": skipped})
				}
				total := 0
				for _, n := range names {
					fmt.Fprintf(c.App.Writer, "%s: %d snapshot sets\n", n, counts[n])
					total += counts[n]
				}
				fmt.Fprintf(c.App.Writer, "catalogue rebuilt from the repository: %d sets", total)
				if len(skipped) > 0 {
					fmt.Fprintf(c.App.Writer, ", %d unreadable manifests skipped", len(skipped))
				}
				fmt.Fprintln(c.App.Writer)
				return nil
			},
		}},
	}
}

// unreachable reports whether err is about reaching the repository rather than its content.
func unreachable(err error) bool {
	for _, k := range []error{restic.ErrUnreachable, restic.ErrTimeout, restic.ErrLocked, restic.ErrInterrupted, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}
