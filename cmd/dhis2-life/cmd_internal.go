package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/proc"
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
			Flags: []cli.Flag{instanceFlag, &cli.StringFlag{Name: "result", Usage: "write the trailer JSON to `FILE`"}},
			Action: func(c *cli.Context) error {
				proc.DieWithParent() // restic starts it; a killed restic must not leave it dumping
				a, err := load(c)
				if err != nil {
					return err
				}
				name, err := instanceName(c, a)
				if err != nil {
					return err
				}
				in := a.Config.Instances[name]
				tr, err := snapshot.Dump(c.Context, snapshot.DumpOptions{
					Conn: app.InstanceConn(in), ExcludeAudit: in.ExcludeAudit, ExcludeExtra: in.ExcludeTableData,
					OrderedTables: a.Config.Tuning.OrderedTables, TempDir: a.Config.Tuning.TempDir, PGBinDir: in.PGBinDir,
				}, os.Stdout)
				if err != nil {
					err = fmt.Errorf("dump of %s failed: %w", name, err)
					// restic reports only "command failed"; the snapshot reads the cause here.
					if p := c.String("result"); p != "" {
						b, _ := json.Marshal(map[string]string{"error": err.Error()})
						_ = os.WriteFile(p, b, 0o600)
					}
					return err
				}
				if p := c.String("result"); p != "" {
					b, _ := json.Marshal(tr)
					if err := os.WriteFile(p, b, 0o600); err != nil {
						return fmt.Errorf("writing dump result: %w", err)
					}
				}
				return nil
			},
		}},
	}
}
