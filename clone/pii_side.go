package clone

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// sideConnector returns how to open a second connection like conn: same server, database and
// user, and the same role when conn has SET ROLE to the owner.
func sideConnector(ctx context.Context, conn *pgx.Conn) (func(context.Context) (*pgx.Conn, error), error) {
	var role, session string
	if err := conn.QueryRow(ctx, `SELECT current_user, session_user`).Scan(&role, &session); err != nil {
		return nil, fmt.Errorf("reading the role of the restore's connection: %w", err)
	}
	cfg := conn.Config()
	return func(ctx context.Context) (*pgx.Conn, error) {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if role != session {
			if _, err := c.Exec(ctx, "SET ROLE "+pg.QuoteIdent(role)); err != nil {
				c.Close(context.WithoutCancel(ctx))
				return nil, err
			}
		}
		return c, nil
	}, nil
}

// sideRun is the rewrite of the large username-only tables on a second connection.
type sideRun struct {
	cancel       context.CancelFunc
	done         chan struct{}
	users, texts int64 // rows with a mapped username, with a replaced text
	err          error
}

// wait waits for the side rewrite and returns the rows whose username it mapped, whose text it
// replaced, and its error (0, 0 and nil when none ran).
func (s *sideRun) wait() (users, texts int64, err error) {
	if s == nil || s.done == nil {
		return 0, 0, nil
	}
	<-s.done
	return s.users, s.texts, s.err
}

// stop cancels the side rewrite (when the run failed) and waits for it.
func (s *sideRun) stop() {
	if s == nil || s.done == nil {
		return
	}
	s.cancel()
	<-s.done
}

// ruleTables are the tables the rules name (events, attributes, audits, contacts, files,
// users, and with freeText those of free text).
func ruleTables(freeText bool) map[string]bool {
	t := map[string]bool{"userinfo": true, "fileresource": true}
	for _, x := range dhis2.EventTables {
		t[x] = true
	}
	for _, x := range dhis2.AttrValueTables {
		t[x.Table] = true
	}
	for _, x := range dhis2.DataValueHistoryTables {
		t[x.Table] = true
	}
	for _, c := range dhis2.ContactColumns {
		t[c.Table] = true
	}
	for _, c := range dhis2.FreeTextColumns {
		if freeText {
			t[c.Table] = true
		}
	}
	return t
}

// releaseUntouched releases at once the tables the run never writes: neither named by a rule
// nor holding a username text, user jsonb or mention jsonb column (the columns userColumns
// maps). Their indexes are built meanwhile. A table the run's transaction has already read
// (trackedentityattribute and dataelement, for the fields) stays held until the commit: its
// primary key needs an ACCESS EXCLUSIVE lock that would wait for the whole run, and keep a
// build worker waiting with it.
func (r *piiRun) releaseUntouched() error {
	if r.release == nil {
		return nil
	}
	rules := ruleTables(true)
	var names, held []string
	for t := range r.cat.cols {
		if rules[t] {
			continue
		}
		if spec, mentions := r.userSpec(t); mentions || len(spec.users)+len(spec.jsons) > 0 {
			continue
		}
		if r.locked[t] {
			held = append(held, t)
			continue
		}
		names = append(names, t)
	}
	sort.Strings(names)
	sort.Strings(held)
	for _, t := range names {
		r.release("public." + t)
	}
	r.s.log().Debug("PII released the tables it does not write", "tables", len(names), "held_until_commit", held)
	return nil
}

// sideTables are the tables of sideRows rows or more whose only personal data are usernames
// (text and user jsonb columns) and free text, and that no other step writes (not the tables
// of events, attributes, audits, contacts, files or users): datavalue (storedby, comment),
// trackedentity and enrollment.
func (r *piiRun) sideTables() map[string]rewriteSpec {
	touched := ruleTables(false) // free text: replaced in the rewrite
	text := map[string][]string{}
	for _, c := range dhis2.FreeTextColumns {
		if r.cat.isText(c.Table, c.Col) {
			text[c.Table] = append(text[c.Table], c.Col)
		}
	}
	out := map[string]rewriteSpec{}
	for t := range r.mid {
		if touched[t] {
			continue
		}
		if spec, mentions := r.userSpec(t); !mentions && len(spec.users)+len(spec.jsons) > 0 {
			spec.texts = text[t]
			out[t] = spec
		}
	}
	return out
}

// beforePostData sets seconds when the rules may use second connections: the run has them
// and the database has no trigger and no foreign key yet (during a restore, before post-data),
// so that no lock of one connection waits for another.
func (r *piiRun) beforePostData(ctx context.Context, noTriggers bool) error {
	if r.side == nil || !noTriggers {
		return nil
	}
	var fks int
	if err := r.tx.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`).Scan(&fks); err != nil {
		return fmt.Errorf("counting foreign keys: %w", err)
	}
	r.seconds = fks == 0
	return nil
}

// planSide decides which tables the second connection rewrites (r.onSide, from sideTables,
// less those the run's transaction has read: the rewrite would wait for its commit). It runs
// before usernames, which then leaves those tables unread: the run's transaction must hold no
// lock on a table the second connection rewrites, and their usernames unknown to userinfo get
// the same formula there.
func (r *piiRun) planSide() {
	if !r.seconds || !r.s.PII.Users {
		return
	}
	r.onSide = r.sideTables()
	for t := range r.onSide {
		if r.locked[t] {
			delete(r.onSide, t)
		}
	}
}

// lockedTables are the public tables the run's transaction holds a lock on.
func (r *piiRun) lockedTables(ctx context.Context) (map[string]bool, error) {
	rows, err := r.tx.Query(ctx, `SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relnamespace = 'public'::regnamespace`)
	if err != nil {
		return nil, fmt.Errorf("listing the tables the scrub has read: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing the tables the scrub has read: %w", err)
	}
	out := map[string]bool{}
	for _, t := range names {
		out[t] = true
	}
	return out, nil
}

// startSide starts the rewrite of the tables planSide chose on a second connection, in a
// transaction of its own.
func (r *piiRun) startSide(ctx context.Context) (*sideRun, error) {
	tables := r.onSide
	if len(tables) == 0 {
		return nil, nil
	}
	maps, err := r.userMaps(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
		r.usersDone[t] = true
	}
	sort.Strings(names)
	s := &sideRun{}
	kept, salt, log := r.s.PII.kept(), r.salt, r.s.log()
	s.cancel, s.done = r.goSide(ctx, "pii.usernames", &s.err, func(sctx context.Context, tx pgx.Tx) error {
		for _, t := range names {
			u, x, err := rewriteTableTx(sctx, tx, log, maps, kept, salt, t, tables[t])
			if err != nil {
				return fmt.Errorf("scrub rule pii.usernames: %w", err)
			}
			s.users += u
			s.texts += x
		}
		if err := tx.Commit(sctx); err != nil {
			return fmt.Errorf("scrub rule pii.usernames: committing the rewrite of %v: %w", names, err)
		}
		if r.release != nil {
			for _, t := range names {
				r.release("public." + t)
			}
		}
		return nil
	})
	log.Debug("PII side rewrite started", "tables", names)
	return s, nil
}

// eventSide is the rewrite of the large event tables' data values and usernames on a second
// connection (startEventSide).
type eventSide struct {
	stmts  []string // the events rule's statements for those tables (events)
	args   []any    // their one parameter: the uids of the mapped data elements
	cancel context.CancelFunc
	done   chan struct{}
	rows   int64
	err    error
}

// startEventSide starts the events rule's statements for the large event tables on a second
// connection, which gets its own copy of the pseudonym tables (vals: production value,
// pseudonym) and of the username map, and commits on its own: like the side rewrite, it runs
// only during a restore (no foreign key, no trigger), where a failed run drops the database.
// The statements of the small event tables run in this transaction. It returns nil when the
// rule runs here as before (no second connection, triggers, or no large event table).
func (r *piiRun) startEventSide(ctx context.Context, f *piiFields, vals [][]any) (*eventSide, error) {
	if !r.seconds {
		return nil, nil
	}
	large := false
	for _, t := range dhis2.EventTables {
		large = large || (r.big[t] && r.cat.has(t, "eventdatavalues"))
	}
	if !large {
		return nil, nil
	}
	rows, err := r.tx.Query(ctx, `SELECT v, p, surname FROM dhis2life_users`)
	if err != nil {
		return nil, fmt.Errorf("reading the username map: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]any, error) {
		var v, p string
		var sn *string
		err := row.Scan(&v, &p, &sn)
		return []any{v, p, sn}, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the username map: %w", err)
	}
	es := &eventSide{}
	r.eventSide = es
	err = r.events(ctx, f) // the small tables' statements run here; the large ones' are kept
	r.eventSide = nil
	if err != nil {
		return nil, err
	}
	if len(es.stmts) == 0 {
		return es, nil // nothing left for a second connection; done is nil: wait and stop return at once
	}
	log := r.s.log()
	es.cancel, es.done = r.goSide(ctx, "pii.events", &es.err, func(sctx context.Context, tx pgx.Tx) error {
		t0 := time.Now()
		if _, err := tx.Exec(sctx, pseudonymTables); err != nil {
			return fmt.Errorf("scrub rule pii.events: creating the pseudonym tables: %w", err)
		}
		if _, err := tx.Conn().CopyFrom(sctx, pgx.Identifier{"dhis2life_pii"}, []string{"v", "p"}, pgx.CopyFromRows(vals)); err != nil {
			return fmt.Errorf("scrub rule pii.events: loading pseudonyms: %w", err)
		}
		if _, err := tx.Conn().CopyFrom(sctx, pgx.Identifier{"dhis2life_users"}, []string{"v", "p", "surname"}, pgx.CopyFromRows(users)); err != nil {
			return fmt.Errorf("scrub rule pii.events: loading the username map: %w", err)
		}
		if _, err := tx.Exec(sctx, "ANALYZE dhis2life_pii; ANALYZE dhis2life_users"); err != nil {
			return fmt.Errorf("scrub rule pii.events: %w", err)
		}
		log.Debug("PII event side ready", "values", len(vals), "users", len(users), "took", time.Since(t0).Round(time.Millisecond))
		for _, q := range es.stmts {
			t1 := time.Now()
			tag, err := tx.Exec(sctx, q, es.args...)
			if err != nil {
				return fmt.Errorf("scrub rule pii.events: %w", err)
			}
			es.rows += tag.RowsAffected()
			log.Debug("PII statement", "rule", "pii.events", "side", true, "rows", tag.RowsAffected(), "took", time.Since(t1).Round(time.Millisecond), "sql", shortSQL(q))
		}
		if err := tx.Commit(sctx); err != nil {
			return fmt.Errorf("scrub rule pii.events: committing: %w", err)
		}
		return nil
	})
	log.Debug("PII event side started", "statements", len(es.stmts))
	return es, nil
}

// wait waits for the events' side rewrite and adds its rows to the run's changes.
func (es *eventSide) wait(r *piiRun) error {
	if es == nil || es.done == nil {
		return nil
	}
	<-es.done
	if es.err != nil {
		return es.err
	}
	r.addRows("pii.events", "", es.rows)
	return nil
}

// stop cancels the events' side rewrite (when the run failed) and waits for it.
func (es *eventSide) stop() {
	if es == nil || es.done == nil {
		return
	}
	es.cancel()
	<-es.done
}

// goSide runs body in a goroutine, in a transaction of its own (no statement time limit) on a
// second connection; done closes when it ended, with its error in *errp; cancel stops it.
func (r *piiRun) goSide(ctx context.Context, rule string, errp *error, body func(ctx context.Context, tx pgx.Tx) error) (cancel context.CancelFunc, done chan struct{}) {
	sctx, cancel := context.WithCancel(ctx)
	done = make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		*errp = func() error {
			c, err := r.side(sctx)
			if err != nil {
				return fmt.Errorf("scrub rule %s: opening a second connection: %w", rule, err)
			}
			defer c.Close(context.WithoutCancel(sctx))
			tx, err := beginUnlimited(sctx, c)
			if err != nil {
				return fmt.Errorf("scrub rule %s: %w", rule, err)
			}
			defer tx.Rollback(context.WithoutCancel(sctx))
			return body(sctx, tx)
		}()
	}()
	return cancel, done
}
