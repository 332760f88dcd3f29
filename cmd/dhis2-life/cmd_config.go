package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdConfig() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "print an example configuration or check one",
		Subcommands: []*cli.Command{
			{
				Name:  "example",
				Usage: "print a commented configuration to start from",
				Description: `EXAMPLES:
   dhis2-life config example > /etc/dhis2-life/dhis2-life.toml`,
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprint(c.App.Writer, config.Example())
					return err
				},
			},
			{
				Name:  "check",
				Usage: "validate the configuration and the environment it names",
				Description: `Checks the configuration (keys, values, DSNs), the files it names (secret files
must be 0600 or stricter), that restic is installed, that the repository is reachable
and opens with the password, and that each instance's database answers. Every problem
is printed with file, line and key. Exit code 2 when any problem is an error.

EXAMPLES:
   dhis2-life config check
   dhis2-life --config ./dhis2-life.toml config check --json`,
				Flags: []cli.Flag{jsonFlag},
				Action: func(c *cli.Context) error {
					cfg, err := config.Load(config.ResolvePath(c.String("config")))
					if err != nil {
						return err
					}
					a, aerr := app.New(cfg, logger(c))
					if aerr != nil {
						a = nil
					}
					problems := cfg.Check(c.Context, lifecycle.ConfigProbes(a))
					if err := c.Context.Err(); err != nil {
						return fmt.Errorf("config check interrupted: %w", err)
					}
					nerr, err := render.ConfigCheck(c.App.Writer, c.Bool("json"), cfg.Path, problems)
					if err == nil && nerr > 0 {
						err = &exitError{code: exitUsage, err: fmt.Errorf("%s: %s (see above)", cfg.Path, ui.Count(nerr, "configuration problem"))}
					}
					return err
				},
			},
		},
	}
}
