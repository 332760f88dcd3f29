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
		Subcommands: []*cli.Command{cmdAwaitFile(), {
			Name:  "dump-stream",
			Usage: "write an instance's database stream to stdout (run by restic backup --stdin-from-command)",
			Flags: []cli.Flag{instanceFlag, &cli.StringFlag{Name: "result", Usage: "write the trailer JSON to `FILE`"}},
			Action: withApp(func(c *cli.Context, a *app.App) error {
				proc.DieWithParent() // restic starts it; a killed restic must not leave it dumping
				snapshot.WidenPipe(os.Stdout)
				return lifecycle.DumpStream(c.Context, a, c.String("instance"), os.Stdout, c.String("result"))
			}),
		}},
	}
}

// cmdAwaitFile is the command restic runs to store a snapshot's manifest: restic opens the
// repository (its key derivation and index load take about half a second) while the set's
// other parts are stored, and the command waits for the manifest. Killed before the file
// appears, it exits non-zero and restic stores no snapshot.
func cmdAwaitFile() *cli.Command {
	return &cli.Command{
		Name:  "await-file",
		Usage: "wait until FILE exists, then write it to stdout (run by restic backup --stdin-from-command)",
		Flags: []cli.Flag{&cli.StringFlag{Name: "file", Required: true, Usage: "the `FILE` to wait for (moved into place whole)"}},
		Action: func(c *cli.Context) error {
			proc.DieWithParent()
			return snapshot.AwaitFile(c.Context, c.String("file"), os.Stdout)
		},
	}
}
