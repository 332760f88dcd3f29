package restic

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Exit codes documented by restic (docs 075_scripting).
const (
	ExitOK            = 0
	ExitFailure       = 1
	ExitIncomplete    = 3
	ExitNoRepository  = 10
	ExitLockFailed    = 11
	ExitWrongPassword = 12
	ExitInterrupted   = 130
)

// Sentinel errors matched with errors.Is against an *Error.
var (
	ErrNoRepository  = errors.New("repository does not exist")
	ErrLocked        = errors.New("repository is locked")
	ErrWrongPassword = errors.New("wrong repository password")
	ErrIncomplete    = errors.New("some source data could not be read")
	ErrInterrupted   = errors.New("restic was interrupted")
	ErrTimeout       = errors.New("restic did not finish in time")
	ErrUnreachable   = errors.New("the repository stopped answering")
	// ErrDamaged: restic found data of the repository missing or altered (a pack or index
	// deleted, a flipped byte), as opposed to the repository being unreachable.
	ErrDamaged = errors.New("the repository is damaged")
)

// damageSigns are restic's messages for missing or altered repository data.
var damageSigns = []string{
	"not found in repository", "not found in index", "ciphertext verification failed",
	"hash mismatch", "invalid data returned", "the specified key does not exist",
	"unexpected eof", "wrong length", "is damaged", "load index",
}

// damaged reports whether a restic message says repository data is missing or altered.
func damaged(msg string) bool {
	low := strings.ToLower(msg)
	for _, s := range damageSigns {
		if strings.Contains(low, s) {
			return true
		}
	}
	return false
}

// Error is a failed restic call.
type Error struct {
	Op       string // e.g. "backup", "snapshots"
	ExitCode int    // -1 when restic did not exit normally
	Message  string // restic's own error message (exit_error JSON or last stderr line)
	kind     error
}

func (e *Error) Error() string {
	hint := ""
	switch e.kind {
	case ErrWrongPassword:
		hint = " (check repository.password_file: it must hold the password the repository was created with)"
	case ErrNoRepository:
		hint = " (run `dhis2-life init` to create it, or check repository.url)"
	case ErrLocked:
		hint = " (another restic process holds the lock; stale locks are removed with `dhis2-life unlock`)"
	case ErrIncomplete:
		hint = " (the snapshot is not trusted; it is not recorded)"
	case ErrTimeout:
		hint = " (check the repository endpoint is reachable, or raise repository.timeout)"
	case ErrDamaged:
		hint = " (the repository is damaged: run `restic check --read-data` to see what is lost, restore another set (`dhis2-life snapshots`), and run `dhis2-life catalog rebuild` once it is repaired)"
	}
	msg := e.Message
	if msg == "" && e.kind != nil {
		msg = e.kind.Error()
	}
	if e.ExitCode < 0 { // stopped by us or a signal: restic's exit code says nothing
		return fmt.Sprintf("restic %s failed: %s%s", e.Op, msg, hint)
	}
	return fmt.Sprintf("restic %s failed (exit %d): %s%s", e.Op, e.ExitCode, msg, hint)
}

// Unwrap lets errors.Is match the sentinel errors.
func (e *Error) Unwrap() error { return e.kind }

// Is makes an interrupted call match context.Canceled too, so callers map it to exit 130.
func (e *Error) Is(target error) bool {
	return target == context.Canceled && e.kind == ErrInterrupted
}

func kindOf(code int) error {
	switch code {
	case ExitNoRepository:
		return ErrNoRepository
	case ExitLockFailed:
		return ErrLocked
	case ExitWrongPassword:
		return ErrWrongPassword
	case ExitIncomplete:
		return ErrIncomplete
	case ExitInterrupted:
		return ErrInterrupted
	}
	return nil
}
