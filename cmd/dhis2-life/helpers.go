package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

var instanceFlag = &cli.StringFlag{Name: "instance", Aliases: []string{"i"}, Usage: "instance `NAME` (may be omitted when one is configured)"}
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"}

// withApp is the opening of commands that need only the configuration.
func withApp(fn func(c *cli.Context, a *app.App) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		a, err := load(c)
		if err != nil {
			return err
		}
		return fn(c, a)
	}
}

// withRunner is the opening every job command shares: load the configuration, open the
// lifecycle runner (catalogue, alerts), run fn, and deliver the alerts fn raised.
func withRunner(fn func(c *cli.Context, r *lifecycle.Runner) error) cli.ActionFunc {
	return withApp(func(c *cli.Context, a *app.App) error {
		r, err := lifecycle.NewRunner(a, version)
		if err != nil {
			return err
		}
		err = fn(c, r)
		if cerr := r.Close(); cerr != nil {
			a.Log.Warn("some alerts were not delivered", "err", cerr)
		}
		return err
	})
}

// withSet is withRunner for commands that take one set (ID, ID prefix or latest) and --instance.
func withSet(fn func(c *cli.Context, r *lifecycle.Runner, m *manifest.Manifest) error) cli.ActionFunc {
	return withRunner(func(c *cli.Context, r *lifecycle.Runner) error {
		if c.NArg() != 1 {
			return usageErr("%s takes one set: an ID, an ID prefix or latest", c.Command.Name)
		}
		m, err := r.ResolveSet(c.Args().First(), c.String("instance"))
		if err != nil {
			return err
		}
		return fn(c, r, m)
	})
}

// progress returns a progress reporter on stderr (a bar on a terminal, log lines otherwise).
func progress(c *cli.Context, a *app.App, label string) *ui.Progress {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok {
		f = os.Stderr
	}
	return ui.NewProgress(f, a.Log, label)
}
