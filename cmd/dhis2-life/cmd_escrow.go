package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/s3"
)

// escrowObject is the escrow bundle's object name under archive.prefix.
const escrowObject = "escrow/dhis2-life-escrow.age"

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
them as <archive.prefix>` + escrowObject + ` in the archive bucket.

EXAMPLES:
   dhis2-life escrow refresh`,
				Action: func(c *cli.Context) error {
					a, err := load(c)
					if err != nil {
						return err
					}
					defer a.Close()
					name, err := escrowRefresh(c.Context, a)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "escrow bundle (repository password + config) stored as %s/%s, encrypted to %d recipients\n",
						a.Config.Archive.Bucket, name, len(a.Config.Archive.Recipients))
					return nil
				},
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

// escrowRefresh stores the escrow bundle; it returns the object name.
func escrowRefresh(ctx context.Context, a *app.App) (string, error) {
	if a.Config.Archive == nil {
		return "", usageErr("escrow needs an [archive] table with recipients (see `dhis2-life config example`)")
	}
	rs, err := archiveRecipients(a)
	if err != nil {
		return "", err
	}
	e, err := crypt.NewEscrow(a.Config.Path, a.Config.Repository.PasswordFile, time.Now())
	if err != nil {
		return "", err
	}
	sealed, err := e.Seal(rs)
	if err != nil {
		return "", err
	}
	b, err := archiveBucket(ctx, a)
	if err != nil {
		return "", err
	}
	name := a.Config.Archive.Prefix + escrowObject
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	proc.KillAt("escrow:sealed")
	if err := b.PutSmall(pctx, name, sealed); err != nil {
		return "", err
	}
	proc.KillAt("escrow:stored")
	return name, nil
}

func escrowRecover(c *cli.Context) error {
	if c.String("identity") == "" {
		return usageErr("escrow recover needs --identity FILE")
	}
	ids, err := crypt.ReadIdentities(c.String("identity"))
	if err != nil {
		return usageErr("--identity: %v", err)
	}
	var ac *config.Archive
	env := os.Environ()
	if c.String("env-file") != "" {
		fe, err := app.ReadEnvFile(c.String("env-file"))
		if err != nil {
			return usageErr("--env-file: %v", err)
		}
		env = append(env, fe...)
	}
	if c.String("bucket") != "" {
		if c.String("endpoint") == "" {
			return usageErr("--bucket needs --endpoint HOST:PORT")
		}
		ac = &config.Archive{Endpoint: c.String("endpoint"), Bucket: c.String("bucket"), Prefix: c.String("prefix"), Secure: c.Bool("secure")}
	} else {
		a, err := load(c)
		if err != nil {
			return usageErr("no readable config (%v): name the archive bucket with --endpoint and --bucket", err)
		}
		defer a.Close()
		if a.Config.Archive == nil {
			return usageErr("the config has no [archive]: name the archive bucket with --endpoint and --bucket")
		}
		ac = a.Config.Archive
		env = append(env, a.Env...)
	}
	b, err := s3.NewArchiveBucket(ac, env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
	defer cancel()
	name := ac.Prefix + escrowObject
	rc, err := b.Get(ctx, name, "")
	if err != nil {
		return fmt.Errorf("escrow bundle: %w (was `dhis2-life escrow refresh` or `init` run with [archive] configured?)", err)
	}
	defer rc.Close()
	e, err := crypt.OpenEscrow(rc, ids)
	if err != nil {
		return err
	}
	paths, err := e.WriteBack(c.String("to"), c.Bool("force"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "escrow bundle of %s (written %s) recovered:\n", e.Host, e.Created.Format(time.RFC3339))
	for i, p := range paths {
		fmt.Fprintf(c.App.Writer, "  %s (%s, mode 0600)\n", p, e.Files[i].Role)
	}
	if c.String("to") != "" {
		fmt.Fprintln(c.App.Writer, "the recovered config names the original paths (repository.password_file, state_dir): move the files there or edit it; then run `dhis2-life catalog rebuild`")
	}
	return nil
}
