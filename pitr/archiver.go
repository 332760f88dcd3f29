package pitr

import (
	"context"
	"fmt"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
)

// Archiver is PostgreSQL's view of WAL archiving (pg_settings and pg_stat_archiver).
type Archiver struct {
	ArchiveMode    string     `json:"archive_mode"`
	ArchiveCommand string     `json:"archive_command"`
	ArchiveTimeout string     `json:"archive_timeout"`
	WALLevel       string     `json:"wal_level"`
	PendingRestart bool       `json:"pending_restart"`
	LastArchived   string     `json:"last_archived_wal,omitempty"`
	LastArchivedAt *time.Time `json:"last_archived_time,omitempty"`
	LastFailed     string     `json:"last_failed_wal,omitempty"`
	LastFailedAt   *time.Time `json:"last_failed_time,omitempty"`
	FailedCount    int64      `json:"failed_count"`
	ArchivedCount  int64      `json:"archived_count"`
	CurrentWAL     string     `json:"current_wal"`
	// Pending is true when WAL has been written since the last archived segment ended, i.e.
	// something would be lost if the primary's disk were lost now.
	Pending bool `json:"pending"`
}

// ReadArchiver reads the archiving settings and statistics of the instance's server.
func ReadArchiver(ctx context.Context, in *config.Instance) (*Archiver, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := adminConn(in).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	a := &Archiver{}
	err = conn.QueryRow(ctx, `SELECT current_setting('archive_mode'), current_setting('archive_command'),
		current_setting('archive_timeout'), current_setting('wal_level'),
		EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart AND name IN ('archive_mode', 'wal_level'))`).
		Scan(&a.ArchiveMode, &a.ArchiveCommand, &a.ArchiveTimeout, &a.WALLevel, &a.PendingRestart)
	if err != nil {
		return nil, fmt.Errorf("reading archive settings of instance %s: %w", in.Name, err)
	}
	var lastA, lastF *string
	err = conn.QueryRow(ctx, `SELECT archived_count, last_archived_wal, last_archived_time, failed_count,
		last_failed_wal, last_failed_time FROM pg_stat_archiver`).
		Scan(&a.ArchivedCount, &lastA, &a.LastArchivedAt, &a.FailedCount, &lastF, &a.LastFailedAt)
	if err != nil {
		return nil, fmt.Errorf("reading pg_stat_archiver of instance %s: %w", in.Name, err)
	}
	if lastA != nil {
		a.LastArchived = *lastA
	}
	if lastF != nil {
		a.LastFailed = *lastF
	}
	var inRecovery bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || inRecovery {
		return a, err
	}
	// Pending: the current insert position is past the start of the segment after the last
	// archived one (or nothing was ever archived).
	var offset int64
	if err := conn.QueryRow(ctx, `SELECT file_name, file_offset FROM pg_walfile_name_offset(pg_current_wal_lsn())`).Scan(&a.CurrentWAL, &offset); err != nil {
		return nil, fmt.Errorf("reading the current WAL position: %w", err)
	}
	a.Pending = a.LastArchived == "" || a.CurrentWAL > nextSegment(a.LastArchived) || (a.CurrentWAL == nextSegment(a.LastArchived) && offset > 0)
	return a, nil
}

// nextSegment returns the name of the segment after a 16 MB-default-sized segment name; for
// other names (history, backup) it returns the name itself.
func nextSegment(name string) string {
	if len(name) != 24 {
		return name
	}
	var tli, log, seg uint32
	if _, err := fmt.Sscanf(name, "%08X%08X%08X", &tli, &log, &seg); err != nil {
		return name
	}
	// With 16 MB segments a log holds 0x100 segments; other sizes are rare and only make
	// Pending conservative.
	seg++
	if seg > 0xFF {
		seg, log = 0, log+1
	}
	return fmt.Sprintf("%08X%08X%08X", tli, log, seg)
}
