package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/notify"
)

// testNotifierHook lets integration tests adjust notifiers (trust a local CA); nil in production.
var testNotifierHook func([]notify.Notifier)

func cmdNotify() *cli.Command {
	return &cli.Command{
		Name:  "notify",
		Usage: "alert channels",
		Subcommands: []*cli.Command{{
			Name:  "test",
			Usage: "send a test message to every configured notifier",
			Description: `Sends an event "test" to each notifier of [notify] (webhook, slack, telegram, smtp),
with the configured retries, and reports each one's result. Exit 1 when any failed.`,
			Action: func(c *cli.Context) error {
				a, err := load(c)
				if err != nil {
					return err
				}
				defer a.Close()
				ns, secrets, err := notify.FromConfig(a.Config.Notify)
				if err != nil {
					return usageErr("%v", err)
				}
				if len(ns) == 0 {
					return usageErr("no notifier is configured: add [notify.webhook], [notify.slack], [notify.telegram] or [notify.smtp]")
				}
				if testNotifierHook != nil {
					testNotifierHook(ns)
				}
				host, _ := os.Hostname()
				n := a.Config.Notify
				d := notify.New(notify.Options{Notifiers: ns, Log: a.Log, Retries: min(n.Retries, 2), Backoff: min(n.RetryBackoff.Duration, 2*time.Second),
					Timeout: n.Timeout.Duration, Secrets: secrets, Host: host})
				defer d.Close(context.Background())
				errs := d.SendNow(c.Context, notify.Event{Event: notify.EventTest, Instance: "", Job: "",
					Message: "Test message from dhis2-life: this channel receives failure, recovery and stale-backup alerts."})
				names := make([]string, 0, len(errs))
				for k := range errs {
					names = append(names, k)
				}
				sort.Strings(names)
				failed := 0
				for _, k := range names {
					if errs[k] != nil {
						failed++
						fmt.Fprintf(c.App.Writer, "FAIL %-9s %v\n", k, errs[k])
					} else {
						fmt.Fprintf(c.App.Writer, "ok   %-9s sent\n", k)
					}
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d notifiers failed", failed, len(names))
				}
				return nil
			},
		}},
	}
}
