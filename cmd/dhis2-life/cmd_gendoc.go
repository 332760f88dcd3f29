package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/clidoc"
	"github.com/dhis2-life/dhis2-life/internal/config"
)

// cmdGendoc writes the man pages and completion scripts from the command definitions
// (hidden: `make man` and `make deb` run it at build time).
func cmdGendoc() *cli.Command {
	return &cli.Command{
		Name:   "gendoc",
		Hidden: true,
		Usage:  "write man pages and bash/zsh completion generated from the command definitions",
		Description: `Writes DIR/man1/dhis2-life.1 and one dhis2-life-COMMAND.1 per command,
DIR/bash-completion/dhis2-life and DIR/zsh/_dhis2-life.

EXAMPLES:
   dhis2-life gendoc --dir build/doc`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Required: true, Usage: "output `DIR`"},
			&cli.StringFlag{Name: "date", Usage: "page `DATE` (default: SOURCE_DATE_EPOCH or today)"},
		},
		Action: func(c *cli.Context) error {
			date := c.String("date")
			if date == "" {
				t := time.Now().UTC()
				if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
					var sec int64
					if _, err := fmt.Sscan(e, &sec); err == nil {
						t = time.Unix(sec, 0).UTC()
					}
				}
				date = t.Format("2006-01-02")
			}
			pages := clidoc.Man(c.App, date,
				clidoc.Section{Title: "Exit status", Text: exitCodesHelp[len("EXIT CODES:\n"):]},
				clidoc.Section{Title: "Files", Items: [][2]string{
					{config.DefaultPath, "The configuration (or --config FILE, $DHIS2_LIFE_CONFIG); `dhis2-life config example` prints a commented one."},
					{"/var/lib/dhis2-life", "state_dir: the catalogue, locks and temporary files."},
					{"/usr/share/dhis2-life", "Grafana dashboard and Prometheus alert rules."}}},
				clidoc.Section{Title: "Environment", Items: [][2]string{
					{"DHIS2_LIFE_CONFIG", "The configuration file when --config is not given."}}})
			files := map[string]string{
				filepath.Join("bash-completion", c.App.Name): clidoc.Bash(c.App.Name),
				filepath.Join("zsh", "_"+c.App.Name):         clidoc.Zsh(c.App.Name),
			}
			for n, p := range pages {
				files[filepath.Join("man1", n)] = p
			}
			names := make([]string, 0, len(files))
			for n := range files {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				p := filepath.Join(c.String("dir"), n)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
					return fmt.Errorf("writing %s: %w", p, err)
				}
				fmt.Fprintln(c.App.Writer, p)
			}
			return nil
		},
	}
}
