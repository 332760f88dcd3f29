package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/s3"
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
					path := config.ResolvePath(c.String("config"))
					cfg, err := config.Load(path)
					if err != nil {
						return err
					}
					a, aerr := app.New(cfg, logger(c))
					probes := config.Probes{
						Database: func(ctx context.Context, in *config.Instance) error {
							ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
							defer cancel()
							conn, err := app.InstanceConn(in).Connect(ctx)
							if err != nil {
								return err
							}
							return conn.Close(ctx)
						},
					}
					if aerr == nil {
						probes.Repository = func(ctx context.Context) error {
							notYet := &config.Error{Msg: "the repository does not exist yet", Severity: config.SeverityWarning,
								Fix: "run `dhis2-life init`: it creates the bucket and the repository"}
							if err := a.Preflight(ctx); err != nil {
								if errors.Is(err, s3.ErrNoBucket) {
									return notYet
								}
								return err
							}
							ok, err := a.Repo.Exists(ctx)
							if err != nil {
								return err
							}
							if !ok {
								return notYet
							}
							return nil
						}
					}
					problems := cfg.Check(c.Context, probes)
					if err := c.Context.Err(); err != nil {
						return fmt.Errorf("config check interrupted: %w", err)
					}
					nerr := 0
					for _, p := range problems {
						if !p.IsWarning() {
							nerr++
						}
					}
					if c.Bool("json") {
						out := []map[string]any{}
						for _, p := range problems {
							out = append(out, map[string]any{"file": p.File, "line": p.Line, "key": p.Key, "message": p.Msg, "fix": p.Fix, "warning": p.IsWarning()})
						}
						if err := printJSON(c.App.Writer, map[string]any{"ok": nerr == 0, "problems": out}); err != nil {
							return err
						}
					} else {
						for _, p := range problems {
							fmt.Fprintln(c.App.Writer, p.Error())
						}
						if nerr == 0 {
							fmt.Fprintf(c.App.Writer, "%s: configuration OK (%d warnings)\n", cfg.Path, len(problems))
						}
					}
					if nerr > 0 {
						return &exitError{code: exitUsage, err: fmt.Errorf("%s: %d configuration problems (see above)", cfg.Path, nerr)}
					}
					return nil
				},
			},
		},
	}
}
