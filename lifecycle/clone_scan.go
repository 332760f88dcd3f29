package lifecycle

import (
	"context"
	"fmt"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/config"
)

// CloneScan searches the clone of target name (database and file store) for production's
// identifying values, read from the target's instance. It returns the report, and an error
// wrapping clone.ErrVerify (and clone.ErrPIIFound) when a value is found.
func (r *Runner) CloneScan(ctx context.Context, name string) (*config.Target, *clone.ScanReport, error) {
	t, err := r.CloneTarget(name)
	if err != nil {
		return nil, nil, err
	}
	rep, err := clone.ScanTarget(ctx, r.App.Config, t)
	if err != nil {
		return t, nil, err
	}
	if err := rep.Error(); err != nil {
		return t, rep, fmt.Errorf("clone %s holds personal data of production: %w", t.Name, err)
	}
	return t, rep, nil
}
