package pitr

import (
	"context"
	"fmt"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
)

// WALStatus is the WAL archiving state of an instance for `status`.
type WALStatus struct {
	LastArchived   string     `json:"last_archived_wal,omitempty"`
	LastArchivedAt *time.Time `json:"last_archived_time,omitempty"`
	// AgeSeconds is the age of the last archived file; LagSeconds is the same while WAL waits
	// to be archived, and 0 when nothing is pending (an idle server is not late).
	AgeSeconds    float64    `json:"age_seconds"`
	LagSeconds    float64    `json:"lag_seconds"`
	MaxLagSeconds float64    `json:"wal_max_lag_seconds"`
	Pending       bool       `json:"pending"`
	FailedCount   int64      `json:"failed_count"`
	LastFailed    string     `json:"last_failed_wal,omitempty"`
	LastFailedAt  *time.Time `json:"last_failed_time,omitempty"`
	ArchiveMode   string     `json:"archive_mode"`
	Error         string     `json:"error,omitempty"`
	// LastDrill is the newest `verify --pitr` (set by the status command from the catalogue).
	LastDrill *DrillSummary `json:"last_pitr_drill"`
	Problems  []string      `json:"problems"`
}

// Status reads the instance's archiver and judges it against wal_max_lag.
func Status(ctx context.Context, in *config.Instance, now time.Time) *WALStatus {
	st := &WALStatus{MaxLagSeconds: in.WAL.MaxLag.Seconds(), Problems: []string{}}
	a, err := ReadArchiver(ctx, in)
	if err != nil {
		st.Error = err.Error()
		st.Problems = append(st.Problems, "WAL archiving state unknown: "+err.Error())
		return st
	}
	st.ArchiveMode, st.Pending, st.FailedCount = a.ArchiveMode, a.Pending, a.FailedCount
	st.LastArchived, st.LastArchivedAt, st.LastFailed, st.LastFailedAt = a.LastArchived, a.LastArchivedAt, a.LastFailed, a.LastFailedAt
	if a.ArchiveMode == "off" {
		st.Problems = append(st.Problems, "WAL archiving is off: run `dhis2-life wal setup --instance "+in.Name+" --apply` and restart PostgreSQL")
		return st
	}
	if a.LastArchivedAt != nil {
		st.AgeSeconds = now.Sub(*a.LastArchivedAt).Seconds()
	}
	if a.Pending && a.LastArchivedAt != nil {
		st.LagSeconds = st.AgeSeconds
	}
	lagging := a.Pending && (a.LastArchivedAt == nil && a.LastFailedAt != nil || st.LagSeconds > st.MaxLagSeconds)
	if lagging {
		why := ""
		if a.LastFailedAt != nil && (a.LastArchivedAt == nil || a.LastFailedAt.After(*a.LastArchivedAt)) {
			why = fmt.Sprintf("; archive_command fails (last failure %s at %s, %d failures): see the PostgreSQL log",
				a.LastFailed, a.LastFailedAt.UTC().Format(time.RFC3339), a.FailedCount)
		}
		st.Problems = append(st.Problems, fmt.Sprintf("WAL not archived for %s (wal_max_lag %s), last archived %s%s",
			time.Duration(st.LagSeconds*float64(time.Second)).Round(time.Second), in.WAL.MaxLag.Duration, orDash(a.LastArchived), why))
	}
	return st
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
