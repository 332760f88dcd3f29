package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/restore"
)

func cmdClone() *cli.Command {
	return &cli.Command{
		Name:  "clone",
		Usage: "restore a snapshot set into a staging or training target, scrubbed",
		Description: `Restores a set into a temporary database next to the target (<db>__dhis2life_new),
scrubs it with the target's profile in one transaction (staging: outward jobs off,
email/remote-instance/SMS settings, exchange targets, routes and API tokens cleared,
banner names the copy; training: also every job off and users anonymised, except
keep_accounts), proves every rule with a query, writes the clone's DHIS2_HOME (files
and a dhis.conf of its own), and only then swaps it in by rename. A failed clone
leaves the previous clone untouched. Production databases are always refused.
--from live takes a fresh snapshot set first; the default is the newest set.

EXAMPLES:
   dhis2-life clone --to staging
   dhis2-life clone --to training --from 20261127T020000Z-3fa1 --terminate
   dhis2-life clone --to staging --from live --json
   dhis2-life clone --to staging --dry-run
   dhis2-life clones
   dhis2-life clone destroy training --yes
   dhis2-life clone expire`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "clone target `NAME` ([targets.NAME] in the config)"},
			&cli.StringFlag{Name: "from", Value: "latest", Usage: "snapshot set: `ID`, ID prefix, latest or live"},
			&cli.BoolFlag{Name: "terminate", Usage: "end sessions on the target at the swap instead of refusing"},
			&cli.BoolFlag{Name: "force", Usage: "replace a target database that holds data but is not a recorded clone"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "parallel index/constraint builds (default tuning.restore_jobs)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "check and print the plan; change nothing"},
			jsonFlag,
		},
		Subcommands: []*cli.Command{cmdCloneDestroy(), cmdCloneExpire(), cmdCloneScan()},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			if c.NArg() > 0 {
				return usageErr("clone: unexpected argument %q (use --to TARGET, or the destroy/expire subcommands)", c.Args().First())
			}
			snap, prog := progress(c, r.App, "snapshot"), progress(c, r.App, "clone "+c.String("to"))
			out, err := r.Clone(c.Context, lifecycle.CloneRequest{Target: c.String("to"), From: c.String("from"),
				Terminate: c.Bool("terminate"), Force: c.Bool("force"), DryRun: c.Bool("dry-run"), Jobs: c.Int("jobs"),
				Progress: func(done, total int64) { prog.Update(done, total, -1, "database") }, SnapshotProgress: snapshotProgress(snap)})
			if errors.Is(err, restore.ErrUnsafeTarget) {
				return &exitError{code: exitUsage, err: err}
			} else if err != nil {
				return err
			}
			if out.Record != nil {
				prog.Done("clone " + out.Target.Name + " in place")
			}
			return render.Clone(c.App.Writer, c.Bool("json"), out)
		}),
	}
}

func cmdCloneDestroy() *cli.Command {
	return &cli.Command{
		Name:      "destroy",
		Usage:     "drop a clone's database, templates and home",
		ArgsUsage: "TARGET",
		Description: `Drops the clone's database (and leftovers of interrupted runs and its template
databases), removes its DHIS2_HOME when dhis2-life created it, and forgets the
record. Asks for the target name on a terminal; --yes skips the question. Runs the
target's before_hook first (e.g. to stop its DHIS2). Never touches production.

EXAMPLES:
   dhis2-life clone destroy training
   dhis2-life clone destroy staging --yes --terminate`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation"},
			&cli.BoolFlag{Name: "terminate", Usage: "end sessions on the clone instead of refusing"},
			jsonFlag,
		},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			if c.NArg() != 1 {
				return usageErr("clone destroy takes one target name")
			}
			name := c.Args().First()
			res, err := r.CloneDestroy(c.Context, name, c.Bool("terminate"), func() error {
				if c.Bool("yes") {
					return nil
				}
				return confirm(c, name)
			})
			if err != nil {
				return err
			}
			return render.CloneDestroy(c.App.Writer, c.Bool("json"), res)
		}),
	}
}

// confirm asks for the target's name on the terminal.
func confirm(c *cli.Context, name string) error {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok || !ui.IsTerminal(f) || !ui.IsTerminal(os.Stdin) {
		return usageErr("clone destroy %s: pass --yes to confirm (no terminal to ask on)", name)
	}
	fmt.Fprintf(f, "This drops the database and home of clone %s. Type its name to confirm: ", name)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != name {
		return errors.New("not confirmed: nothing was changed")
	}
	return nil
}

func cmdCloneExpire() *cli.Command {
	return &cli.Command{
		Name:  "expire",
		Usage: "destroy clones older than their target's ttl",
		Description: `Destroys every clone whose age exceeds its target's ttl (sessions on it are
ended). Meant for a scheduler (schedule.clone_ttl, cron, a systemd timer).

EXAMPLES:
   dhis2-life clone expire
   dhis2-life clone expire --dry-run --json`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list what would be destroyed"}, jsonFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			res, err := r.CloneExpire(c.Context, c.Bool("dry-run"), time.Now())
			if perr := render.CloneExpire(c.App.Writer, c.Bool("json"), c.Bool("dry-run"), res); perr != nil {
				return perr
			}
			return err
		}),
	}
}

func cmdClones() *cli.Command {
	return &cli.Command{
		Name:  "clones",
		Usage: "list clones: target, source set, age, TTL, size",
		Description: `Lists the clones recorded in the catalogue with their source set, age, TTL and
size; --json adds what the scrub changed per rule and the verification checks.

EXAMPLES:
   dhis2-life clones
   dhis2-life clones --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			rows, err := r.Clones(time.Now())
			if err != nil {
				return err
			}
			return render.Clones(c.App.Writer, c.Bool("json"), rows)
		}),
	}
}
