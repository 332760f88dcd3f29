package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/ui"
)

var instanceFlag = &cli.StringFlag{Name: "instance", Aliases: []string{"i"}, Usage: "instance `NAME` (may be omitted when one is configured)"}
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newProgress returns a progress reporter on stderr (a bar on a terminal, log lines otherwise).
func newProgress(c *cli.Context, log *slog.Logger, label string) *ui.Progress {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok {
		f = os.Stderr
	}
	return ui.NewProgress(f, log, label)
}

// resolveSet finds a set by ID, unique ID prefix or "latest" (of the instance when given).
func resolveSet(cat *catalog.Catalog, ref, instance string) (*manifest.Manifest, error) {
	var rec catalog.SnapshotRecord
	if ref == "" {
		return nil, usageErr("name a snapshot set: an ID, an ID prefix or latest")
	}
	if ref == "latest" {
		recs, err := cat.Snapshots(instance)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("no snapshot sets in the catalogue%s: take one with `dhis2-life snapshot`, or on a new host run `dhis2-life catalog rebuild`", forInstance(instance))
		}
		rec = recs[len(recs)-1]
	} else {
		r, err := cat.Snapshot(ref)
		if err != nil {
			if errors.Is(err, catalog.ErrNotFound) {
				return nil, fmt.Errorf("unknown snapshot set %q: list them with `dhis2-life snapshots` (on a new host run `dhis2-life catalog rebuild` first)", ref)
			}
			return nil, err
		}
		rec = r
	}
	return manifest.Parse(rec.Manifest)
}

func forInstance(name string) string {
	if name == "" {
		return ""
	}
	return " of instance " + name
}

// instanceName returns --instance, or "" when it may be omitted.
func instanceName(c *cli.Context, a *app.App) (string, error) {
	name := c.String("instance")
	in, err := a.Config.Instance(name)
	if err != nil {
		return "", usageErr("%v", err)
	}
	return in.Name, nil
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// setArg is what a command that takes one snapshot set ("ID|latest") works with.
type setArg struct {
	app *app.App
	cat *catalog.Catalog
	m   *manifest.Manifest
}

// loadSet loads the configuration, checks the command's one set argument and --instance,
// and resolves the set in the catalogue. The caller closes s.app.
func loadSet(c *cli.Context) (*setArg, error) {
	if c.NArg() != 1 {
		return nil, usageErr("%s takes one set: an ID, an ID prefix or latest", c.Command.Name)
	}
	a, err := load(c)
	if err != nil {
		return nil, err
	}
	instance := c.String("instance")
	if instance != "" {
		if _, err := a.Config.Instance(instance); err != nil {
			a.Close()
			return nil, usageErr("%v", err)
		}
	}
	cat, err := a.Catalog()
	if err == nil {
		var m *manifest.Manifest
		if m, err = resolveSet(cat, c.Args().First(), instance); err == nil {
			return &setArg{app: a, cat: cat, m: m}, nil
		}
	}
	a.Close()
	return nil, err
}
