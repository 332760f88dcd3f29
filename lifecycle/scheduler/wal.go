package scheduler

import (
	"context"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/metrics"
	"github.com/dhis2-life/dhis2-life/pitr"
)

// refreshWAL sets the WAL archiving metric of an instance with [instances.NAME.wal] from its
// server.
func (d *Daemon) refreshWAL(ctx context.Context, instance string) {
	in := d.Config().Instances[instance]
	if in == nil || in.WAL == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	a, err := pitr.ReadArchiver(ctx, in)
	if err != nil {
		d.log.Warn("could not read the WAL archiving state", "instance", instance, "err", err)
		return
	}
	if a.LastArchivedAt != nil {
		d.reg.Set(MetricWALLastArchived, metrics.Labels{"instance": instance}, float64(a.LastArchivedAt.Unix()))
	}
}
