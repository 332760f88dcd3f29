package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func cmdEscrow() *cli.Command {
	return &cli.Command{
		Name:  "escrow",
		Usage: "store or recover the repository password and config, encrypted to the archive recipients",
		Description: `The escrow bundle holds the repository password and this configuration, age-encrypted
to archive.recipients, in the archive bucket (` + "`init`" + ` refreshes it). With it, a fresh host
needs only S3 credentials and an age identity to get back to its snapshots:

   dhis2-life escrow recover --identity key.txt --endpoint s3.example.org:9000 --bucket dhis2-archive --prefix hmis/ --secure --to /etc/dhis2-life
   dhis2-life --config /etc/dhis2-life/dhis2-life.toml catalog rebuild

EXAMPLES:
   dhis2-life escrow refresh
   dhis2-life escrow recover --identity key.txt --to ./recovered`,
		Subcommands: []*cli.Command{
			{
				Name:  "refresh",
				Usage: "upload the current repository password and config, encrypted",
				Description: `Encrypts the repository password and the config file to archive.recipients and stores
them as <archive.prefix>` + lifecycle.EscrowObject + ` in the archive bucket.

EXAMPLES:
   dhis2-life escrow refresh`,
				Action: withApp(func(c *cli.Context, a *app.App) error {
					name, err := lifecycle.EscrowRefresh(c.Context, a)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "escrow bundle (repository password + config) stored as %s/%s, encrypted to %d recipients\n",
						a.Config.Archive.Bucket, name, len(a.Config.Archive.Recipients))
					return nil
				}),
			},
			{
				Name:  "recover",
				Usage: "download the escrow bundle and write the password and config back (0600)",
				Description: `Decrypts the escrow bundle with --identity and writes the config and repository
password into --to DIR (by file name), or to their original paths without --to.
Existing files are not replaced without --force. The bucket comes from the config's
[archive] when one is readable, else from --endpoint/--bucket/--prefix; S3 credentials
from --env-file or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.

EXAMPLES:
   dhis2-life escrow recover --identity key.txt --endpoint 127.0.0.1:9000 --bucket dhis2-archive --prefix hmis/ --env-file s3.env --to /etc/dhis2-life`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "identity", Usage: "age identity `FILE` (AGE-SECRET-KEY-1...)"},
					&cli.StringFlag{Name: "to", Usage: "write the files into `DIR` instead of their original paths"},
					&cli.BoolFlag{Name: "force", Usage: "replace existing files"},
					&cli.StringFlag{Name: "endpoint", Usage: "archive S3 `HOST:PORT` (when no config is readable)"},
					&cli.StringFlag{Name: "bucket", Usage: "archive `BUCKET`"},
					&cli.StringFlag{Name: "prefix", Usage: "archive object `PREFIX`"},
					&cli.BoolFlag{Name: "secure", Usage: "use https"},
					&cli.StringFlag{Name: "env-file", Usage: "`FILE` (0600) with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY lines"},
				},
				Action: escrowRecover,
			},
		},
	}
}

// escrowRecover names the bucket from the flags or, without --bucket, from the config.
func escrowRecover(c *cli.Context) error {
	q := lifecycle.EscrowRecoverRequest{Identity: c.String("identity"), To: c.String("to"), Force: c.Bool("force")}
	if q.Identity == "" {
		return usageErr("escrow recover needs --identity FILE")
	}
	if f := c.String("env-file"); f != "" {
		env, err := app.ReadEnvFile(f)
		if err != nil {
			return usageErr("--env-file: %v", err)
		}
		q.Env = env
	}
	switch a, err := load(c); {
	case c.String("bucket") != "" && c.String("endpoint") == "":
		return usageErr("--bucket needs --endpoint HOST:PORT")
	case c.String("bucket") != "":
		q.Archive = &config.Archive{Endpoint: c.String("endpoint"), Bucket: c.String("bucket"), Prefix: c.String("prefix"), Secure: c.Bool("secure")}
	case err != nil:
		return usageErr("no readable config (%v): name the archive bucket with --endpoint and --bucket", err)
	case a.Config.Archive == nil:
		return usageErr("the config has no [archive]: name the archive bucket with --endpoint and --bucket")
	default:
		q.Archive, q.Env = a.Config.Archive, append(q.Env, a.Env...)
	}
	out, err := lifecycle.EscrowRecover(c.Context, q)
	if err != nil {
		return err
	}
	return render.EscrowRecovered(c.App.Writer, out, q.To != "")
}
