package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/restore"
)

func cmdExport() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write a set's database as a standard dump (psql script or pg_restore archive)",
		ArgsUsage: "ID|latest",
		Description: `Turns a set's database stream into a dump that loads without dhis2-life: for a
colleague, for the DHIS2 core team's "send us a dump", or for moving away.

--format plain (default) writes a SQL script straight from the stream: the schema
(without owners and privileges), a COPY block per table, the sequences, then indexes,
constraints and triggers. Load it into an empty database as a role that may create
the extensions (postgis is not a trusted extension):
   createdb dhis2_copy && psql -v ON_ERROR_STOP=1 -d dhis2_copy -f set.sql
--format custom writes a pg_dump custom archive for pg_restore; it restores the set
into a scratch database (dhis2life_export_<set>) on the instance's admin_database
server, runs pg_dump on it and drops it.
Regenerable tables (analytics, resource tables) come empty, as in the set. The dump
holds the instance's data: it is written with mode 0600.

EXAMPLES:
   dhis2-life export latest --output /srv/dumps/hmis.sql
   dhis2-life export 20261127T020000Z-3fa1 --format custom --output hmis.dump
   dhis2-life export latest | gzip > hmis.sql.gz
   pg_restore --no-owner -d dhis2_copy hmis.dump`,
		Flags: []cli.Flag{
			instanceFlag,
			&cli.StringFlag{Name: "format", Aliases: []string{"F"}, Value: restore.FormatPlain, Usage: "plain (SQL for psql) or custom (archive for pg_restore)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write the dump to `FILE` (- = standard output)"},
			jsonFlag,
		},
		Action: exportAction,
	}
}

func exportAction(c *cli.Context) error {
	return withSet(func(c *cli.Context, r *lifecycle.Runner, m *manifest.Manifest) error {
		// The summary goes where the dump does not.
		report := c.App.Writer
		if c.String("output") == "-" {
			report = c.App.ErrWriter
		}
		res, err := r.Export(c.Context, m, lifecycle.ExportRequest{Format: c.String("format"), Output: c.String("output"), Stdout: c.App.Writer})
		if err != nil {
			return err
		}
		return render.Export(report, c.Bool("json"), res, c.String("output"))
	})(c)
}
