package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// RollbackDHIS2 returns the instance's newest DHIS2 upgrade to blue: after a failure or a
// kill, or after done (the proxy goes back to blue; the rows entered on green since the switch
// are reported and, with ExportDir, written as CSV first).
func RollbackDHIS2(ctx context.Context, o DHIS2Options) (*DHIS2Record, error) {
	if err := checkSlots(o.Instance); err != nil {
		return nil, err
	}
	r, err := LatestDHIS2(o.Catalog, o.Instance.Name)
	if err != nil {
		return nil, err
	}
	switch r.State {
	case StateRolledBack, StateFinalized:
		return r, fmt.Errorf("upgrade %s is %s: nothing to roll back", r.ID, r.State)
	}
	if r.State == StateDone && dbName(o.Instance) != (pg.Conn{DSN: r.BlueDB}).Database() {
		return r, &UsageError{Msg: fmt.Sprintf("the config of %s already names green's database %s: name blue's (%s) and its app slot again before rolling back", r.Instance, dbName(o.Instance), pg.Redact(r.BlueDB))}
	}
	if err := rollbackDHIS2(ctx, o, r); err != nil {
		return r, fmt.Errorf("rollback of upgrade %s: %w", r.ID, err)
	}
	return r, nil
}

func rollbackDHIS2(ctx context.Context, o DHIS2Options, r *DHIS2Record) (err error) {
	in := o.Instance
	g := in.App.Green
	r.Rollback = nil
	note := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		r.Rollback = append(r.Rollback, s)
		o.say("  rollback: %s", s)
	}
	defer func() {
		if err != nil {
			r.State = StateFailed
			r.Rollback = append(r.Rollback, "FAILED: "+err.Error())
		} else {
			r.State = StateRolledBack
		}
		err = errors.Join(err, putDHIS2(o.Catalog, r))
	}()
	switched := r.Started(DStepSwitch)
	if switched {
		sw, err := switcher(o)
		if err != nil {
			return err
		}
		if err := sw.Switch(ctx, "blue", r.BlueUpstream); err != nil {
			return fmt.Errorf("sending the proxy back to blue: %w", err)
		}
		note("proxy sends users to blue (%s) again", r.BlueUpstream)
	}
	if r.Started(DStepGreenStart) {
		if err := slotHook(ctx, g.Stop, "green stop", "green", g.DHIS2Home, r.WAR); err != nil {
			return err
		}
		note("green app stopped")
	}
	if switched && r.SwitchedDB != "" {
		changes, err := sinceSwitch(ctx, greenConn(in, r), r.SwitchedDB, o.ExportDir)
		if err != nil {
			return fmt.Errorf("counting the rows entered on green since the switch: %w", err)
		}
		r.SinceSwitch = changes
		var total int64
		for _, c := range changes {
			total += c.Created + c.Updated
		}
		note("%d rows in %d tables were created or updated on green since the switch at %s (database time); green's database %s keeps them", total, len(changes), r.SwitchedDB, pg.Conn{DSN: r.GreenDB}.Database())
		if o.ExportDir != "" && len(changes) > 0 {
			note("those rows are written as CSV in %s", o.ExportDir)
		}
	} else if r.Started(DStepGreenDB) {
		name := pg.Conn{DSN: r.GreenDB}.Database()
		if err := dropDB(ctx, adminConn(in), name); err != nil {
			return err
		}
		note("green database %s dropped", name)
	}
	if r.Started(DStepMaintenance) {
		if err := hook(ctx, in.App.Start, "start"); err != nil {
			return err
		}
		timeout := in.App.HealthTimeout.Duration
		if timeout <= 0 {
			timeout = 2 * time.Minute
		}
		if err := health(ctx, in.App.URL, timeout); err != nil {
			if tail := tailFile(in.App.LogFile, 1000); tail != "" {
				return fmt.Errorf("blue started but is not healthy: %w; blue's log ends:\n%s", err, tail)
			}
			return fmt.Errorf("blue started but is not healthy: %w", err)
		}
		note("blue app started and answers at %s", in.App.URL)
		if !switched && in.App.MaintenanceUpstream != "" {
			sw, err := switcher(o)
			if err != nil {
				return err
			}
			if err := sw.Switch(ctx, "blue", r.BlueUpstream); err != nil {
				return fmt.Errorf("sending the proxy back to blue from the maintenance page: %w", err)
			}
			note("proxy sends users to blue (%s) again, not to the maintenance page", r.BlueUpstream)
		}
	}
	return nil
}

// sinceSwitch counts, per table with DHIS2's created/lastupdated columns, the rows created or
// updated after ts (database local time); with dir, it first writes them as CSV.
func sinceSwitch(ctx context.Context, c pg.Conn, ts, dir string) ([]TableChange, error) {
	conn, err := c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT c.table_schema, c.table_name,
  bool_or(c.column_name = 'created'), bool_or(c.column_name = 'lastupdated')
FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
  AND c.column_name IN ('created', 'lastupdated') AND c.data_type LIKE 'timestamp%'
GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	type tbl struct {
		schema, name     string
		created, updated bool
	}
	var tables []tbl
	for rows.Next() {
		var t tbl
		if err := rows.Scan(&t.schema, &t.name, &t.created, &t.updated); err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("export directory: %w", err)
		}
	}
	lit := "'" + strings.ReplaceAll(ts, "'", "''") + "'::timestamp"
	var out []TableChange
	for _, t := range tables {
		q := pg.QualifiedName(t.schema, t.name)
		createdAfter, updatedAfter := "false", "false"
		if t.created {
			createdAfter = "created >= " + lit
		}
		if t.updated {
			updatedAfter = "lastupdated >= " + lit
		}
		where := createdAfter + " OR " + updatedAfter
		var ch TableChange
		ch.Table = t.schema + "." + t.name
		if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FILTER (WHERE %s), count(*) FILTER (WHERE NOT coalesce(%s, false)) FROM %s WHERE %s`,
			createdAfter, createdAfter, q, where)).Scan(&ch.Created, &ch.Updated); err != nil {
			return nil, fmt.Errorf("counting %s: %w", ch.Table, err)
		}
		if ch.Created+ch.Updated == 0 {
			continue
		}
		if dir != "" {
			ch.CSV = filepath.Join(dir, ch.Table+".csv")
			if err := exportCSV(ctx, conn.PgConn(), fmt.Sprintf("COPY (SELECT * FROM %s WHERE %s) TO STDOUT WITH (FORMAT csv, HEADER)", q, where), ch.CSV); err != nil {
				return nil, fmt.Errorf("exporting %s: %w", ch.Table, err)
			}
		}
		out = append(out, ch)
	}
	return out, nil
}

// FinalizeDHIS2 ends the instance's newest DHIS2 upgrade: after done it drops blue's database
// (once the config names green's) and frees blue's slot; after a rollback it drops green's.
func FinalizeDHIS2(ctx context.Context, o DHIS2Options, olderThan time.Duration) (*DHIS2Record, error) {
	r, err := LatestDHIS2(o.Catalog, o.Instance.Name)
	if err != nil {
		return nil, err
	}
	in := o.Instance
	var drop string
	switch r.State {
	case StateDone:
		if r.Done != nil && time.Since(*r.Done) < olderThan {
			return r, fmt.Errorf("upgrade %s finished %s ago, less than --older-than %s: nothing removed", r.ID, time.Since(*r.Done).Round(time.Second), olderThan)
		}
		blue := pg.Conn{DSN: r.BlueDB}.Database()
		if dbName(in) == blue {
			return r, &UsageError{Msg: fmt.Sprintf("the config of %s still names blue's database %s: point [instances.%s] database at green's (%s) and swap the app and app.green slots first, so snapshots copy what DHIS2 now uses", r.Instance, blue, r.Instance, pg.Redact(r.GreenDB))}
		}
		drop = blue
	case StateRolledBack:
		drop = pg.Conn{DSN: r.GreenDB}.Database()
		if drop == dbName(in) {
			return r, &UsageError{Msg: fmt.Sprintf("the config of %s names green's database %s: refusing to drop it", r.Instance, drop)}
		}
	default:
		return r, fmt.Errorf("upgrade %s is %s: finalize needs a done (or rolled back) upgrade", r.ID, r.State)
	}
	if err := dropDB(ctx, adminConn(in), drop); err != nil {
		return r, err
	}
	r.Rollback = append(r.Rollback, "finalized: database "+drop+" dropped")
	r.State = StateFinalized
	if err := putDHIS2(o.Catalog, r); err != nil {
		return r, err
	}
	o.say("upgrade %s finalized: database %s dropped; its app slot is free for the next upgrade", r.ID, drop)
	return r, nil
}

// exportCSV runs a COPY … TO STDOUT into a new 0600 file.
func exportCSV(ctx context.Context, c *pgconn.PgConn, sql, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := c.CopyTo(ctx, f, sql); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
