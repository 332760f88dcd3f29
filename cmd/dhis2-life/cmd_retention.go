package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdRetention() *cli.Command {
	return &cli.Command{
		Name:  "retention",
		Usage: "plan and apply the retention policy (keep / archive-then-forget / forget)",
		Description: `The [retention] policy (per instance: [instances.NAME.retention]) decides, for every
snapshot set, keep, archive-then-forget or forget, with the rules that decided it. Rules
follow restic's forget --keep-*: keep_last N newest; keep_daily/weekly/monthly/yearly the
newest set of each of the N newest calendar days, ISO weeks, months, years that have one;
keep_within sets within that long before the newest set. A set kept by any rule is kept.
Sets pinned by rollback points or ` + "`dhis2-life keep`" + ` are never forgotten. Classes named in
retention.archive are archived (and the archive confirmed) before they are forgotten.

EXAMPLES:
   dhis2-life retention plan
   dhis2-life retention plan --json --instance hmis
   dhis2-life retention apply --dry-run
   dhis2-life retention apply --prune`,
		Subcommands: []*cli.Command{cmdRetentionPlan(), cmdRetentionApply()},
	}
}

func cmdRetentionPlan() *cli.Command {
	return &cli.Command{
		Name:  "plan",
		Usage: "print what retention would keep, archive and forget, with reasons",
		Description: `Prints every set with its decision and the rules that decided it. Changes nothing.
--json prints an array of {"id","instance","time","decision","reasons"} (oldest first).

EXAMPLES:
   dhis2-life retention plan
   dhis2-life retention plan --json`,
		Flags: []cli.Flag{instanceFlag, jsonFlag},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			plans, err := r.RetentionPlans(c.String("instance"))
			if err != nil {
				return err
			}
			return render.RetentionPlans(c.App.Writer, c.Bool("json"), plans)
		}),
	}
}

func cmdRetentionApply() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "carry out the retention plan: archive, confirm, forget, prune when due",
		Description: `Carries out exactly the plan of ` + "`retention plan`" + `: sets due for archive are archived
first (uploaded, read back and checksummed, recorded), then every part of each set to
forget is forgotten in restic and removed from the catalogue. restic prune runs when
retention.prune_schedule has come due (or with --prune). A journal in the catalogue makes
a killed run resumable: the next run keeps every archive duty of the interrupted one.
A plan that keeps no set of an instance is refused unless --allow-empty.

EXAMPLES:
   dhis2-life retention apply --dry-run
   dhis2-life retention apply
   dhis2-life retention apply --instance hmis --prune`,
		Flags: []cli.Flag{instanceFlag, jsonFlag,
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be done and change nothing"},
			&cli.BoolFlag{Name: "allow-empty", Usage: "allow a plan that forgets every set of an instance"},
			&cli.BoolFlag{Name: "prune", Usage: "run restic prune now, regardless of retention.prune_schedule"},
		},
		Action: withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
			results, err := r.RetentionApply(c.Context, lifecycle.RetentionRequest{Instance: c.String("instance"),
				DryRun: c.Bool("dry-run"), AllowEmpty: c.Bool("allow-empty"), Prune: c.Bool("prune")})
			if perr := render.RetentionApply(c.App.Writer, c.Bool("json"), results); perr != nil {
				return perr
			}
			return err
		}),
	}
}
