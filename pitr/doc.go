// Package pitr owns point-in-time recovery: WAL archiving set-up, base backups streamed from
// pg_basebackup into restic, restores of a cluster to a time, PITR drills and WAL retention.
package pitr
