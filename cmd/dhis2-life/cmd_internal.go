package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/snapshot"
)

// cmdInternal holds subcommands dhis2-life runs itself (not for users).
func cmdInternal() *cli.Command {
	return &cli.Command{
		Name:   "internal",
		Hidden: true,
		Usage:  "commands dhis2-life runs itself",
		Subcommands: []*cli.Command{{
			Name:  "dump-stream",
			Usage: "write an instance's database stream to stdout (run by restic backup --stdin-from-command)",
			Flags: []cli.Flag{instanceFlag, &cli.StringFlag{Name: "result", Usage: "write the trailer JSON to `FILE`"},
				&cli.StringFlag{Name: "fifo", Usage: "write the stream into the named pipe `PATH` (read by internal relay) instead of stdout"}},
			Action: withApp(func(c *cli.Context, a *app.App) error {
				proc.DieWithParent() // restic or the snapshot starts it; its death must not leave it dumping
				if p := c.String("fifo"); p != "" {
					return lifecycle.DumpStreamFIFO(c.Context, a, c.String("instance"), p, c.String("result"))
				}
				snapshot.WidenPipe(os.Stdout)
				return lifecycle.DumpStream(c.Context, a, c.String("instance"), os.Stdout, c.String("result"))
			}),
		}, cmdRelay()},
	}
}

// cmdRelay is the command restic runs for a database part whose producer snapshot.Take
// started itself: it copies the producer's named pipe to stdout and exits non-zero unless
// the producer's result says the stream is complete, so restic stores no failed dump.
func cmdRelay() *cli.Command {
	return &cli.Command{
		Name:  "relay",
		Usage: "copy a dump producer's named pipe to stdout (run by restic backup --stdin-from-command)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "fifo", Required: true, Usage: "the producer's named pipe `PATH`"},
			&cli.StringFlag{Name: "result", Required: true, Usage: "the producer's result `FILE`"},
			&cli.IntFlag{Name: "producer-pid", Required: true, Usage: "the producer's `PID` (a dead producer without a result fails the relay)"},
		},
		Action: func(c *cli.Context) error {
			proc.DieWithParent()
			snapshot.WidenPipe(os.Stdout)
			return snapshot.Relay(c.Context, c.String("fifo"), c.String("result"), c.Int("producer-pid"), os.Stdout)
		},
	}
}
