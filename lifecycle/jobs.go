package lifecycle

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/restore"
)

// Job names (the "job" metric label and run records).
const (
	JobSnapshot     = "snapshot"
	JobVerify       = "verify"
	JobRetention    = "retention"
	JobCloneTTL     = "clone_ttl"
	JobCloneRefresh = "clone_refresh"
	// JobArchive is a manual `dhis2-life archive` (not scheduled on its own: retention archives).
	JobArchive = "archive"
)

// Jobs lists every schedulable job in the order catch-up runs them.
var Jobs = []string{JobSnapshot, JobVerify, JobRetention, JobCloneRefresh, JobCloneTTL, JobBaseBackup}

// ErrUnknownJob is returned (wrapped) for a job name that does not exist.
var ErrUnknownJob = errors.New("unknown job")

// ErrSkip marks a run that had nothing to do (recorded as skipped, no alert).
var ErrSkip = errors.New("skipped")

// ErrDrillFailed is returned (wrapped) by Verify when a drill's check failed.
var ErrDrillFailed = errors.New("drill failed")

// UsageError is a request the caller must change (a name, an argument, a missing setting);
// the CLI exits 2 for it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usage(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// ParseJob checks a job name.
func ParseJob(s string) (string, error) {
	for _, j := range Jobs {
		if s == j {
			return j, nil
		}
	}
	return "", fmt.Errorf("%w %q: jobs are %s", ErrUnknownJob, s, strings.Join(Jobs, ", "))
}

// ScheduleOf returns a job's cron spec from [schedule] ("" = not scheduled).
func ScheduleOf(cfg *config.Config, job string) string {
	s := cfg.Schedule
	switch job {
	case JobSnapshot:
		return s.Snapshot
	case JobVerify:
		return s.Verify
	case JobRetention:
		return s.Retention
	case JobCloneTTL:
		return s.CloneTTL
	case JobCloneRefresh:
		return s.CloneFresh
	case JobBaseBackup:
		return s.BaseBackup
	}
	return ""
}

// Result is what a job reports besides its error.
type Result struct {
	Bytes    int64
	Manifest *manifest.Manifest
	Drill    *restore.Report
	// RepoReachable is false when the repository could not be reached, nil when not checked.
	RepoReachable *bool
}

func skipf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSkip}, args...)...)
}
