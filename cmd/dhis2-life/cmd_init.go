package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdInit() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the repository (when absent) and check that it opens",
		Description: `Creates the restic repository named by repository.url when it does not exist
(creating the S3 bucket too when the credentials allow), or checks that an existing
one opens with repository.password_file. Safe to run again.

EXAMPLES:
   dhis2-life init
   dhis2-life --config ./dhis2-life.toml init`,
		Action: withApp(func(c *cli.Context, a *app.App) error {
			out, err := lifecycle.Init(c.Context, a)
			if err != nil {
				return err
			}
			if out.Created {
				fmt.Fprintf(c.App.Writer, "created repository %s\n", a.Config.Repository.URL)
			} else {
				fmt.Fprintf(c.App.Writer, "repository %s exists and opens with the configured password\n", a.Config.Repository.URL)
			}
			if out.Escrow != "" {
				fmt.Fprintf(c.App.Writer, "escrow bundle (repository password + config, age-encrypted) stored as %s/%s\n", a.Config.Archive.Bucket, out.Escrow)
			}
			return nil
		}),
	}
}
