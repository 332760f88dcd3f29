package lifecycle

import (
	"context"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/metrics"
	"github.com/dhis2-life/dhis2-life/pitr"
)

// MetricWALLastArchived is the Unix time PostgreSQL last archived a WAL file (pg_stat_archiver)
// of instances with [instances.NAME.wal].
const MetricWALLastArchived = "dhis2_life_wal_last_archived_timestamp_seconds"

func defineWALMetrics(r *metrics.Registry) {
	r.Define(MetricWALLastArchived, metrics.Gauge, "Unix time of the last WAL file archived by PostgreSQL (pg_stat_archiver), for instances with WAL archiving.", "instance")
}

// refreshWAL sets the WAL archiving metric of an instance from its server.
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
