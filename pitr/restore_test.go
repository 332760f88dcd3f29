package pitr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Log lines as PostgreSQL 15 writes them (lc_messages C, log_timezone UTC) and as wal fetch
// adds them through restore_command.
const (
	logStart   = "2026-12-03 07:43:18.100 UTC [1] LOG:  starting PostgreSQL 15.18\n2026-12-03 07:43:18.200 UTC [2] LOG:  starting point-in-time recovery to 2026-12-03 07:43:16+00\n"
	logMissing = "dhis2-life: wal fetch: 00000001000000000000000C is not in the WAL archive\n" +
		"2026-12-03 07:43:19.000 UTC [2] LOG:  redo done at 0/B0001F0 system usage: CPU: user: 0.00 s\n" +
		"2026-12-03 07:43:19.000 UTC [2] LOG:  last completed transaction was at log time 2026-12-03 07:43:13.396459+00\n" +
		"2026-12-03 07:43:19.001 UTC [2] FATAL:  recovery ended before configured recovery target was reached\n" +
		"2026-12-03 07:43:19.010 UTC [1] LOG:  database system is shut down\n"
	logPromoted = "2026-12-03 07:43:19.000 UTC [2] LOG:  recovery stopping before commit of transaction 812, time 2026-12-03 07:43:16.01+00\n" +
		"2026-12-03 07:43:19.000 UTC [2] LOG:  redo done at 0/B0001F0 system usage: CPU: user: 0.00 s\n" +
		"2026-12-03 07:43:19.000 UTC [2] LOG:  last completed transaction was at log time 2026-12-03 07:43:15.990001+00\n" +
		"2026-12-03 07:43:19.100 UTC [2] LOG:  selected new timeline ID: 2\n" +
		"2026-12-03 07:43:19.200 UTC [1] LOG:  database system is ready to accept connections\n"
	logPaused = "2026-12-03 07:43:18.500 UTC [1] LOG:  database system is ready to accept read-only connections\n" +
		"2026-12-03 07:43:19.000 UTC [2] LOG:  recovery stopping before commit of transaction 812, time 2026-12-03 07:43:16.01+00\n" +
		"2026-12-03 07:43:19.000 UTC [2] LOG:  pausing at the end of recovery\n"
)

func TestWaitRecovery(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "log")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	st, reached, _, err := waitRecovery(ctx, write(logStart+logPromoted), false, false)
	if err != nil || st != "promoted" || reached == nil || reached.Format(time.RFC3339Nano) != "2026-12-03T07:43:15.990001Z" {
		t.Fatalf("promoted: %q %v %v", st, reached, err)
	}
	st, _, _, err = waitRecovery(ctx, write(logStart+logPaused), true, false)
	if err != nil || st != "paused" {
		t.Fatalf("paused: %q %v", st, err)
	}
	_, reached, missing, err := waitRecovery(ctx, write(logStart+logMissing), false, false)
	if !errors.Is(err, ErrStoppedEarly) || missing != "00000001000000000000000C" || reached == nil || reached.Format(time.RFC3339Nano) != "2026-12-03T07:43:13.396459Z" {
		t.Fatalf("stopped early: %v %q %v", reached, missing, err)
	}
	e := &StoppedEarlyError{Target: time.Date(2026, 12, 3, 7, 43, 16, 0, time.UTC), Reached: reached, Missing: missing, LogFile: "L"}
	if msg := e.Error(); !strings.Contains(msg, "WAL file 00000001000000000000000C is missing") || !strings.Contains(msg, "the last reachable time is 2026-12-03 07:43:13.396459Z") {
		t.Fatalf("message: %s", msg)
	}
	if _, _, _, err := waitRecovery(ctx, write(logStart), false, true); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("pg_ctl failed and the log says nothing more: %v", err)
	}
	// Without an outcome in the log and a running server, it waits until the context ends.
	short, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	if _, _, _, err := waitRecovery(short, write(logStart), false, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no outcome yet: %v", err)
	}
}

func TestShellQuoteAndCommand(t *testing.T) {
	got := Command("/usr/local/bin/dhis2-life", "/etc/dhis2 life/c.toml", "hmis", "fetch", "%f", "%p")
	want := `/usr/local/bin/dhis2-life --config '/etc/dhis2 life/c.toml' --log-level warn wal fetch %f %p --instance hmis`
	if got != want {
		t.Fatalf("Command = %s\nwant      %s", got, want)
	}
	if q := ShellQuote("it's"); q != `'it'\''s'` {
		t.Fatalf("ShellQuote = %s", q)
	}
}
