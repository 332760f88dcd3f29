package main

import (
	"errors"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/retention"
)

// flagAdvice maps the refusals of the domain packages to the command-line flag that
// overrides each. The domain packages only name the problem (the daemon hits the same
// errors and has no flags); the CLI adds the flag when it prints the error. Most specific
// first: restore.ErrDirNotEmpty wraps restore.ErrNotEmpty.
var flagAdvice = []struct {
	err    error
	advice string
}{
	{restore.ErrDirNotEmpty, " or pass --force (restic overwrites files there)"},
	{restore.ErrNotEmpty, "; pass --force to replace it (its contents will be lost)"},
	{clone.ErrNotAClone, "; pass --force to replace it (its contents will be lost)"},
	{restore.ErrSessions, " or pass --terminate to end them"},
	{retention.ErrKeepsNothing, " or pass --allow-empty"},
	{crypt.ErrExists, " (pass --force to replace it, or --to DIR)"},
}

// advise returns err with the flag that overrides it appended to its message (one line), or
// err itself when no flag does. The result wraps err, so exit codes stay as they were.
func advise(err error) error {
	for _, a := range flagAdvice {
		if errors.Is(err, a.err) {
			return &advised{err: err, advice: a.advice}
		}
	}
	return err
}

// advised is an error with flag advice.
type advised struct {
	err    error
	advice string
}

func (a *advised) Error() string { return a.err.Error() + a.advice }
func (a *advised) Unwrap() error { return a.err }
