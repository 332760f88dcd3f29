package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdNotify() *cli.Command {
	return &cli.Command{
		Name:  "notify",
		Usage: "alert channels",
		Subcommands: []*cli.Command{{
			Name:  "test",
			Usage: "send a test message to every configured notifier",
			Description: `Sends an event "test" to each notifier of [notify] (webhook, slack, telegram, smtp),
with the configured retries, and reports each one's result. Exit 1 when any failed.`,
			Action: withApp(func(c *cli.Context, a *app.App) error {
				errs, err := lifecycle.TestAlerts(c.Context, a)
				if err != nil {
					return err
				}
				if failed := render.NotifyTest(c.App.Writer, errs); failed > 0 {
					return fmt.Errorf("%d of %d notifiers failed", failed, len(errs))
				}
				return nil
			}),
		}},
	}
}
