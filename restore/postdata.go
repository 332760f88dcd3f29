package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// postItem is one entry of the schema archive's post-data section (an index, a constraint,
// a trigger, …) as the SQL `pg_restore -f - --section=post-data` prints for it, or an
// ANALYZE of a loaded table.
type postItem struct {
	name string // the entry's "-- Name:" (e.g. "datavalue datavalue_pkey")
	kind string // its "Type:" (INDEX, CONSTRAINT, FK CONSTRAINT, TRIGGER, …; ANALYZE)
	sql  string
	// table is the table the item builds on ("schema.name", unquoted; "" = not known).
	table string
	// refs are the tables a foreign key references.
	refs []string
	// shared items (index builds) may run beside each other on one table; the others
	// hold their table alone.
	shared bool
	// carry is the session settings sql starts with (printed before the entry).
	carry string
	// weight orders the ready items: the builder takes the heaviest free one first (see
	// weigh).
	weight int64
}

// what names the item in progress output and errors.
func (it *postItem) what() string {
	k := strings.ToLower(it.kind)
	n := it.name
	if i := strings.LastIndexByte(n, ' '); i >= 0 && it.kind != "INDEX" {
		n = n[i+1:]
	}
	if it.table != "" {
		if it.kind == "ANALYZE" {
			return "analyzing table " + it.table
		}
		return fmt.Sprintf("building %s %s on table %s", k, n, it.table)
	}
	return fmt.Sprintf("building %s %s", k, n)
}

var (
	entryHeader = regexp.MustCompile(`(?m)^--\n-- Name: (.*); Type: (.*); Schema: (.*); Owner: (.*)\n--\n`)
	// trailing session settings pg_restore prints before the next entry's header
	trailingSet     = regexp.MustCompile(`(?s)((?:\n(?:SET [^\n]*;|SELECT pg_catalog\.set_config\([^\n]*\);)\n?)+)\s*$`)
	ident           = `(?:"(?:[^"]|"")+"|[^\s.(",;]+)`
	qualified       = ident + `\.` + ident
	indexOn         = regexp.MustCompile(`(?s)^\s*CREATE (?:UNIQUE )?INDEX \S+ ON (?:ONLY )?(` + qualified + `)`)
	alterTable      = regexp.MustCompile(`(?s)^\s*ALTER TABLE (?:ONLY )?(` + qualified + `)\s`)
	attachPartition = regexp.MustCompile(`ATTACH PARTITION ` + ident + `\.(` + ident + `)`)
	psqlMeta        = regexp.MustCompile(`(?m)^\\(?:restrict|unrestrict) \S*\n?`)
	references      = regexp.MustCompile(`REFERENCES (` + qualified + `)`)
)

// parsePostData splits pg_restore's SQL of the post-data section into its preamble (session
// settings) and one item per archive entry, in the archive's (dependency) order. Index and
// constraint entries name the table they build on when their SQL says it.
func parsePostData(script string) (string, []*postItem) {
	// pg_restore ≥ 13.22/14.19/15.14/16.10/17.6 brackets its script with psql's \restrict and
	// \unrestrict, which are not SQL.
	script = psqlMeta.ReplaceAllString(script, "")
	locs := entryHeader.FindAllStringSubmatchIndex(script, -1)
	if len(locs) == 0 {
		return script, nil
	}
	preamble := script[:locs[0][0]]
	var items []*postItem
	carry := "" // settings printed for the next entry
	for i, l := range locs {
		end := len(script)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		body := script[l[1]:end]
		next := ""
		if i+1 < len(locs) {
			if m := trailingSet.FindStringSubmatchIndex(body); m != nil {
				next = body[m[2]:m[3]]
				body = body[:m[2]]
			}
		}
		it := &postItem{name: script[l[2]:l[3]], kind: script[l[4]:l[5]], sql: carry + body, carry: carry}
		carry = next
		switch it.kind {
		case "INDEX":
			if m := indexOn.FindStringSubmatch(body); m != nil {
				it.table, it.shared = unquoteQualified(m[1]), true
			}
		case "CONSTRAINT", "CHECK CONSTRAINT", "FK CONSTRAINT":
			if m := alterTable.FindStringSubmatch(body); m != nil {
				it.table = unquoteQualified(m[1])
			}
			if it.kind == "FK CONSTRAINT" {
				for _, m := range references.FindAllStringSubmatch(body, -1) {
					it.refs = append(it.refs, unquoteQualified(m[1]))
				}
			}
		}
		items = append(items, it)
	}
	return preamble, items
}

// keyConstraint is a primary key or unique constraint in the plain form pg_restore prints
// for it (no INCLUDE, storage options, tablespace, NULLS NOT DISTINCT or DEFERRABLE).
var keyConstraint = regexp.MustCompile(`(?s)^\s*ALTER TABLE ONLY (` + qualified + `)\s+ADD CONSTRAINT (` + ident + `) (PRIMARY KEY|UNIQUE) (\([^()]*\));\s*$`)

// keyAsIndex splits a primary key or unique constraint into the build of its unique index,
// which may run beside the table's other index builds (ADD CONSTRAINT holds the table
// alone), and the ADD CONSTRAINT … USING INDEX that makes it the constraint (a catalogue
// change). What it leaves is what the one statement leaves: the same index and constraint,
// by the same name. Any other item is returned alone; so is a key whose index a partitioned
// table's index attaches (attached names the indexes of INDEX ATTACH entries).
func keyAsIndex(it *postItem, attached map[string]bool) []*postItem {
	if it.kind != "CONSTRAINT" {
		return []*postItem{it}
	}
	sql := strings.TrimPrefix(it.sql, it.carry)
	m := keyConstraint.FindStringSubmatch(sql)
	if m == nil || attached[m[2]] {
		return []*postItem{it}
	}
	table, name, kind, cols := m[1], m[2], m[3], m[4]
	// An index entry's name is the index's alone (a constraint's is "table name").
	iname := it.name
	if i := strings.LastIndexByte(iname, ' '); i >= 0 {
		iname = iname[i+1:]
	}
	build := &postItem{name: iname, kind: "INDEX", table: it.table, shared: true, carry: it.carry,
		sql: it.carry + fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s USING btree %s;\n", name, table, cols)}
	add := &postItem{name: it.name, kind: it.kind, table: it.table, carry: it.carry,
		sql: it.carry + fmt.Sprintf("ALTER TABLE ONLY %s ADD CONSTRAINT %s %s USING INDEX %s;\n", table, name, kind, name)}
	return []*postItem{build, add}
}

// attachedIndexes names the indexes that INDEX ATTACH entries attach (unquoted as
// keyConstraint captures them: the name as written in the SQL, without its schema).
func attachedIndexes(items []*postItem) map[string]bool {
	out := map[string]bool{}
	for _, it := range items {
		if it.kind != "INDEX ATTACH" {
			continue
		}
		if m := attachPartition.FindStringSubmatch(it.sql); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// unquoteQualified turns `public."Name"` into `public.Name`.
func unquoteQualified(q string) string {
	var parts []string
	for q != "" {
		if q[0] == '"' {
			i := 1
			var b strings.Builder
			for i < len(q) {
				if q[i] == '"' {
					if i+1 < len(q) && q[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					break
				}
				b.WriteByte(q[i])
				i++
			}
			parts = append(parts, b.String())
			q = q[min(i+1, len(q)):]
		} else {
			i := strings.IndexByte(q, '.')
			if i < 0 {
				i = len(q)
			}
			parts = append(parts, q[:i])
			q = q[i:]
		}
		q = strings.TrimPrefix(q, ".")
	}
	return strings.Join(parts, ".")
}

// postBuilder runs post-data items on a few connections of its own. Items of one table wait
// for that table's data (loaded); items on other tables run meanwhile. Two items never hold
// one table at once unless both are index builds, and a foreign key holds both its tables,
// so the builds neither wait on each other's locks nor deadlock.
type postBuilder struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	conns  []*pgx.Conn
	wg     sync.WaitGroup
	log    *slog.Logger
	// onFail, when set, hears the first failed build (to stop the data load).
	onFail func(error)

	mu      sync.Mutex
	cond    *sync.Cond
	waiting map[string][]*postItem // items whose table is not loaded yet
	ready   []*postItem
	running int
	held    map[string]int // tables in use: >0 shared holders, -1 held alone
	pending map[string]int // a table's items (indexes, keys, ANALYZE) not yet built
	limit   int            // workers allowed to take items
	done    bool
	err     error
	built   int
}

// newPostBuilder opens n connections prepared with setup and the archive's preamble.
func newPostBuilder(ctx context.Context, conn pg.Conn, setup []string, preamble string, n int) (*postBuilder, error) {
	bctx, cancel := context.WithCancelCause(ctx)
	b := &postBuilder{ctx: bctx, cancel: cancel, waiting: map[string][]*postItem{}, held: map[string]int{}, pending: map[string]int{}, limit: n}
	b.cond = sync.NewCond(&b.mu)
	for i := 0; i < n; i++ {
		c, err := conn.Connect(bctx)
		if err == nil {
			preambleSettings(bctx, c, preamble)
			for _, s := range setup {
				if err == nil {
					_, err = c.Exec(bctx, s)
				}
			}
			if err != nil {
				c.Close(context.Background())
			}
		}
		if err != nil {
			b.close()
			return nil, fmt.Errorf("preparing index builds: %w", err)
		}
		b.conns = append(b.conns, c)
	}
	for i, c := range b.conns {
		b.wg.Add(1)
		go b.work(i, c)
	}
	return b, nil
}

// preambleSettings applies the session settings pg_restore prints before the entries, one
// at a time: a setting this server does not know (a newer pg_restore's) is left out.
func preambleSettings(ctx context.Context, c *pgx.Conn, preamble string) {
	for _, l := range strings.Split(preamble, "\n") {
		if strings.HasPrefix(l, "SET ") || strings.HasPrefix(l, "SELECT pg_catalog.set_config(") {
			_ = execScript(ctx, c, l)
		}
	}
}

// execScript runs several statements in one simple-protocol round trip.
func execScript(ctx context.Context, c *pgx.Conn, sql string) error {
	_, err := c.PgConn().Exec(ctx, sql).ReadAll()
	return err
}

// wait registers items that run once their table is loaded.
func (b *postBuilder) wait(table string, items ...*postItem) {
	b.mu.Lock()
	b.waiting[table] = append(b.waiting[table], items...)
	b.pending[table] += len(items)
	b.mu.Unlock()
}

// loaded releases the items of a table whose data is complete.
func (b *postBuilder) loaded(table string) {
	b.mu.Lock()
	b.ready = append(b.ready, b.waiting[table]...)
	delete(b.waiting, table)
	b.mu.Unlock()
	b.cond.Broadcast()
}

// add queues items that can run now.
func (b *postBuilder) add(items ...*postItem) {
	b.mu.Lock()
	b.ready = append(b.ready, items...)
	b.mu.Unlock()
	b.cond.Broadcast()
}

// setLimit lets n workers take items (fewer while the data load needs the CPU).
func (b *postBuilder) setLimit(n int) {
	b.mu.Lock()
	b.limit = n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// drain waits until every queued item has run (items still waiting for a table that was
// never loaded stay waiting), and returns the first failure.
func (b *postBuilder) drain() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && (len(b.ready) > 0 || b.running > 0) {
		b.cond.Wait()
	}
	return b.err
}

// unloaded returns and forgets the items of tables that were never loaded.
func (b *postBuilder) unloaded() []*postItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*postItem
	for _, items := range b.waiting {
		out = append(out, items...)
	}
	b.waiting = map[string][]*postItem{}
	return out
}

func (b *postBuilder) tables(it *postItem) []string {
	if it.table == "" {
		return nil
	}
	return append([]string{it.table}, it.refs...)
}

// pick takes the heaviest ready item whose tables are free, the first of equal weight (under
// b.mu); a foreign key also waits until its tables' keys and indexes are all built.
func (b *postBuilder) pick() *postItem {
	best := -1
	for i, it := range b.ready {
		if best >= 0 && it.weight <= b.ready[best].weight {
			continue
		}
		ok := true
		for _, t := range b.tables(it) {
			if h := b.held[t]; h < 0 || (h > 0 && !(it.shared && t == it.table)) || (it.kind == "FK CONSTRAINT" && b.pending[t] > 0) {
				ok = false
				break
			}
		}
		if ok {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	it := b.ready[best]
	b.ready = append(b.ready[:best], b.ready[best+1:]...)
	for _, t := range b.tables(it) {
		if it.shared && t == it.table {
			b.held[t]++
		} else {
			b.held[t] = -1
		}
	}
	return it
}

// weigh gives each item the stream bytes of the work that waits on it, so that the builder
// starts the longest chain first (size: a table's bytes in the stream). A table's foreign keys
// run one after the other (each scans the table, and two cannot hold it at once), and only
// once the keys and indexes of every table they name are built. So a table's builds hold back
// its own size plus the size of every foreign key that names it: a small referenced table's
// primary key (period, organisationunit: milliseconds) goes before a mid-size table's
// indexes, and datavalue's chain of foreign-key scans starts as soon as datavalue's own
// indexes are built, beside the other builds, instead of after all of them with the other
// connection idle. Equal weights keep the archive's order.
func weigh(items []*postItem, size map[string]int64) {
	gate := map[string]int64{} // foreign-key work that waits on each table's builds
	for _, it := range items {
		if it.kind != "FK CONSTRAINT" || it.table == "" {
			continue
		}
		gate[it.table] += size[it.table]
		for _, r := range it.refs {
			if r != it.table {
				gate[r] += size[it.table]
			}
		}
	}
	for _, it := range items {
		if it.table != "" {
			it.weight = size[it.table] + gate[it.table]
		}
	}
}

func (b *postBuilder) work(i int, c *pgx.Conn) {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		var it *postItem
		for !b.done && b.err == nil {
			if i < b.limit {
				if it = b.pick(); it != nil {
					break
				}
			}
			b.cond.Wait()
		}
		if it == nil {
			b.mu.Unlock()
			return
		}
		b.running++
		b.mu.Unlock()

		start := time.Now()
		err := execScript(b.ctx, c, it.sql)
		if b.log != nil && err == nil {
			b.log.Debug("built", "what", it.what(), "seconds", time.Since(start).Seconds(), "worker", i)
		}

		b.mu.Lock()
		b.running--
		if it.kind != "FK CONSTRAINT" && it.table != "" {
			b.pending[it.table]--
		}
		for _, t := range b.tables(it) {
			if b.held[t] > 0 {
				b.held[t]--
			} else {
				b.held[t] = 0
			}
		}
		if err != nil && b.err == nil {
			if cause := context.Cause(b.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			} else {
				err = fmt.Errorf("%s: %w%s", it.what(), err, diskHint(err.Error()))
			}
			b.err = err
			b.cancel(err)
			if b.onFail != nil {
				b.onFail(err)
			}
		}
		if err == nil {
			b.built++
		}
		b.mu.Unlock()
		b.cond.Broadcast()
	}
}

// fail stops the builder with err (the data load failed).
func (b *postBuilder) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	b.cancel(err)
	b.cond.Broadcast()
}

// close stops the workers and closes the connections.
func (b *postBuilder) close() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
	b.cancel(context.Canceled)
	b.cond.Broadcast()
	b.wg.Wait()
	for _, c := range b.conns {
		c.Close(context.Background())
	}
}

// runInOrder runs items one after the other on the first connection (the builder must be
// drained: no worker holds a connection).
func (b *postBuilder) runInOrder(items []*postItem) error {
	if len(items) == 0 {
		return nil
	}
	sql := make([]string, 0, len(items))
	for _, it := range items {
		sql = append(sql, it.sql)
	}
	// One round trip for all of them; on failure, again one by one to name the entry.
	if err := execScript(b.ctx, b.conns[0], "BEGIN;\n"+strings.Join(sql, "\n")+"\nCOMMIT;"); err == nil {
		b.built += len(items)
		return nil
	}
	_ = execScript(b.ctx, b.conns[0], "ROLLBACK")
	for _, it := range items {
		if err := execScript(b.ctx, b.conns[0], it.sql); err != nil {
			return fmt.Errorf("%s: %w%s", it.what(), err, diskHint(err.Error()))
		}
		b.built++
	}
	return nil
}
