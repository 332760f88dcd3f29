package upgrade

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// RehearseOptions is what a rehearsal needs.
type RehearseOptions struct {
	Log    *slog.Logger
	Target *config.Target
	WAR    string
	// Clone takes a fresh snapshot set of the target's instance and clones it into the target
	// (scrubbed by its profile); it returns the set's ID.
	Clone func(ctx context.Context) (set string, err error)
	Out   io.Writer
}

// Migration is one flyway_schema_history row a rehearsal saw applied.
type Migration struct {
	Version     string `json:"version"`
	Description string `json:"description"`
	Millis      int64  `json:"execution_ms"`
	Success     bool   `json:"success"`
}

// Rehearsal is the report of `upgrade dhis2 rehearse`.
type Rehearsal struct {
	Target        string      `json:"target"`
	Instance      string      `json:"instance"`
	Set           string      `json:"set"`
	WAR           string      `json:"war"`
	From          string      `json:"from"`
	To            string      `json:"to"`
	OK            bool        `json:"ok"`
	CloneSeconds  float64     `json:"clone_seconds"`
	FlywayBefore  int         `json:"flyway_rows_before"`
	FlywayAfter   int         `json:"flyway_rows_after"`
	Applied       []Migration `json:"applied"`
	Failed        []Migration `json:"failed,omitempty"`
	MigrationSecs float64     `json:"migration_seconds"`
	StartupSecs   float64     `json:"startup_seconds"`
	Error         string      `json:"error,omitempty"`
	LogTail       string      `json:"log_tail,omitempty"`
}

func (o *RehearseOptions) say(format string, args ...any) {
	if o.Out != nil {
		fmt.Fprintf(o.Out, format+"\n", args...)
	}
	o.Log.Info(fmt.Sprintf(format, args...))
}

// Rehearse clones a fresh set into the staging target, starts the new WAR in the target's
// app slot and reports the migrations and timings. Production is only read (the snapshot).
// The returned error is non-nil when the new version does not come up.
func Rehearse(ctx context.Context, o RehearseOptions) (*Rehearsal, error) {
	t := o.Target
	if t.App == nil {
		return nil, &UsageError{Msg: fmt.Sprintf("target %s has no app slot: add [targets.%s.app] (stop, start, url) to start the new WAR on the clone", t.Name, t.Name)}
	}
	war, err := filepath.Abs(o.WAR)
	if err != nil {
		return nil, err
	}
	to, err := WARVersion(war)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	rep := &Rehearsal{Target: t.Name, Instance: t.Instance, WAR: war, To: to}
	slot := t.App
	if err := slotHook(ctx, slot.Stop, "staging stop", "staging", slot.DHIS2Home, war); err != nil {
		return rep, err
	}
	o.say("rehearsal of DHIS2 %s on target %s: cloning a fresh set of %s ...", to, t.Name, t.Instance)
	t0 := time.Now()
	if rep.Set, err = o.Clone(ctx); err != nil {
		return rep, fmt.Errorf("cloning a fresh set into %s: %w", t.Name, err)
	}
	rep.CloneSeconds = time.Since(t0).Seconds()
	db := pg.Conn{DSN: t.Database, PasswordFile: t.DatabasePasswordFile}
	conn, err := db.Connect(ctx)
	if err != nil {
		return rep, err
	}
	var maxRank int
	rep.From, err = dhis2.FlywayVersion(ctx, conn)
	if err == nil {
		err = conn.QueryRow(ctx, `SELECT count(*), coalesce(max(installed_rank), 0) FROM flyway_schema_history`).Scan(&rep.FlywayBefore, &maxRank)
	}
	conn.Close(ctx)
	if err != nil {
		return rep, fmt.Errorf("reading the clone's flyway history: %w", err)
	}
	o.say("clone of set %s in %s: DHIS2 %s, %d flyway rows; starting %s in the staging slot", rep.Set, time.Duration(rep.CloneSeconds*float64(time.Second)).Round(time.Millisecond), rep.From, rep.FlywayBefore, to)
	t1 := time.Now()
	if err := slotHook(ctx, slot.Start, "staging start", "staging", slot.DHIS2Home, war); err != nil {
		return rep, err
	}
	timeout := slot.HealthTimeout.Duration
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	upErr := waitVersion(ctx, slot.URL, to, db, timeout)
	rep.StartupSecs = time.Since(t1).Seconds()
	if conn, err := db.Connect(ctx); err == nil {
		rows, qerr := conn.Query(ctx, `SELECT coalesce(version, ''), description, execution_time, success FROM flyway_schema_history WHERE installed_rank > $1 ORDER BY installed_rank`, maxRank)
		if qerr == nil {
			for rows.Next() {
				var m Migration
				if rows.Scan(&m.Version, &m.Description, &m.Millis, &m.Success) == nil {
					if m.Success {
						rep.Applied = append(rep.Applied, m)
					} else {
						rep.Failed = append(rep.Failed, m)
					}
					rep.MigrationSecs += float64(m.Millis) / 1000
				}
			}
			rows.Close()
		}
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM flyway_schema_history`).Scan(&rep.FlywayAfter)
		conn.Close(ctx)
	}
	if upErr != nil {
		rep.Error = upErr.Error()
		rep.LogTail = tailFile(slot.LogFile, 4000)
		_ = slotHook(ctx, slot.Stop, "staging stop", "staging", slot.DHIS2Home, war)
		return rep, fmt.Errorf("DHIS2 %s did not come up on the clone in %s: %w", to, t.Name, upErr)
	}
	rep.OK = true
	o.say("DHIS2 %s answers on %s after %s; it keeps running there for testing", to, slot.URL, time.Duration(rep.StartupSecs*float64(time.Second)).Round(time.Millisecond))
	return rep, nil
}
