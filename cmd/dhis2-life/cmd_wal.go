package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdWAL() *cli.Command {
	return &cli.Command{
		Name:  "wal",
		Usage: "continuous WAL archiving into the repository's bucket (point-in-time recovery)",
		Description: `WAL files are compressed (zstd) and encrypted (XChaCha20-Poly1305, key derived from
the repository password) on this host and stored beside the restic repository, under
<repository prefix>/wal/<instance>/ in the same bucket.

EXAMPLES:
   dhis2-life wal setup --instance hmis           # show what must change
   dhis2-life wal setup --instance hmis --apply   # ALTER SYSTEM, then restart PostgreSQL
   dhis2-life wal list --instance hmis --json
   dhis2-life wal prune --instance hmis --dry-run`,
		Subcommands: []*cli.Command{cmdWALSetup(), cmdWALPush(), cmdWALFetch(), cmdWALList(), cmdWALPrune(), cmdWALBaseStream()},
	}
}

func cmdWALSetup() *cli.Command {
	return &cli.Command{
		Name:  "setup",
		Usage: "show (and with --apply set) archive_mode, archive_command and archive_timeout",
		Description: `Compares the server's settings with what archiving into the repository needs:
wal_level replica, archive_mode on, archive_command "dhis2-life wal push %p --instance N",
archive_timeout from instances.N.wal.archive_timeout (default 60s). --apply sets them
with ALTER SYSTEM through admin_database (a superuser) and reloads; archive_mode and
wal_level only take effect after a restart of PostgreSQL, which setup says but does not do.
The PostgreSQL OS user runs archive_command: it must be able to read the config, the
repository password file and the env file.

EXAMPLES:
   dhis2-life wal setup --instance hmis
   dhis2-life wal setup --instance hmis --apply --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag, &cli.BoolFlag{Name: "apply", Usage: "set the values with ALTER SYSTEM and reload"}},
		Action: withApp(func(c *cli.Context, a *app.App) error {
			plan, err := lifecycle.WALSetup(c.Context, a, c.String("instance"), c.Bool("apply"))
			if err != nil {
				return err
			}
			return render.WALSetup(c.App.Writer, c.Bool("json"), plan)
		}),
	}
}

func cmdWALPush() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "archive one WAL file (PostgreSQL's archive_command)",
		ArgsUsage: "PATH",
		Description: `Compresses, encrypts and uploads the WAL file at PATH (%p) in one PUT with
Content-MD5, then reads the object back (size and MAC). Exits non-zero on any failure,
so PostgreSQL keeps the file in pg_wal and retries. The same file pushed again succeeds;
a different file under an archived name is refused.

EXAMPLES:
   archive_command = 'dhis2-life --config /etc/dhis2-life/dhis2-life.toml wal push %p --instance hmis'`,
		Flags: []cli.Flag{instanceFlag},
		Action: withApp(func(c *cli.Context, a *app.App) error {
			if c.NArg() != 1 {
				return usageErr("wal push takes the path of one WAL file (%%p)")
			}
			return lifecycle.WALPush(c.Context, a, c.String("instance"), c.Args().First())
		}),
	}
}

func cmdWALFetch() *cli.Command {
	return &cli.Command{
		Name:      "fetch",
		Usage:     "restore one archived WAL file (PostgreSQL's restore_command)",
		ArgsUsage: "NAME PATH",
		Description: `Downloads NAME (%f), authenticates and decompresses it and writes it to PATH (%p)
through a synced temporary file. Exits 1 when the archive does not hold NAME (the end of
the archive for PostgreSQL).

EXAMPLES:
   restore_command = 'dhis2-life --config /etc/dhis2-life/dhis2-life.toml wal fetch %f %p --instance hmis'`,
		Flags: []cli.Flag{instanceFlag},
		Action: withApp(func(c *cli.Context, a *app.App) error {
			if c.NArg() != 2 {
				return usageErr("wal fetch takes a WAL file name (%%f) and a destination path (%%p)")
			}
			return lifecycle.WALFetch(c.Context, a, c.String("instance"), c.Args().Get(0), c.Args().Get(1))
		}),
	}
}

func cmdWALList() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the archived WAL files of an instance",
		Description: `EXAMPLES:
   dhis2-life wal list --instance hmis
   dhis2-life wal list --instance hmis --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: withApp(func(c *cli.Context, a *app.App) error {
			objs, err := lifecycle.WALList(c.Context, a, c.String("instance"))
			if err != nil {
				return err
			}
			return render.WALList(c.App.Writer, c.Bool("json"), objs)
		}),
	}
}

func cmdWALBaseStream() *cli.Command {
	return &cli.Command{
		Name:   "base-stream",
		Usage:  "internal: write pg_basebackup's tar stream to stdout (restic's producer)",
		Hidden: true,
		Flags:  []cli.Flag{instanceFlag, &cli.StringFlag{Name: "result", Required: true}},
		Action: withApp(func(c *cli.Context, a *app.App) error {
			proc.DieWithParent() // restic starts it; a killed restic must not leave it streaming
			return lifecycle.WALBaseStream(c.Context, a, c.String("instance"), os.Stdout, c.String("result"))
		}),
	}
}

func cmdWALPrune() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "forget old base backups and the WAL only they need",
		Description: `Keeps the newest instances.N.wal.keep_base_backups base backups, and the base backup a
restore to each pinned set's time starts from (keep marks, rollback points); forgets
the others and deletes archived WAL older than the first segment of the oldest kept
base backup. Timeline history files are always kept; without any base backup nothing
is deleted. --dry-run shows the plan.

EXAMPLES:
   dhis2-life wal prune --instance hmis --dry-run
   dhis2-life wal prune --instance hmis --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag, &cli.BoolFlag{Name: "dry-run", Usage: "only show what would be removed"}},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			plan, err := r.WALPrune(c.Context, c.String("instance"), !c.Bool("dry-run"))
			if err != nil {
				return err
			}
			return render.WALPrune(c.App.Writer, c.Bool("json"), plan)
		}),
	}
}
