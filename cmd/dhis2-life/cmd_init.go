package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/s3"
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
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := c.Context
			loc, isS3, err := s3.ParseResticURL(a.Config.Repository.URL)
			if err != nil {
				return usageErr("%v", err)
			}
			if isS3 {
				creds := s3.CredentialsFromEnv(append(os.Environ(), a.Env...))
				pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err := s3.EnsureBucket(pctx, loc, creds, false)
				cancel()
				if err != nil {
					if perr := s3.Probe(ctx, loc, creds, 10*time.Second); perr != nil {
						return perr
					}
					return err
				}
			}
			if err := a.Preflight(ctx); err != nil {
				return err
			}
			if err := os.MkdirAll(a.Config.StateDir, 0o700); err != nil {
				return fmt.Errorf("creating state_dir: %w", err)
			}
			if !isS3 {
				if err := os.MkdirAll(filepath.Dir(a.Config.Repository.URL), 0o700); err != nil {
					return fmt.Errorf("creating repository parent directory: %w", err)
				}
			}
			created, err := a.Repo.Init(ctx)
			if err != nil {
				return err
			}
			if _, err := a.Catalog(); err != nil {
				return err
			}
			if created {
				fmt.Fprintf(c.App.Writer, "created repository %s\n", a.Config.Repository.URL)
			} else {
				fmt.Fprintf(c.App.Writer, "repository %s exists and opens with the configured password\n", a.Config.Repository.URL)
			}
			if a.Config.Archive != nil {
				name, err := escrowRefresh(ctx, a)
				if err != nil {
					return fmt.Errorf("escrow bundle: %w", err)
				}
				fmt.Fprintf(c.App.Writer, "escrow bundle (repository password + config, age-encrypted) stored as %s/%s\n", a.Config.Archive.Bucket, name)
			}
			return nil
		},
	}
}
