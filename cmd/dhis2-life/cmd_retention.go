package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/retention"
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

// retentionInstances returns --instance or every configured instance.
func retentionInstances(c *cli.Context, a *app.App) ([]string, error) {
	if c.String("instance") != "" {
		name, err := instanceName(c, a)
		if err != nil {
			return nil, err
		}
		return []string{name}, nil
	}
	return a.Config.InstanceNames(), nil
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
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			names, err := retentionInstances(c, a)
			if err != nil {
				return err
			}
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			all := []retention.Item{}
			w := c.App.Writer
			for _, name := range names {
				p, err := retention.BuildPlan(a.Config, cat, name, time.Local)
				if err != nil {
					return err
				}
				all = append(all, p.Items...)
				if c.Bool("json") {
					continue
				}
				cnt := retention.Count(p.Items)
				fmt.Fprintf(w, "instance %s: %s\n", name, policyString(p.Policy))
				if p.Resumed != "" {
					fmt.Fprintf(w, "  an interrupted apply of %s is pending: its archive duties are kept\n", p.Resumed)
				}
				t := ui.NewTable("SET", "TIME", "DECISION", "REASONS")
				for _, it := range p.Items {
					t.Row(it.ID, it.Time.Local().Format("2006-01-02 15:04"), it.Decision, strings.Join(it.Reasons, "; "))
				}
				if err := t.Write(w); err != nil {
					return err
				}
				fmt.Fprintf(w, "%d keep, %d archive-then-forget, %d forget\n", cnt[retention.Keep], cnt[retention.ArchiveThenForget], cnt[retention.Forget])
				if err := retention.CheckPlan(p, a.Config.Archive != nil, false); err != nil {
					fmt.Fprintf(w, "warning: apply would refuse: %v\n", err)
				}
			}
			if c.Bool("json") {
				return printJSON(w, all)
			}
			return nil
		},
	}
}

func policyString(p *retention.Policy) string {
	if p == nil {
		return "no [retention] policy: every set is kept"
	}
	var parts []string
	for _, f := range []struct {
		k string
		v int
	}{{"last", p.KeepLast}, {"daily", p.KeepDaily}, {"weekly", p.KeepWeekly}, {"monthly", p.KeepMonthly}, {"yearly", p.KeepYearly}} {
		if f.v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f.k, f.v))
		}
	}
	if p.KeepWithin > 0 {
		parts = append(parts, "within "+ui.Duration(p.KeepWithin))
	}
	if len(parts) == 0 {
		parts = append(parts, "keeps nothing")
	}
	s := "keep " + strings.Join(parts, ", ")
	if len(p.Archive) > 0 {
		s += "; archive " + strings.Join(p.Archive, ", ") + " before forgetting"
	}
	return s
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
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			names, err := retentionInstances(c, a)
			if err != nil {
				return err
			}
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			needArchive := false
			for _, name := range names {
				p, err := retention.BuildPlan(a.Config, cat, name, time.Local)
				if err != nil {
					return err
				}
				if err := retention.CheckPlan(p, a.Config.Archive != nil, c.Bool("allow-empty")); err != nil {
					return usageErr("%w", err)
				}
				for _, it := range p.Items {
					needArchive = needArchive || it.Decision == retention.ArchiveThenForget
				}
			}
			ap := &retention.Applier{Config: a.Config, Catalog: cat, Repo: a.Repo, Log: a.Log, Location: time.Local}
			if needArchive && !c.Bool("dry-run") {
				arc, err := newArchiver(c, a, cat)
				if err != nil {
					return err
				}
				ap.Archiver = arc
			} else if needArchive {
				ap.Archiver = &retention.Archiver{}
			}
			if !c.Bool("dry-run") {
				if err := a.Preflight(c.Context); err != nil {
					return err
				}
			}
			var results []*retention.Result
			var firstErr error
			for _, name := range names {
				start := time.Now()
				run := catalog.RunRecord{ID: start.UTC().Format("20060102T150405.000Z") + "-retention-" + name, Instance: name, Job: "retention", Start: start.UTC(), Outcome: catalog.OutcomeRunning}
				if !c.Bool("dry-run") {
					_ = cat.PutRun(run)
				}
				res, err := ap.Apply(c.Context, name, retention.ApplyOptions{DryRun: c.Bool("dry-run"), AllowEmpty: c.Bool("allow-empty"), Prune: c.Bool("prune")})
				if !c.Bool("dry-run") {
					run.End = time.Now().UTC()
					run.Outcome = catalog.OutcomeOK
					if err != nil {
						run.Outcome, run.Error = catalog.OutcomeFailed, err.Error()
					}
					_ = cat.PutRun(run)
				}
				if res != nil {
					results = append(results, res)
					if !c.Bool("json") {
						printApplyResult(c, res)
					}
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, results); err != nil {
					return err
				}
			}
			return firstErr
		},
	}
}

func printApplyResult(c *cli.Context, r *retention.Result) {
	w := c.App.Writer
	verb := ""
	if r.DryRun {
		verb = "would "
	}
	if r.Resumed != "" {
		fmt.Fprintf(w, "instance %s: resumed the interrupted run of %s\n", r.Instance, r.Resumed)
	}
	fmt.Fprintf(w, "instance %s: %skeep %d sets, %sarchive %d, %sforget %d", r.Instance, verb, r.Kept, verb, len(r.Archived), verb, len(r.Forgotten))
	if r.Pruned {
		fmt.Fprintf(w, ", %sprune the repository", verb)
	}
	fmt.Fprintln(w)
	for _, id := range r.Archived {
		fmt.Fprintf(w, "  %sarchived %s\n", verb, id)
	}
	for _, id := range r.Forgotten {
		fmt.Fprintf(w, "  %sforgot %s\n", verb, id)
	}
	if r.DryRun {
		fmt.Fprintln(w, "nothing was changed (--dry-run)")
	}
}
