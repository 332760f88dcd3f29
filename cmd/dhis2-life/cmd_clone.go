package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/snapshot"
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
		Action:      cloneAction,
	}
}

func cloneTarget(a *app.App, name string) (*config.Target, error) {
	if name == "" {
		return nil, usageErr("clone needs --to TARGET (configured: %s)", strings.Join(targetList(a.Config), ", "))
	}
	t, ok := a.Config.Targets[name]
	if !ok {
		return nil, usageErr("unknown clone target %q: configured targets are %s (add a [targets.%s] table)", name, strings.Join(targetList(a.Config), ", "), name)
	}
	return t, nil
}

func targetList(cfg *config.Config) []string {
	var n []string
	for k := range cfg.Targets {
		n = append(n, k)
	}
	sort.Strings(n)
	if len(n) == 0 {
		return []string{"none"}
	}
	return n
}

// cloneErr maps clone errors to exit codes.
func cloneErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, clone.ErrVerify):
		return &exitError{code: exitVerify, err: err}
	case errors.Is(err, clone.ErrProfile), errors.Is(err, restore.ErrUnsafeTarget), errors.Is(err, clone.ErrUnknownTarget):
		return &exitError{code: exitUsage, err: err}
	}
	return err
}

func cloneAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErr("clone: unexpected argument %q (use --to TARGET, or the destroy/expire subcommands)", c.Args().First())
	}
	a, err := load(c)
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := cloneTarget(a, c.String("to"))
	if err != nil {
		return err
	}
	cat, err := a.Catalog()
	if err != nil {
		return err
	}
	from := c.String("from")
	var m *manifest.Manifest
	if from == "live" {
		if c.Bool("dry-run") {
			fmt.Fprintf(c.App.Writer, "plan: take a snapshot set of %s now (--from live), then clone it into %s\n", t.Instance, t.Name)
			return nil
		}
		if err := a.Preflight(c.Context); err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		prog := newProgress(c, a.Log, "snapshot "+t.Instance)
		m, err = snapshot.Take(c.Context, snapshot.Options{
			Config: a.Config, Instance: a.Config.Instances[t.Instance], Repo: a.Repo, Catalog: cat, Log: a.Log,
			Producer:    []string{self, "--config", a.Config.Path, "--log-level", "warn", "internal", "dump-stream", "--instance", t.Instance},
			ToolVersion: version,
			Progress: func(part string, st restic.Status, estimate int64) {
				total := st.TotalBytes
				if part == "db" && total == 0 {
					total = estimate
				}
				prog.Update(st.BytesDone, total, -1, part)
			},
		})
		if err != nil {
			return fmt.Errorf("--from live: %w", err)
		}
		prog.Done("set " + m.ID + " stored")
	} else {
		m, err = resolveSet(cat, from, t.Instance)
		if err != nil {
			return err
		}
	}
	opts := clone.Options{Config: a.Config, Target: t, Repo: a.Repo, Catalog: cat, Log: a.Log, Manifest: m,
		Terminate: c.Bool("terminate"), Force: c.Bool("force"), Jobs: c.Int("jobs")}
	p, err := clone.Prepare(c.Context, opts)
	if err != nil {
		return cloneErr(err)
	}
	if c.Bool("dry-run") {
		return printClonePlan(c, p, t, m)
	}
	if from != "live" {
		if err := a.Preflight(c.Context); err != nil {
			return err
		}
	}
	prog := newProgress(c, a.Log, "clone "+t.Name)
	opts.Progress = func(done, total int64) { prog.Update(done, total, -1, "database") }
	p, err = clone.Prepare(c.Context, opts)
	if err != nil {
		return cloneErr(err)
	}
	rec, err := p.Run(c.Context)
	if err != nil {
		return cloneErr(err)
	}
	prog.Done("clone " + t.Name + " in place")
	if c.Bool("json") {
		return printJSON(c.App.Writer, rec)
	}
	w := c.App.Writer
	how := fmt.Sprintf("restore %s", ui.Duration(secs(rec.RestoreSeconds)))
	if rec.FromTemplate {
		how = fmt.Sprintf("copy of template %s in %s", rec.Template, ui.Duration(secs(rec.CopySeconds)))
	}
	fmt.Fprintf(w, "clone %s (%s profile) now holds set %s of %s (data as of %s): %s, %s in total (%s)\n",
		t.Name, t.Profile, m.ID, m.Instance, m.Time.Local().Format("2006-01-02 15:04"), ui.Bytes(rec.Bytes), ui.Duration(secs(rec.Seconds)), how)
	for _, ch := range rec.Changes {
		fmt.Fprintf(w, "  %-30s %6d  %s\n", ch.Rule, ch.Rows, ch.What)
	}
	fmt.Fprintf(w, "  %d verification checks passed\n", len(rec.Checks))
	if r := rec.PII; r != nil {
		fmt.Fprintf(w, "  personal data: no production value found (%d values sought in %d tables, %d columns, %d files; %s)\n", r.Values, r.Tables, r.Columns, r.Files, ui.Duration(secs(r.Seconds)))
	}
	for _, cc := range rec.Conf {
		fmt.Fprintf(w, "  dhis.conf %s: %s\n", cc.Key, cc.Action)
	}
	if rec.Expires != nil {
		fmt.Fprintf(w, "  expires %s (ttl; `dhis2-life clone expire` destroys it)\n", rec.Expires.Local().Format("2006-01-02 15:04"))
	}
	for _, wn := range rec.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
	return nil
}

func printClonePlan(c *cli.Context, p *clone.Prepared, t *config.Target, m *manifest.Manifest) error {
	sessions, err := p.Sessions(c.Context)
	if err != nil {
		return err
	}
	tpl, _ := p.TemplateExists(c.Context)
	plan := map[string]any{"dry_run": true, "target": t.Name, "profile": t.Profile, "set": m.ID, "instance": m.Instance,
		"generation": p.Gen.String(), "database": p.Target.Describe(), "temporary_database": p.Temp,
		"template": p.Template, "template_ready": tpl, "home": p.Home, "sessions": sessions}
	if c.Bool("json") {
		return printJSON(c.App.Writer, plan)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "plan: clone set %s of %s (DHIS2 %s, data as of %s) into target %s (%s profile)\n",
		m.ID, m.Instance, p.Gen, m.Time.Local().Format("2006-01-02 15:04"), t.Name, t.Profile)
	switch {
	case p.Template != "" && tpl:
		fmt.Fprintf(w, "  copy template %s into %s\n", p.Template, p.Temp)
	case p.Template != "":
		fmt.Fprintf(w, "  restore into template %s, scrub it, then copy it into %s\n", p.Template, p.Temp)
	default:
		fmt.Fprintf(w, "  restore into %s\n", p.Temp)
	}
	fmt.Fprintf(w, "  scrub (%s) in one transaction, %d custom scrub_sql entries; verify every rule\n", t.Profile, len(p.Scrub.CustomSQL))
	fmt.Fprintf(w, "  banner: %q\n", p.Scrub.Title())
	if p.Home != "" {
		fmt.Fprintf(w, "  files and a rewritten dhis.conf into %s\n", p.Home)
	}
	if len(t.BeforeHook) > 0 {
		fmt.Fprintf(w, "  before_hook: %s\n", strings.Join(t.BeforeHook, " "))
	}
	fmt.Fprintf(w, "  swap: %s → %s%s (dropped), %s → %s\n", p.Database, p.Database, clone.OldSuffix, p.Temp, p.Database)
	if len(sessions) > 0 {
		fmt.Fprintf(w, "  NOTE: %s has %d sessions now (%s): the swap needs them gone (before_hook or --terminate)\n", p.Database, len(sessions), strings.Join(sessions, ", "))
	}
	if len(t.AfterHook) > 0 {
		fmt.Fprintf(w, "  after_hook: %s\n", strings.Join(t.AfterHook, " "))
	}
	fmt.Fprintln(w, "nothing was changed (--dry-run)")
	return nil
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
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr("clone destroy takes one target name")
			}
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			name := c.Args().First()
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			if _, ok := a.Config.Targets[name]; !ok {
				var r clone.Record
				if ok, _ := cat.GetJSON(clone.BucketClones, name, &r); !ok {
					return usageErr("unknown clone target %q: configured targets are %s", name, strings.Join(targetList(a.Config), ", "))
				}
			}
			if !c.Bool("yes") {
				f, ok := c.App.ErrWriter.(*os.File)
				if !ok || !ui.IsTerminal(f) || !ui.IsTerminal(os.Stdin) {
					return usageErr("clone destroy %s: pass --yes to confirm (no terminal to ask on)", name)
				}
				fmt.Fprintf(f, "This drops the database and home of clone %s. Type its name to confirm: ", name)
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if strings.TrimSpace(line) != name {
					return &exitError{code: exitFailure, err: errors.New("not confirmed: nothing was changed")}
				}
			}
			res, err := clone.Destroy(c.Context, clone.DestroyOptions{Config: a.Config, Catalog: cat, Log: a.Log, Target: name, Terminate: c.Bool("terminate")})
			if err != nil {
				return cloneErr(err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintf(c.App.Writer, "clone %s destroyed: databases %s; directories %s\n", name, orNone(res.Databases), orNone(res.Dirs))
			for _, w := range res.Warnings {
				fmt.Fprintf(c.App.Writer, "warning: %s\n", w)
			}
			return nil
		},
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
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
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			now := time.Now()
			if c.Bool("dry-run") {
				recs, err := clone.List(cat)
				if err != nil {
					return err
				}
				var due []clone.ExpireResult
				for _, r := range recs {
					if e := clone.ExpiresAt(a.Config, r); !e.IsZero() && !now.Before(e) {
						due = append(due, clone.ExpireResult{Target: r.Target, Expired: e})
					}
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, due)
				}
				for _, d := range due {
					fmt.Fprintf(c.App.Writer, "would destroy clone %s (expired %s)\n", d.Target, d.Expired.Local().Format("2006-01-02 15:04"))
				}
				fmt.Fprintf(c.App.Writer, "%d clones expired; nothing was changed (--dry-run)\n", len(due))
				return nil
			}
			res, err := clone.Expire(c.Context, a.Config, cat, a.Log, now)
			if c.Bool("json") {
				if res == nil {
					res = []clone.ExpireResult{}
				}
				if perr := printJSON(c.App.Writer, res); perr != nil {
					return perr
				}
			} else {
				for _, r := range res {
					if r.Error == "" {
						fmt.Fprintf(c.App.Writer, "destroyed clone %s (expired %s)\n", r.Target, r.Expired.Local().Format("2006-01-02 15:04"))
					}
				}
				if len(res) == 0 {
					fmt.Fprintln(c.App.Writer, "no clone has expired")
				}
			}
			return err
		},
	}
}

// cloneRow is one line of `clones --json`.
type cloneRow struct {
	clone.Record
	AgeSeconds float64    `json:"age_seconds"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Expired    bool       `json:"expired"`
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
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			cat, err := a.Catalog()
			if err != nil {
				return err
			}
			recs, err := clone.List(cat)
			if err != nil {
				return err
			}
			now := time.Now()
			rows := []cloneRow{}
			for _, r := range recs {
				row := cloneRow{Record: r, AgeSeconds: now.Sub(r.Time).Seconds()}
				if e := clone.ExpiresAt(a.Config, r); !e.IsZero() {
					row.ExpiresAt = &e
					row.Expired = !now.Before(e)
				}
				rows = append(rows, row)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(c.App.Writer, "no clones (make one with `dhis2-life clone --to TARGET`)")
				return nil
			}
			tb := ui.NewTable("TARGET", "PROFILE", "SET", "DATA AS OF", "AGE", "TTL", "SIZE", "DATABASE").RightAlign(6)
			for _, r := range rows {
				ttl := "-"
				if r.ExpiresAt != nil {
					ttl = "expires in " + ui.Duration(time.Until(*r.ExpiresAt))
					if r.Expired {
						ttl = "EXPIRED"
					}
				}
				tb.Row(r.Target, r.Profile, r.Set, r.SetTime.Local().Format("2006-01-02 15:04"), ui.Age(r.Time, now), ttl, ui.Bytes(r.Bytes), r.Database)
			}
			return tb.Write(c.App.Writer)
		},
	}
}
