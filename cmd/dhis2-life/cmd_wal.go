package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/internal/wal"
	"github.com/dhis2-life/dhis2-life/pitr"
	"github.com/dhis2-life/dhis2-life/retention"
)

// walTimeout bounds one push or fetch: PostgreSQL waits for archive_command, and a hung one
// would stop archiving altogether.
const walTimeout = 5 * time.Minute

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

// walInstance loads the configuration and returns the --instance with a [wal] table.
func walInstance(c *cli.Context) (*app.App, *config.Instance, error) {
	a, err := load(c)
	if err != nil {
		return nil, nil, err
	}
	name, err := instanceName(c, a)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	in := a.Config.Instances[name]
	if in.WAL == nil {
		a.Close()
		return nil, nil, usageErr("instance %s has no [instances.%s.wal] table: add one to turn WAL archiving on (see `dhis2-life config example`)", name, name)
	}
	return a, in, nil
}

// walStore opens the instance's WAL archive.
func walStore(a *app.App, in *config.Instance) (*wal.Store, error) {
	keys, err := wal.KeysFromPasswordFile(a.Config.Repository.PasswordFile)
	if err != nil {
		return nil, err
	}
	return wal.NewStore(a.Config.Repository.URL, append(os.Environ(), a.Env...), in.Name, keys)
}

// selfBinary is the dhis2-life executable archive_command and restore_command run.
func selfBinary(in *config.Instance) (string, error) {
	if in.WAL != nil && in.WAL.Binary != "" {
		return in.WAL.Binary, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding own executable: %w (set instances.%s.wal.binary)", err, in.Name)
	}
	return p, nil
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
		Action: func(c *cli.Context) error {
			a, in, err := walInstance(c)
			if err != nil {
				return err
			}
			defer a.Close()
			bin, err := selfBinary(in)
			if err != nil {
				return err
			}
			cmd := pitr.Command(bin, a.Config.Path, in.Name, "push", "%p")
			plan, err := pitr.Setup(c.Context, in, cmd, c.Bool("apply"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, plan)
			}
			w := c.App.Writer
			for _, s := range plan.Settings {
				mark := "ok    "
				if s.Change {
					mark = "change"
					if plan.Applied {
						mark = "set   "
					}
				}
				fmt.Fprintf(w, "%s %-16s %q", mark, s.Name, s.Current)
				if s.Change {
					fmt.Fprintf(w, " -> %q", s.Wanted)
				}
				fmt.Fprintln(w)
			}
			switch {
			case !plan.Applied && anyChange(plan):
				fmt.Fprintln(w, "run again with --apply to set these (archive_mode and wal_level then need a restart of PostgreSQL)")
			case plan.RestartNeeded:
				fmt.Fprintln(w, "restart PostgreSQL for archive_mode/wal_level to take effect (e.g. systemctl restart postgresql@15-main)")
			default:
				fmt.Fprintln(w, "WAL archiving is configured")
			}
			return nil
		},
	}
}

func anyChange(p *pitr.SetupPlan) bool {
	for _, s := range p.Settings {
		if s.Change {
			return true
		}
	}
	return false
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
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr("wal push takes the path of one WAL file (%%p)")
			}
			a, in, err := walInstance(c)
			if err != nil {
				return err
			}
			defer a.Close()
			s, err := walStore(a, in)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, walTimeout)
			defer cancel()
			res, err := s.Push(ctx, c.Args().First())
			if err != nil {
				return fmt.Errorf("wal push: %w", err)
			}
			a.Log.Debug("wal pushed", "file", res.Name, "bytes", res.Size, "stored", res.Stored, "again", res.AlreadyStored, "seconds", res.Seconds)
			return nil
		},
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
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageErr("wal fetch takes a WAL file name (%%f) and a destination path (%%p)")
			}
			a, in, err := walInstance(c)
			if err != nil {
				return err
			}
			defer a.Close()
			s, err := walStore(a, in)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, walTimeout)
			defer cancel()
			if _, err := s.Fetch(ctx, c.Args().Get(0), c.Args().Get(1)); err != nil {
				if errors.Is(err, wal.ErrNotFound) {
					return fmt.Errorf("wal fetch: %s is not in the WAL archive", c.Args().Get(0))
				}
				return fmt.Errorf("wal fetch: %w", err)
			}
			return nil
		},
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
		Action: func(c *cli.Context) error {
			a, in, err := walInstance(c)
			if err != nil {
				return err
			}
			defer a.Close()
			s, err := walStore(a, in)
			if err != nil {
				return err
			}
			objs, err := s.List(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if objs == nil {
					objs = []wal.Object{}
				}
				return printJSON(c.App.Writer, objs)
			}
			t := ui.NewTable("NAME", "KIND", "STORED", "ARCHIVED")
			for _, o := range objs {
				t.Row(o.Name, o.Kind, ui.Bytes(o.Size), o.Modified.UTC().Format(time.RFC3339))
			}
			return t.Write(c.App.Writer)
		},
	}
}

func cmdWALBaseStream() *cli.Command {
	return &cli.Command{
		Name:   "base-stream",
		Usage:  "internal: write pg_basebackup's tar stream to stdout (restic's producer)",
		Hidden: true,
		Flags:  []cli.Flag{instanceFlag, &cli.StringFlag{Name: "result", Required: true}},
		Action: func(c *cli.Context) error {
			a, in, err := walInstance(c)
			if err != nil {
				return err
			}
			defer a.Close()
			return pitr.BaseStream(c.Context, in, a.Config.Tuning.TempDir, os.Stdout, c.String("result"))
		},
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
		Action: func(c *cli.Context) error {
			a, in, err := walInstance(c)
			if err != nil {
				return err
			}
			defer a.Close()
			s, err := walStore(a, in)
			if err != nil {
				return err
			}
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			pins, err := retention.Pins(cat)
			if err != nil {
				return err
			}
			plan, err := pitr.Prune(c.Context, pitr.PruneOptions{Instance: in.Name, Repo: a.Repo, Store: s,
				Keep: in.WAL.KeepBaseBackups, Pins: pins, Apply: !c.Bool("dry-run")})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, plan)
			}
			w := c.App.Writer
			for _, b := range plan.KeepBases {
				fmt.Fprintf(w, "keep   base %s (%s)\n", b.ID, strings.Join(b.Reasons, "; "))
			}
			for _, b := range plan.ForgetBases {
				fmt.Fprintf(w, "forget base %s (%s)\n", b.ID, strings.Join(b.Reasons, "; "))
			}
			verb := "deleted"
			if !plan.Applied {
				verb = "would delete"
			}
			fmt.Fprintf(w, "WAL: %s %d files older than %s, %d kept\n", verb, len(plan.DeleteWAL), walCutoff(plan.Cutoff), plan.KeptWAL)
			return nil
		},
	}
}

func walCutoff(s string) string {
	if s == "" {
		return "(no base backup: nothing is deleted)"
	}
	return s
}
