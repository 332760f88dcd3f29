package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/ui"
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
	format := c.String("format")
	if format != restore.FormatPlain && format != restore.FormatCustom {
		return usageErr("--format %q: use plain or custom", format)
	}
	s, err := loadSet(c)
	if err != nil {
		return err
	}
	a, m := s.app, s.m
	defer a.Close()
	in, err := a.Config.Instance(m.Instance)
	if err != nil {
		return usageErr("%v", err)
	}
	if err := a.Preflight(c.Context); err != nil {
		return err
	}
	o := restore.ExportOptions{
		Restore: restore.Options{Config: a.Config, Repo: a.Repo, Log: a.Log, Manifest: m, Admin: app.AdminConn(in), Jobs: a.Config.Tuning.RestoreJobs},
		Format:  format, PGBinDir: in.PGBinDir,
	}
	// The summary goes where the dump does not.
	report := c.App.Writer
	out, commit, err := exportOutput(c.String("output"), c.App.Writer)
	if err != nil {
		return err
	}
	if c.String("output") == "-" {
		report = c.App.ErrWriter
	}
	o.Out = out
	res, err := restore.Export(c.Context, o)
	if err = commit(err); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(report, res)
	}
	to := c.String("output")
	if to == "-" {
		to = "standard output"
	}
	fmt.Fprintf(report, "exported set %s (%s format) to %s in %s: %d tables, %s rows, %d sequences, %s\n",
		m.ID, res.Format, to, ui.Duration(secs(res.Seconds)), res.Tables, fmtCount(res.Rows), res.Sequences, ui.Bytes(res.Bytes))
	return nil
}

// exportOutput opens the dump's destination: stdout for "-", else a 0600 temporary file
// beside path that commit renames into place on success and removes on failure, so a
// failed export never leaves a dump that looks complete.
func exportOutput(path string, stdout io.Writer) (io.Writer, func(error) error, error) {
	if path == "-" {
		return stdout, func(err error) error { return err }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, nil, fmt.Errorf("creating the output file: %w", err)
	}
	commit := func(err error) error {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", path, cerr)
		}
		if err == nil {
			if rerr := os.Rename(f.Name(), path); rerr != nil {
				err = fmt.Errorf("renaming the dump into place: %w", rerr)
			}
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return err
	}
	return f, commit, nil
}
