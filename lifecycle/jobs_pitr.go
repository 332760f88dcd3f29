package lifecycle

import (
	"context"
	"fmt"
	"os"

	"github.com/dhis2-life/dhis2-life/pitr"
)

// JobBaseBackup takes a base backup of instances with WAL archiving ([schedule] base_backup).
const JobBaseBackup = "base_backup"

// BaseBackupJob takes a base backup (pg_basebackup into the repository) of an instance with
// [instances.NAME.wal]; other instances are skipped.
func BaseBackupJob(ctx context.Context, env Env) (Result, error) {
	var res Result
	in := env.Instance
	if in.WAL == nil {
		return res, fmt.Errorf("%w: instance %s has no WAL archiving", ErrSkip, in.Name)
	}
	if err := preflight(ctx, env, &res); err != nil {
		return res, err
	}
	self, err := os.Executable()
	if err != nil {
		return res, fmt.Errorf("finding own executable for the base backup producer: %w", err)
	}
	m, err := pitr.BaseBackup(ctx, pitr.BaseOptions{
		Config: env.App.Config, Instance: in, Repo: env.App.Repo, Log: env.App.Log, ToolVersion: env.ToolVersion,
		Producer: []string{self, "--config", env.App.Config.Path, "--log-level", "warn", "wal", "base-stream", "--instance", in.Name},
	})
	if err != nil {
		return res, err
	}
	res.Bytes = m.Part.AddedPacked
	return res, nil
}
