package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/restore"
)

func cmdRestore() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot set into a database and/or directory",
		ArgsUsage: "ID|latest",
		Description: `Restores a set into --to-db (created when missing; extensions first, then the
schema, the data, sequences, and indexes/constraints built in parallel) and its file
store into --files-to. Objects are owned by --owner (default: the --to-db user).
Refuses a non-empty target without --force, and always refuses any configured
instance's production database. On failure the half-restored database is dropped.
When --to-db is on the same server as the instance's admin_database, that superuser
connection creates the database and extensions.

EXAMPLES:
   dhis2-life restore latest --to-db postgres://dhis@127.0.0.1:5432/dhis2_restored
   dhis2-life restore 20261127T020000Z-3fa1 --to-db postgres://dhis@127.0.0.1/dhis2_copy --files-to /srv/dhis2-copy --force
   dhis2-life restore latest --to-db postgres://dhis@127.0.0.1/dhis2_copy --dry-run
   dhis2-life restore 20261127T020000Z-3fa1 --from-archive --identity key.txt --to-db postgres://dhis@127.0.0.1/dhis2_old
   dhis2-life restore --pitr "2026-12-01 14:05:00" --instance hmis --to-data-dir /srv/pg-pitr --port 5440 [--pause]`,
		Flags: append([]cli.Flag{
			instanceFlag,
			&cli.StringFlag{Name: "to-db", Usage: "target database `DSN` (no password: use --to-db-password-file or ~/.pgpass)"},
			&cli.StringFlag{Name: "to-db-password-file", Usage: "`FILE` (0600) with the target role's password"},
			&cli.StringFlag{Name: "files-to", Usage: "restore the file store and dhis.conf into `DIR`"},
			&cli.StringFlag{Name: "owner", Usage: "`ROLE` to own the restored objects (default: the --to-db user)"},
			&cli.BoolFlag{Name: "force", Usage: "replace a non-empty target database or directory"},
			&cli.BoolFlag{Name: "terminate", Usage: "end other sessions on the target database instead of refusing"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "parallel index/constraint builds (default tuning.restore_jobs)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and change nothing"},
			jsonFlag,
			&cli.BoolFlag{Name: "from-archive", Usage: "restore from the set's archive object (see `dhis2-life archives`), without the restic repository"},
			&cli.StringFlag{Name: "identity", Usage: "age identity `FILE` that decrypts the archive (with --from-archive)"},
		}, pitrRestoreFlags()...),
		Action: func(c *cli.Context) error {
			if c.IsSet("pitr") {
				return restorePITR(c)
			}
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			if c.NArg() != 1 {
				return usageErr("restore takes one set: an ID, an ID prefix or latest")
			}
			if c.String("to-db") == "" && c.String("files-to") == "" {
				return usageErr("restore needs --to-db DSN and/or --files-to DIR")
			}
			instance := c.String("instance")
			if instance != "" {
				if _, err := a.Config.Instance(instance); err != nil {
					return usageErr("%v", err)
				}
			}
			if c.Bool("from-archive") {
				return restoreFromArchive(c, a)
			}
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			m, err := resolveSet(cat, c.Args().First(), instance)
			if err != nil {
				return err
			}
			opts, err := restoreOptions(c, a, m)
			if err != nil {
				return err
			}
			if c.Bool("dry-run") {
				return printRestorePlan(c, opts)
			}
			if err := a.Preflight(c.Context); err != nil {
				return err
			}
			prog := newProgress(c, a.Log, "restore "+m.ID)
			opts.Progress = func(done, total int64) { prog.Update(done, total, -1, "database") }
			res, err := restore.Restore(c.Context, opts)
			if err != nil {
				return err
			}
			prog.Done("restored")
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			if !opts.SkipDatabase {
				fmt.Fprintf(c.App.Writer, "restored set %s into database %s in %s: %d tables, %s rows, %d sequences (schema %s, data %s, indexes %s)\n",
					m.ID, opts.Target.Describe(), ui.Duration(secs(res.Seconds)), res.Tables, fmtCount(res.Rows), res.Sequences,
					ui.Duration(secs(res.PreDataSeconds)), ui.Duration(secs(res.DataSeconds)), ui.Duration(secs(res.PostDataSeconds)))
			}
			if res.FilesTo != "" {
				fmt.Fprintf(c.App.Writer, "restored the file store and dhis.conf of set %s into %s\n", m.ID, res.FilesTo)
			}
			return nil
		},
	}
}

// restoreOptions builds the restore of set m from the command's flags (shared by restores
// from the repository and from an archive).
func restoreOptions(c *cli.Context, a *app.App, m *manifest.Manifest) (restore.Options, error) {
	opts := restore.Options{
		Config: a.Config, Repo: a.Repo, Log: a.Log, Manifest: m,
		Owner: c.String("owner"), FilesTo: c.String("files-to"), Force: c.Bool("force"),
		Terminate: c.Bool("terminate"), Jobs: c.Int("jobs"), SkipDatabase: c.String("to-db") == "",
	}
	if opts.Jobs == 0 {
		opts.Jobs = a.Config.Tuning.RestoreJobs
	}
	if !opts.SkipDatabase {
		opts.Target = pg.Conn{DSN: c.String("to-db"), PasswordFile: c.String("to-db-password-file")}
		if _, err := opts.Target.Config(); err != nil {
			return opts, usageErr("--to-db: %v", err)
		}
		if opts.Target.Database() == "" {
			return opts, usageErr("--to-db names no database")
		}
		opts.Admin = adminFor(c.Context, a.Config, m.Instance, opts.Target)
	}
	return opts, nil
}

// adminFor returns the instance's admin connection when target is on the same server.
func adminFor(ctx context.Context, cfg *config.Config, instance string, target pg.Conn) *pg.Conn {
	in, ok := cfg.Instances[instance]
	if !ok {
		return nil
	}
	adm := app.AdminConn(in)
	if adm == nil {
		return nil
	}
	te, err1 := target.Resolve(ctx)
	ae, err2 := adm.Resolve(ctx)
	if err1 != nil || err2 != nil || !te.SameServer(ae) {
		return nil
	}
	return adm
}

func printRestorePlan(c *cli.Context, o restore.Options) error {
	m := o.Manifest
	plan := map[string]any{"set": m.ID, "instance": m.Instance, "time": m.Time, "dry_run": true}
	w := c.App.Writer
	if !c.Bool("json") {
		fmt.Fprintf(w, "plan: restore set %s of %s (data as of %s)\n", m.ID, m.Instance, m.Time.Local().Format("2006-01-02 15:04:05"))
	}
	if !o.SkipDatabase {
		if err := restore.GuardProduction(c.Context, o.Config, o.Target); err != nil {
			return err
		}
		via := "the target role"
		if o.Admin != nil {
			via = "admin_database " + o.Admin.Describe()
		}
		plan["database"] = o.Target.Describe()
		plan["tables"] = len(m.Tables)
		plan["rows"] = m.TotalRows()
		plan["excluded"] = len(m.Excluded)
		if !c.Bool("json") {
			fmt.Fprintf(w, "  database %s (created if missing, via %s; refused if not empty unless --force)\n", o.Target.Describe(), via)
			fmt.Fprintf(w, "  extensions first: %s\n", extNames(m))
			fmt.Fprintf(w, "  schema, then %d tables (%s rows), %d sequences, then indexes/constraints with %d jobs\n", len(m.Tables), fmtCount(m.TotalRows()), len(m.Sequences), o.Jobs)
			fmt.Fprintf(w, "  %d regenerable tables restored empty (run DHIS2 analytics afterwards)\n", len(m.Excluded))
		}
	}
	if o.FilesTo != "" {
		plan["files_to"] = o.FilesTo
		if !c.Bool("json") {
			fmt.Fprintf(w, "  file store and dhis.conf into %s\n", o.FilesTo)
		}
	}
	if c.Bool("json") {
		return printJSON(w, plan)
	}
	fmt.Fprintln(w, "nothing was changed (--dry-run)")
	return nil
}

func extNames(m *manifest.Manifest) string {
	s := ""
	for i, e := range m.Extensions {
		if i > 0 {
			s += ", "
		}
		s += e.Name
	}
	if s == "" {
		return "none"
	}
	return s
}
