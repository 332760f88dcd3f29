package clone

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// PIIOptions configure the pseudonymisation of personal data in a clone.
type PIIOptions struct {
	// Mode is PIIPseudonymise or PIIKeep.
	Mode string
	// KeepUIDs are attributes/data elements left as they are; ExtraUIDs are pseudonymised
	// whatever their value type.
	KeepUIDs, ExtraUIDs []string
	// Users maps the usernames copied into data to the anonymised ones (training profile).
	Users bool
	// KeepAccounts are the usernames that stay (training keep_accounts).
	KeepAccounts []string
	// values are the personal values CollectPII read from the database before the scrub (nil:
	// Apply reads them).
	values map[string]bool
	// BigRows is the table size from which username columns are mapped by a table rewrite and
	// the scan reads distinct values (0: 200 000 rows).
	BigRows int64
}

// PIIFor returns the PII options of a target: pii defaults to pseudonymise for training and
// keep for staging.
func PIIFor(t *config.Target) PIIOptions {
	mode := t.PII
	if mode == "" {
		mode = PIIKeep
		if t.Profile == "training" {
			mode = PIIPseudonymise
		}
	}
	o := PIIOptions{Mode: mode, KeepUIDs: t.PIIKeepAttributes, ExtraUIDs: t.PIIExtraAttributes, Users: t.Profile == "training"}
	if o.Users {
		o.KeepAccounts = t.KeepAccounts
	}
	return o
}

// On reports whether personal data is pseudonymised.
func (o PIIOptions) On() bool { return o.Mode == PIIPseudonymise }

func (o PIIOptions) kept() []string {
	if o.KeepAccounts == nil {
		return []string{}
	}
	return o.KeepAccounts
}

// piiCatalog is what the PII rules need to know about a database's tables.
type piiCatalog struct {
	cols map[string]map[string]string // table → column → type name (text, varchar, jsonb, …)
}

func loadPIICatalog(ctx context.Context, q pg.Querier) (*piiCatalog, error) {
	rows, err := q.Query(ctx, `SELECT c.relname, a.attname, t.typname FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
		AND a.attgenerated = ''`)
	if err != nil {
		return nil, fmt.Errorf("reading the table catalogue: %w", err)
	}
	defer rows.Close()
	c := &piiCatalog{cols: map[string]map[string]string{}}
	for rows.Next() {
		var t, col, typ string
		if err := rows.Scan(&t, &col, &typ); err != nil {
			return nil, err
		}
		if c.cols[t] == nil {
			c.cols[t] = map[string]string{}
		}
		c.cols[t][col] = typ
	}
	return c, rows.Err()
}

func (c *piiCatalog) has(t, col string) bool { _, ok := c.cols[t][col]; return ok }

func (c *piiCatalog) isText(t, col string) bool {
	switch c.cols[t][col] {
	case "text", "varchar", "bpchar":
		return true
	}
	return false
}

func (c *piiCatalog) firstCol(t string, names []string) string {
	for _, n := range names {
		if c.has(t, n) {
			return n
		}
	}
	return ""
}

// piiField is a tracked entity attribute or tracker data element.
type piiField struct {
	id                int64
	uid, vt, name     string
	optionSet, unique bool
}

// piiFields are the attributes and data elements the rules act on.
type piiFields struct {
	mapAttrs, dateAttrs, soughtAttrs []int64
	mapDEs, soughtDEs                []int64
	mapDEUIDs, soughtDEUIDs          []string
}

var nameLike = regexp.MustCompile(dhis2.PIINameLike)

func selectPIIFields(ctx context.Context, q pg.Querier, cat *piiCatalog, o PIIOptions) (*piiFields, error) {
	keep, extra := map[string]bool{}, map[string]bool{}
	for _, u := range o.KeepUIDs {
		keep[u] = true
	}
	for _, u := range o.ExtraUIDs {
		extra[u] = true
	}
	read := func(sql string) ([]piiField, error) {
		rows, err := q.Query(ctx, sql)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (piiField, error) {
			var f piiField
			err := r.Scan(&f.id, &f.uid, &f.vt, &f.name, &f.optionSet, &f.unique)
			return f, err
		})
	}
	f := &piiFields{}
	mapped := func(x piiField) bool {
		return !keep[x.uid] && (extra[x.uid] || (dhis2.PIIValueTypes[x.vt] && !x.optionSet))
	}
	sought := func(x piiField) bool {
		return mapped(x) && (dhis2.PIISoughtTypes[x.vt] || x.unique || extra[x.uid] || nameLike.MatchString(x.name))
	}
	if cat.cols["trackedentityattribute"] != nil {
		uniq := "false"
		if cat.has("trackedentityattribute", "uniquefield") {
			uniq = "coalesce(uniquefield, false)"
		}
		attrs, err := read(`SELECT trackedentityattributeid, uid, valuetype, coalesce(name, '') || ' ' || coalesce(code, ''), optionsetid IS NOT NULL, ` + uniq + ` FROM trackedentityattribute`)
		if err != nil {
			return nil, fmt.Errorf("reading tracked entity attributes: %w", err)
		}
		for _, a := range attrs {
			switch {
			case dhis2.PIIDateTypes[a.vt] && !keep[a.uid] && !a.optionSet:
				f.dateAttrs = append(f.dateAttrs, a.id)
			case mapped(a):
				f.mapAttrs = append(f.mapAttrs, a.id)
				if sought(a) {
					f.soughtAttrs = append(f.soughtAttrs, a.id)
				}
			}
		}
	}
	if cat.cols["dataelement"] != nil {
		os := "false"
		if cat.has("dataelement", "optionsetid") {
			os = "optionsetid IS NOT NULL"
		}
		des, err := read(`SELECT dataelementid, uid, valuetype, coalesce(name, '') || ' ' || coalesce(code, ''), ` + os + `, false FROM dataelement WHERE domaintype = 'TRACKER'`)
		if err != nil {
			return nil, fmt.Errorf("reading data elements: %w", err)
		}
		for _, d := range des {
			if mapped(d) {
				f.mapDEs, f.mapDEUIDs = append(f.mapDEs, d.id), append(f.mapDEUIDs, d.uid)
				if sought(d) {
					f.soughtDEs, f.soughtDEUIDs = append(f.soughtDEs, d.id), append(f.soughtDEUIDs, d.uid)
				}
			}
		}
	}
	for _, p := range []*[]int64{&f.mapAttrs, &f.dateAttrs, &f.soughtAttrs, &f.mapDEs, &f.soughtDEs} {
		if *p == nil {
			*p = []int64{}
		}
	}
	for _, p := range []*[]string{&f.mapDEUIDs, &f.soughtDEUIDs} {
		if *p == nil {
			*p = []string{}
		}
	}
	return f, nil
}

// distinctValues returns the distinct values of the rules' sources (attribute values and
// history, event data values and history, contact columns), each with whether the scan seeks
// it.
func distinctValues(ctx context.Context, q pg.Querier, cat *piiCatalog, f *piiFields) (map[string]bool, error) {
	var parts []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if len(f.mapAttrs) > 0 {
		a, sa := arg(f.mapAttrs), arg(f.soughtAttrs)
		for _, t := range dhis2.AttrValueTables {
			for _, c := range t.Cols {
				if cat.has(t.Table, c) && cat.has(t.Table, "trackedentityattributeid") {
					parts = append(parts, fmt.Sprintf("SELECT %s::text, trackedentityattributeid = ANY(%s) FROM %s WHERE trackedentityattributeid = ANY(%s)",
						pg.QuoteIdent(c), sa, pg.QuoteIdent(t.Table), a))
				}
			}
		}
	}
	if len(f.mapDEs) > 0 {
		d, sd, u, su := arg(f.mapDEs), arg(f.soughtDEs), arg(f.mapDEUIDs), arg(f.soughtDEUIDs)
		for _, t := range dhis2.DataValueHistoryTables {
			for _, c := range t.Cols {
				if cat.has(t.Table, c) && cat.has(t.Table, "dataelementid") {
					parts = append(parts, fmt.Sprintf("SELECT %s::text, dataelementid = ANY(%s) FROM %s WHERE dataelementid = ANY(%s)",
						pg.QuoteIdent(c), sd, pg.QuoteIdent(t.Table), d))
				}
			}
		}
		for _, t := range dhis2.EventTables {
			if cat.has(t, "eventdatavalues") {
				parts = append(parts, fmt.Sprintf("SELECT kv.value->>'value', kv.key = ANY(%s) FROM %s e, jsonb_each(e.eventdatavalues) kv WHERE kv.key = ANY(%s)", su, pg.QuoteIdent(t), u))
			}
		}
	}
	for _, c := range dhis2.ContactColumns {
		if cat.isText(c.Table, c.Col) {
			parts = append(parts, fmt.Sprintf("SELECT %s::text, true FROM %s", pg.QuoteIdent(c.Col), pg.QuoteIdent(c.Table)))
		}
	}
	out := map[string]bool{}
	if len(parts) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, "SELECT v, bool_or(s) FROM ("+strings.Join(parts, " UNION ALL ")+") x(v, s) WHERE v IS NOT NULL AND v <> '' GROUP BY v", args...)
	if err != nil {
		return nil, fmt.Errorf("reading personal values: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		var sought bool
		if err := rows.Scan(&v, &sought); err != nil {
			return nil, err
		}
		out[v] = sought
	}
	return out, rows.Err()
}

// pseudonymiser maps production values to pseudonyms with a keyed hash (HMAC-SHA256 with a
// random key per clone, never stored).
type pseudonymiser struct {
	key   []byte
	users map[string]string // production username → anonymised username
	used  map[string]bool   // production values and pseudonyms handed out
	mac   hash.Hash         // HMAC-SHA256 with key, reset for each value
}

func (p *pseudonymiser) stream(v string, round int) []byte {
	if p.mac == nil {
		p.mac = hmac.New(sha256.New, p.key)
	}
	m := p.mac
	m.Reset()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(round))
	m.Write(b[:])
	io.WriteString(m, v)
	return m.Sum(nil)
}

// pseudonym returns a value of the same shape: letters stay letters (same case), digits stay
// digits, everything else stays; emails get the reserved domain example.org, URLs example.org.
func (p *pseudonymiser) pseudonym(v string) string {
	if u, ok := p.users[v]; ok {
		return u
	}
	for round := 0; ; round++ {
		h := p.stream(v, round)
		var out string
		switch {
		case strings.Contains(v, "@") && strings.Contains(v[strings.LastIndex(v, "@"):], "."):
			out = "p" + hex.EncodeToString(h[:6]) + "@example.org"
		case strings.HasPrefix(strings.ToLower(v), "http://") || strings.HasPrefix(strings.ToLower(v), "https://"):
			out = "https://example.org/" + hex.EncodeToString(h[:6])
		default:
			var b strings.Builder
			i := 0
			next := func() byte {
				if i == len(h) {
					h = p.stream(string(h), round+1000)
					i = 0
				}
				i++
				return h[i-1]
			}
			for _, r := range v {
				switch {
				case r >= '0' && r <= '9':
					b.WriteByte('0' + next()%10)
				case unicode.IsUpper(r):
					b.WriteByte('A' + next()%26)
				case unicode.IsLetter(r):
					b.WriteByte('a' + next()%26)
				default:
					b.WriteRune(r)
				}
			}
			out = b.String()
		}
		if !p.used[out] || round > 20 {
			p.used[out] = true
			return out
		}
	}
}

// piiRun is one pseudonymisation inside the scrub transaction.
type piiRun struct {
	s       *Scrubber
	tx      pgx.Tx
	cat     *piiCatalog
	changes *[]Change
	salt    int64
	big     map[string]bool // tables whose username columns are rewritten (tableSizes)
	// mid are the tables of sideRows rows or more (big among them): during a restore, those
	// that only hold usernames and free text are rewritten on the second connection
	// (sideTables).
	mid map[string]bool
	// locked are the tables the run's transaction had read before its rules (lockedTables).
	locked map[string]bool
	// seconds says the second connections may run (beforePostData).
	seconds bool
	// onSide are the tables the second connection rewrites, with their columns (planSide).
	onSide map[string]rewriteSpec
	// side opens a second connection to the database (ApplyPII, during a restore): the large
	// tables that only hold usernames are rewritten on it while the other steps run.
	side func(context.Context) (*pgx.Conn, error)
	// usersDone are the tables whose usernames another step maps (the second connection's
	// rewrite, events): userColumns and freeText leave them.
	usersDone map[string]bool
	umap      userMaps // dhis2life_users as JSON objects (userMaps)
	// release, when set, hears the tables ("public.name") the run is done with (ApplyPII).
	release func(table string)
	// eventSide, when set, takes the statements of events on the large event tables
	// (startEventSide runs them on a second connection).
	eventSide *eventSide
}

// add records the rows changed by a statement under an existing rule.
func (r *piiRun) add(ctx context.Context, rule, what, q string, args ...any) error {
	t0 := time.Now()
	tag, err := r.tx.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("scrub rule %s: %w", rule, err)
	}
	r.s.log().Debug("PII statement", "rule", rule, "rows", tag.RowsAffected(), "took", time.Since(t0).Round(time.Millisecond), "sql", shortSQL(q))
	cs := *r.changes
	if n := len(cs); n > 0 && cs[n-1].Rule == rule {
		cs[n-1].Rows += tag.RowsAffected()
		return nil
	}
	*r.changes = append(cs, Change{Rule: rule, Rows: tag.RowsAffected(), What: what})
	return nil
}

// applyPII pseudonymises personal data in the scrub's transaction (called by Apply before the
// users are anonymised, so usernames can still be mapped).
func (s *Scrubber) applyPII(ctx context.Context, tx pgx.Tx, changes *[]Change, side func(context.Context) (*pgx.Conn, error), release func(string)) error {
	if !s.PII.On() {
		*changes = append(*changes, Change{Rule: "pii", What: "personal data kept (pii = \"keep\")"})
		return nil
	}
	if s.piiDone != nil { // during the restore, before the indexes (ApplyPII)
		*changes = append(*changes, s.piiDone...)
		return nil
	}
	t0 := time.Now()
	cat, err := loadPIICatalog(ctx, tx)
	if err != nil {
		return err
	}
	if cat.cols["trackedentityattributevalue"] != nil {
		var c *string
		if err := tx.QueryRow(ctx, `SELECT obj_description('public.trackedentityattributevalue'::regclass, 'pg_class')`).Scan(&c); err != nil {
			return err
		}
		if c != nil && *c == piiMarker {
			*changes = append(*changes, Change{Rule: "pii", What: "already pseudonymised (copy of a scrubbed template)"})
			return nil
		}
	}
	key := make([]byte, 32)
	if _, err := randRead(key); err != nil {
		return err
	}
	r := &piiRun{s: s, tx: tx, cat: cat, changes: changes, salt: int64(binary.BigEndian.Uint64(key[:8]) >> 1), side: side, usersDone: map[string]bool{}, release: release}
	// The key of the value map is never stored: the salt for dates and unknown usernames is
	// derived from it and only passed as a statement parameter.
	ps := &pseudonymiser{key: key, users: map[string]string{}, used: map[string]bool{}}

	// Triggers (the 2.44 datavalue audit trigger) must not log the scrub's own updates.
	trig, err := tx.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname), quote_ident(t.tgname) FROM pg_trigger t
		JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND n.nspname = 'public'`)
	if err != nil {
		return fmt.Errorf("listing triggers: %w", err)
	}
	triggers, err := pgx.CollectRows(trig, func(row pgx.CollectableRow) ([2]string, error) {
		var a [2]string
		err := row.Scan(&a[0], &a[1])
		return a, err
	})
	if err != nil {
		return fmt.Errorf("listing triggers: %w", err)
	}
	for _, t := range triggers {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+t[0]+" DISABLE TRIGGER "+t[1]); err != nil {
			return fmt.Errorf("disabling trigger %s on %s for the scrub: %w", t[1], t[0], err)
		}
	}

	f, err := selectPIIFields(ctx, tx, cat, s.PII)
	if err != nil {
		return err
	}
	// The tables read so far (the fields' trackedentityattribute and dataelement) stay locked
	// until the commit: neither released early nor given to a second connection.
	if r.locked, err = r.lockedTables(ctx); err != nil {
		return err
	}
	if err := r.releaseUntouched(); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, pseudonymTables); err != nil {
		return fmt.Errorf("creating the pseudonym tables: %w", err)
	}
	if err := r.tableSizes(ctx); err != nil {
		return err
	}
	if err := r.beforePostData(ctx, len(triggers) == 0); err != nil {
		return err
	}
	r.planSide()
	if s.PII.Users {
		if err := r.usernames(ctx, ps); err != nil {
			return err
		}
	}
	r.s.log().Debug("PII usernames mapped", "users", len(ps.users), "took", time.Since(t0).Round(time.Millisecond))
	sr, err := r.startSide(ctx)
	if err != nil {
		return err
	}
	defer sr.stop()
	vals := s.PII.values // read before the scrub by CollectPII, when it ran on this database
	if vals == nil {
		if vals, err = distinctValues(ctx, tx, cat, f); err != nil {
			return err
		}
	}
	for v := range vals {
		ps.used[v] = true
	}
	rows := make([][]any, 0, len(vals))
	for v := range vals {
		rows = append(rows, []any{v, ps.pseudonym(v)})
	}
	r.s.log().Debug("PII pseudonyms made", "values", len(vals), "took", time.Since(t0).Round(time.Millisecond))
	if _, err := tx.Conn().CopyFrom(ctx, pgx.Identifier{"dhis2life_pii"}, []string{"v", "p"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("loading pseudonyms: %w", err)
	}
	if _, err := tx.Exec(ctx, "ANALYZE dhis2life_pii; ANALYZE dhis2life_users"); err != nil {
		return err
	}
	// The events' rewrite is the longest statement: on a second connection, with its own copy
	// of the pseudonym tables, it runs beside the other rules (startEventSide).
	es, err := r.startEventSide(ctx, f, rows)
	if err != nil {
		return err
	}
	defer es.stop()
	steps := []func(context.Context, *piiFields) error{r.attributes, r.dates, r.events, r.history, r.contacts, r.freeText, r.files}
	if es != nil { // started by startEventSide
		steps = []func(context.Context, *piiFields) error{r.attributes, r.dates, r.history, r.contacts, r.freeText, r.files}
	}
	if s.PII.Users {
		steps = append(steps, r.userColumns)
	}
	r.s.log().Debug("PII pseudonyms loaded", "values", len(vals), "users", len(ps.users), "took", time.Since(t0).Round(time.Millisecond))
	for _, st := range steps {
		if err := st(ctx, f); err != nil {
			return err
		}
	}
	if err := es.wait(r); err != nil {
		return err
	}
	users, texts, err := sr.wait()
	if err != nil {
		return err
	}
	r.addRows("pii.usernames", "", users)
	r.addRows("pii.free_text", "", texts)
	for _, t := range triggers {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+t[0]+" ENABLE TRIGGER "+t[1]); err != nil {
			return fmt.Errorf("enabling trigger %s on %s again: %w", t[1], t[0], err)
		}
	}
	if cat.cols["trackedentityattributevalue"] != nil {
		if _, err := tx.Exec(ctx, "COMMENT ON TABLE trackedentityattributevalue IS '"+piiMarker+"'"); err != nil {
			return fmt.Errorf("marking the copy pseudonymised: %w", err)
		}
	}
	return nil
}

// usernames fills dhis2life_users: every production username (userinfo, and any other found
// in username columns) → its anonymised username; kept accounts are left out.
func (r *piiRun) usernames(ctx context.Context, ps *pseudonymiser) error {
	kept := r.s.PII.kept()
	if r.cat.has("userinfo", "username") {
		if _, err := r.tx.Exec(ctx, `INSERT INTO dhis2life_users (v, p, surname) SELECT username, 'anon-' || userinfoid, 'User ' || userinfoid
			FROM userinfo WHERE username IS NOT NULL AND NOT (username = ANY($1))`, kept); err != nil {
			return fmt.Errorf("mapping usernames: %w", err)
		}
	}
	// Large tables and those of the second connection are left out: their username columns
	// are rewritten with the same formula for usernames unknown to userinfo (rewriteTableTx),
	// so reading them twice is spared (and this transaction holds no lock on the latter).
	for t, cols := range r.cat.cols {
		if _, side := r.onSide[t]; t == "userinfo" || r.big[t] || side {
			continue
		}
		var vals []string
		for c := range cols {
			if dhis2.UsernameColumns[c] && r.cat.isText(t, c) {
				vals = append(vals, "("+pg.QuoteIdent(c)+"::text)")
			}
		}
		if len(vals) == 0 {
			continue
		}
		sort.Strings(vals)
		if _, err := r.tx.Exec(ctx, fmt.Sprintf(`INSERT INTO dhis2life_users (v, p) SELECT d.v, 'anon-' || substr(md5($2::bigint::text || d.v), 1, 10)
			FROM (SELECT DISTINCT x.v FROM %s t, LATERAL (VALUES %s) x(v)) d WHERE d.v IS NOT NULL AND d.v <> '' AND NOT (d.v = ANY($1)) ON CONFLICT DO NOTHING`,
			pg.QuoteIdent(t), strings.Join(vals, ", ")), kept, r.salt); err != nil {
			return fmt.Errorf("mapping usernames of %s: %w", t, err)
		}
	}
	rows, err := r.tx.Query(ctx, `SELECT v, p FROM dhis2life_users`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v, p string
		if err := rows.Scan(&v, &p); err != nil {
			return err
		}
		ps.users[v] = p
		ps.used[p] = true
	}
	return rows.Err()
}

func (r *piiRun) attributes(ctx context.Context, f *piiFields) error {
	const rule, what = "pii.attributes", "tracked entity attribute values of free-text and identifying types pseudonymised (history included)"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	for _, t := range dhis2.AttrValueTables {
		for _, c := range t.Cols {
			if !r.cat.has(t.Table, c) || !r.cat.has(t.Table, "trackedentityattributeid") {
				continue
			}
			if err := r.add(ctx, rule, what, fmt.Sprintf(`UPDATE %[1]s x SET %[2]s = m.p FROM dhis2life_pii m
				WHERE x.%[2]s = m.v AND x.trackedentityattributeid = ANY($1)`, pg.QuoteIdent(t.Table), pg.QuoteIdent(c)), f.mapAttrs); err != nil {
				return err
			}
		}
		if r.cat.has(t.Table, "encryptedvalue") && r.cat.has(t.Table, "trackedentityattributeid") {
			all := append(append([]int64{}, f.mapAttrs...), f.dateAttrs...)
			if err := r.add(ctx, rule, what, fmt.Sprintf(`UPDATE %s SET encryptedvalue = NULL WHERE encryptedvalue IS NOT NULL AND trackedentityattributeid = ANY($1)`,
				pg.QuoteIdent(t.Table)), all); err != nil {
				return err
			}
		}
	}
	return nil
}

// dates moves date attribute values by a per-person offset of 1 to 30 days that keeps the
// year (and so the age band).
func (r *piiRun) dates(ctx context.Context, f *piiFields) error {
	const rule, what = "pii.dates", "date attribute values (dates of birth) moved by a per-person offset within the same year"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	if len(f.dateAttrs) == 0 {
		return nil
	}
	if _, err := r.tx.Exec(ctx, `CREATE FUNCTION pg_temp.dhis2life_shift(v text, person bigint, salt bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE d date; n int;
BEGIN
  IF v IS NULL OR v !~ '^\d{4}-\d{2}-\d{2}' THEN RETURN v; END IF;
  BEGIN d := substr(v, 1, 10)::date; EXCEPTION WHEN others THEN RETURN v; END;
  n := (hashtextextended(person::text, salt) & 2147483647) % 30 + 1;
  IF extract(year FROM d + n) <> extract(year FROM d) THEN n := -n; END IF;
  RETURN to_char(d + n, 'YYYY-MM-DD') || substr(v, 11);
END $f$`); err != nil {
		return fmt.Errorf("scrub rule %s: %w", rule, err)
	}
	for _, t := range dhis2.AttrValueTables {
		te := r.cat.firstCol(t.Table, dhis2.TEIDColumns)
		if te == "" || !r.cat.has(t.Table, "trackedentityattributeid") {
			continue
		}
		for _, c := range t.Cols {
			if !r.cat.has(t.Table, c) {
				continue
			}
			q := fmt.Sprintf(`UPDATE %[1]s SET %[2]s = pg_temp.dhis2life_shift(%[2]s, %[3]s, $2) WHERE trackedentityattributeid = ANY($1) AND %[2]s IS NOT NULL`,
				pg.QuoteIdent(t.Table), pg.QuoteIdent(c), pg.QuoteIdent(te))
			if err := r.add(ctx, rule, what, q, f.dateAttrs, r.salt); err != nil {
				return err
			}
		}
	}
	return nil
}

// events pseudonymises the values of free-text data elements in eventdatavalues and maps
// their storedBy usernames; numeric and option-set values stay.
func (r *piiRun) events(ctx context.Context, f *piiFields) error {
	const rule, what = "pii.events", "event data values of free-text and identifying data elements pseudonymised, storedBy mapped (training: the events' username columns too)"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	for _, t := range dhis2.EventTables {
		id := r.cat.firstCol(t, []string{"eventid", "programstageinstanceid"})
		if !r.cat.has(t, "eventdatavalues") || id == "" {
			continue
		}
		// Training: the event's username columns are mapped in the same pass (an UPDATE of
		// every event, not one for the values and a rewrite for the usernames).
		var set, conds []string
		if r.s.PII.Users {
			maps, err := r.userMaps(ctx)
			if err != nil {
				return fmt.Errorf("scrub rule %s: %w", rule, err)
			}
			x := newUserExprs(maps, r.s.PII.kept(), r.salt)
			spec, _ := r.userSpec(t)
			for _, c := range spec.users {
				q := pg.QuoteIdent(c)
				set = append(set, fmt.Sprintf("%s = %s", q, x.mapped("ev."+q)))
				conds = append(conds, x.userCond("ev."+q))
			}
			for _, c := range spec.jsons {
				q := pg.QuoteIdent(c)
				set = append(set, fmt.Sprintf("%s = %s", q, x.jsonMapped("ev."+q)))
				conds = append(conds, x.jsonCond("ev."+q))
			}
		}
		value := `CASE WHEN jsonb_typeof(kv.value) = 'object' THEN kv.value
				|| CASE WHEN m.p IS NOT NULL THEN jsonb_build_object('value', m.p) ELSE '{}'::jsonb END
				|| CASE WHEN u.p IS NOT NULL THEN jsonb_build_object('storedBy', u.p) ELSE '{}'::jsonb END ELSE kv.value END`
		var q string
		if len(set) == 0 {
			q = fmt.Sprintf(`UPDATE %[1]s ev SET eventdatavalues = x.j FROM (
			SELECT e.%[2]s AS id, jsonb_object_agg(kv.key, %[3]s) AS j
			FROM %[1]s e CROSS JOIN LATERAL jsonb_each(e.eventdatavalues) kv
			LEFT JOIN dhis2life_pii m ON kv.key = ANY($1) AND m.v = kv.value->>'value'
			LEFT JOIN dhis2life_users u ON u.v = kv.value->>'storedBy'
			WHERE e.eventdatavalues <> '{}'::jsonb AND jsonb_typeof(e.eventdatavalues) = 'object'
			GROUP BY e.%[2]s) x
		WHERE ev.%[2]s = x.id AND ev.eventdatavalues IS DISTINCT FROM x.j`, pg.QuoteIdent(t), pg.QuoteIdent(id), value)
		} else {
			q = fmt.Sprintf(`UPDATE %[1]s ev SET eventdatavalues = coalesce(x.j, ev.eventdatavalues), %[4]s FROM (
			SELECT e.%[2]s AS id, jsonb_object_agg(kv.key, %[3]s) FILTER (WHERE kv.key IS NOT NULL) AS j
			FROM %[1]s e LEFT JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(e.eventdatavalues) = 'object' THEN e.eventdatavalues END) kv ON true
			LEFT JOIN dhis2life_pii m ON kv.key = ANY($1) AND m.v = kv.value->>'value'
			LEFT JOIN dhis2life_users u ON u.v = kv.value->>'storedBy'
			GROUP BY e.%[2]s) x
		WHERE ev.%[2]s = x.id AND (x.j IS NOT NULL AND ev.eventdatavalues IS DISTINCT FROM x.j OR %[5]s)`,
				pg.QuoteIdent(t), pg.QuoteIdent(id), value, strings.Join(set, ", "), strings.Join(conds, " OR "))
			r.usersDone[t] = true
		}
		if r.eventSide != nil && r.big[t] {
			r.eventSide.stmts = append(r.eventSide.stmts, q)
			r.eventSide.args = []any{f.mapDEUIDs}
			continue
		}
		if err := r.add(ctx, rule, what, q, f.mapDEUIDs); err != nil {
			return err
		}
	}
	return nil
}

func (r *piiRun) history(ctx context.Context, f *piiFields) error {
	const rule, what = "pii.event_history", "event data value audit and change log of those data elements pseudonymised"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	for _, t := range dhis2.DataValueHistoryTables {
		for _, c := range t.Cols {
			if !r.cat.has(t.Table, c) || !r.cat.has(t.Table, "dataelementid") {
				continue
			}
			if err := r.add(ctx, rule, what, fmt.Sprintf(`UPDATE %[1]s x SET %[2]s = m.p FROM dhis2life_pii m
				WHERE x.%[2]s = m.v AND x.dataelementid = ANY($1)`, pg.QuoteIdent(t.Table), pg.QuoteIdent(c)), f.mapDEs); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *piiRun) contacts(ctx context.Context, _ *piiFields) error {
	const rule, what = "pii.contacts", "phone numbers and email addresses of program messages and SMS pseudonymised"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	for _, c := range dhis2.ContactColumns {
		if !r.cat.isText(c.Table, c.Col) {
			continue
		}
		if err := r.add(ctx, rule, what, fmt.Sprintf(`UPDATE %[1]s x SET %[2]s = m.p FROM dhis2life_pii m WHERE x.%[2]s = m.v`,
			pg.QuoteIdent(c.Table), pg.QuoteIdent(c.Col))); err != nil {
			return err
		}
	}
	return nil
}

func (r *piiRun) freeText(ctx context.Context, _ *piiFields) error {
	const rule, what = "pii.free_text", "messages, conversations, program messages, SMS, interpretations, comments and notes replaced"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	for _, c := range dhis2.FreeTextColumns {
		if !r.cat.isText(c.Table, c.Col) || r.usersDone[c.Table] {
			continue
		}
		if err := r.add(ctx, rule, what, fmt.Sprintf(`UPDATE %[1]s SET %[2]s = $1 WHERE %[2]s IS NOT NULL AND %[2]s <> $1`,
			pg.QuoteIdent(c.Table), pg.QuoteIdent(c.Col)), PIIText); err != nil {
			return err
		}
	}
	return nil
}

// userColumns maps usernames copied into text and jsonb columns to the anonymised ones.
func (r *piiRun) userColumns(ctx context.Context, _ *piiFields) error {
	const rule, what = "pii.usernames", "usernames copied into data (storedby, completedby, created/updated-by, audit) mapped to the anonymised usernames"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	// Columns with a foreign key to userinfo(username) (2.44 potentialduplicate) change in one
	// statement with userinfo.username, so the key holds at the statement's end.
	fk, err := r.tx.Query(ctx, `SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
		WHERE c.contype = 'f' AND c.confrelid = to_regclass('public.userinfo') AND ra.attname = 'username' AND cardinality(c.conkey) = 1`)
	if err != nil {
		return fmt.Errorf("scrub rule %s: %w", rule, err)
	}
	fks, err := pgx.CollectRows(fk, func(row pgx.CollectableRow) ([2]string, error) {
		var a [2]string
		err := row.Scan(&a[0], &a[1])
		return a, err
	})
	if err != nil {
		return fmt.Errorf("scrub rule %s: %w", rule, err)
	}
	done := map[[2]string]bool{}
	if len(fks) == 0 && r.cat.has("userinfo", "username") {
		// No foreign key (none yet: during the restore, before post-data builds them): the
		// users get their anonymised names now, so the keys built later hold (the profile's
		// users rule sets the same names).
		if _, err := r.tx.Exec(ctx, `UPDATE userinfo x SET username = u.p FROM dhis2life_users u WHERE x.username = u.v`); err != nil {
			return fmt.Errorf("scrub rule %s (userinfo.username): %w", rule, err)
		}
	}
	if len(fks) > 0 {
		ctes := []string{`u0 AS (UPDATE userinfo x SET username = u.p FROM dhis2life_users u WHERE x.username = u.v RETURNING 1)`}
		var sum []string
		for i, k := range fks {
			ctes = append(ctes, fmt.Sprintf(`u%[1]d AS (UPDATE %[2]s x SET %[3]s = u.p FROM dhis2life_users u WHERE x.%[3]s = u.v RETURNING 1)`, i+1, k[0], pg.QuoteIdent(k[1])))
			sum = append(sum, fmt.Sprintf("(SELECT count(*) FROM u%d)", i+1))
			done[[2]string{strings.TrimPrefix(k[0], "public."), k[1]}] = true
		}
		var n int64
		if err := r.tx.QueryRow(ctx, "WITH "+strings.Join(ctes, ", ")+" SELECT "+strings.Join(sum, " + ")+" + (SELECT count(*) FROM u0) * 0").Scan(&n); err != nil {
			return fmt.Errorf("scrub rule %s (columns referencing userinfo.username): %w", rule, err)
		}
		cs := *r.changes
		cs[len(cs)-1].Rows += n
	}
	for t, cols := range r.cat.cols {
		if t == "userinfo" || r.usersDone[t] {
			continue
		}
		if r.big[t] {
			notDone := func(cols []string) (out []string) {
				for _, c := range cols {
					if !done[[2]string{t, c}] {
						out = append(out, c)
						done[[2]string{t, c}] = true
					}
				}
				return out
			}
			all, _ := r.userSpec(t)
			spec := rewriteSpec{users: notDone(all.users), jsons: notDone(all.jsons)}
			if err := r.rewrite(ctx, rule, what, t, spec); err != nil {
				return err
			}
		}
		// One UPDATE per table for all its username columns.
		var set, where []string
		for c := range cols {
			q := pg.QuoteIdent(c)
			switch {
			case done[[2]string{t, c}]:
			case dhis2.UsernameColumns[c] && r.cat.isText(t, c):
				set = append(set, fmt.Sprintf("%[1]s = coalesce((SELECT u.p FROM dhis2life_users u WHERE u.v = x.%[1]s), x.%[1]s)", q))
				where = append(where, fmt.Sprintf("x.%s IN (SELECT v FROM dhis2life_users)", q))
			case dhis2.UserJSONColumns[c] && cols[c] == "jsonb":
				set = append(set, fmt.Sprintf(`%[1]s = coalesce((SELECT x.%[1]s || jsonb_strip_nulls(jsonb_build_object('username', u.p,
					'firstName', CASE WHEN x.%[1]s ? 'firstName' THEN 'Anonymous' END, 'surname', CASE WHEN x.%[1]s ? 'surname' THEN coalesce(u.surname, 'User') END))
					FROM dhis2life_users u WHERE u.v = x.%[1]s->>'username'), x.%[1]s)`, q))
				where = append(where, fmt.Sprintf("x.%s->>'username' IN (SELECT v FROM dhis2life_users)", q))
			case dhis2.MentionColumns[c] && cols[c] == "jsonb":
				set = append(set, fmt.Sprintf(`%[1]s = CASE WHEN jsonb_typeof(x.%[1]s) = 'array' THEN (SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(m) = 'object' AND u.p IS NOT NULL
					THEN m || jsonb_build_object('username', u.p) ELSE m END), '[]'::jsonb) FROM jsonb_array_elements(x.%[1]s) m LEFT JOIN dhis2life_users u ON u.v = m->>'username') ELSE x.%[1]s END`, q))
				where = append(where, fmt.Sprintf("jsonb_typeof(x.%[1]s) = 'array' AND x.%[1]s <> '[]'::jsonb", q))
			}
		}
		if len(set) > 0 {
			if err := r.add(ctx, rule, what, fmt.Sprintf("UPDATE %s x SET %s WHERE %s", pg.QuoteIdent(t), strings.Join(set, ", "), strings.Join(where, " OR "))); err != nil {
				return err
			}
		}
	}
	return nil
}

// files gives the file resources of people placeholder metadata; the clone's file store gets
// the matching placeholder files (WritePlaceholders).
func (r *piiRun) files(ctx context.Context, _ *piiFields) error {
	const rule, what = "pii.files", "file resources of people (tracker/data value files, avatars, message attachments) replaced by placeholders"
	*r.changes = append(*r.changes, Change{Rule: rule, What: what})
	if !r.cat.has("fileresource", "domain") {
		return nil
	}
	rows, err := r.tx.Query(ctx, `SELECT DISTINCT coalesce(contenttype, '') FROM fileresource WHERE domain = ANY($1)`, dhis2.PersonalFileDomains)
	if err != nil {
		return err
	}
	types, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, ct := range types {
		b, ext := Placeholder(ct)
		sum := md5.Sum(b)
		if err := r.add(ctx, rule, what, `UPDATE fileresource SET name = 'placeholder-' || uid || $5, contentlength = $3, contentmd5 = $4
			WHERE domain = ANY($1) AND coalesce(contenttype, '') = $2`, dhis2.PersonalFileDomains, ct, int64(len(b)), hex.EncodeToString(sum[:]), ext); err != nil {
			return err
		}
	}
	return nil
}

// Placeholder returns the placeholder content and file name extension for a content type: a
// grey 8×8 PNG or JPEG, a one-page PDF, or a line of text.
func Placeholder(contentType string) ([]byte, string) {
	ct := strings.ToLower(contentType)
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 0x80
	}
	var buf bytes.Buffer
	switch {
	case strings.Contains(ct, "png"):
		_ = png.Encode(&buf, img)
		return buf.Bytes(), ".png"
	case strings.HasPrefix(ct, "image/"):
		_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 50})
		return buf.Bytes(), ".jpg"
	case strings.Contains(ct, "pdf"):
		return []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
			"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"), ".pdf"
	}
	return []byte("placeholder: the original file was removed from this training copy\n"), ".txt"
}

// verifyPII proves the pseudonymisation with queries: the copy is marked, free text is
// replaced, people's file resources are placeholders and (training) no username column holds
// a production username.
func (s *Scrubber) verifyPII(ctx context.Context, conn *pgx.Conn) ([]Check, error) {
	if !s.PII.On() {
		return nil, nil
	}
	cat, err := loadPIICatalog(ctx, conn)
	if err != nil {
		return nil, err
	}
	count := func(q string, args ...any) (int64, error) {
		var n int64
		err := conn.QueryRow(ctx, q, args...).Scan(&n)
		return n, err
	}
	var out []Check
	add := func(rule, detail string, n int64) {
		c := Check{Rule: rule, OK: n == 0, Violations: n}
		if n > 0 {
			c.Detail = fmt.Sprintf("%d %s", n, detail)
		}
		out = append(out, c)
	}
	if cat.cols["trackedentityattributevalue"] != nil {
		n, err := count(`SELECT CASE WHEN obj_description('public.trackedentityattributevalue'::regclass, 'pg_class') = $1 THEN 0 ELSE 1 END`, piiMarker)
		if err != nil {
			return nil, fmt.Errorf("verification pii.attributes: %w", err)
		}
		add("pii.attributes", "copy not marked as pseudonymised", n)
	}
	var parts []string
	for _, c := range dhis2.FreeTextColumns {
		if cat.isText(c.Table, c.Col) {
			parts = append(parts, fmt.Sprintf("(SELECT count(*) FROM %[1]s WHERE %[2]s IS NOT NULL AND %[2]s <> $1)", pg.QuoteIdent(c.Table), pg.QuoteIdent(c.Col)))
		}
	}
	if len(parts) > 0 {
		n, err := count("SELECT "+strings.Join(parts, " + "), PIIText)
		if err != nil {
			return nil, fmt.Errorf("verification pii.free_text: %w", err)
		}
		add("pii.free_text", "messages, notes, comments or SMS texts not replaced", n)
	}
	if cat.has("fileresource", "domain") {
		n, err := count(`SELECT count(*) FROM fileresource WHERE domain = ANY($1) AND name NOT LIKE 'placeholder-%'`, dhis2.PersonalFileDomains)
		if err != nil {
			return nil, fmt.Errorf("verification pii.files: %w", err)
		}
		add("pii.files", "file resources of people not replaced by placeholders", n)
	}
	if s.PII.Users {
		parts = parts[:0]
		for t, cols := range cat.cols {
			for c := range cols {
				if t != "userinfo" && dhis2.UsernameColumns[c] && cat.isText(t, c) {
					parts = append(parts, fmt.Sprintf("(SELECT count(*) FROM %[1]s WHERE %[2]s <> '' AND %[2]s NOT LIKE 'anon-%%' AND NOT (%[2]s = ANY($1)))", pg.QuoteIdent(t), pg.QuoteIdent(c)))
				}
			}
		}
		if len(parts) > 0 {
			n, err := count("SELECT "+strings.Join(parts, " + "), s.PII.kept())
			if err != nil {
				return nil, fmt.Errorf("verification pii.usernames: %w", err)
			}
			add("pii.usernames", "rows still name a production user in a username column", n)
		}
	}
	return out, nil
}

// bigRows is the size from which username columns are mapped by rewriting the table (one
// pass, indexes rebuilt by sorting) instead of an UPDATE of every row (datavalue, audit).
const bigRows = 200_000

func (o PIIOptions) bigRows() int64 {
	if o.BigRows > 0 {
		return o.BigRows
	}
	return bigRows
}

// sideRows is the size from which a table that only holds usernames and free text is
// rewritten on the second connection during a restore (enrollment and trackedentity at scale
// 1): one pass of literal expressions there costs a fraction of an UPDATE with a lookup per
// column and row here.
const sideRows = 10_000

// pseudonymTables creates, for one transaction, the pseudonym map of production values
// (dhis2life_pii) and the username map (dhis2life_users) the rules join against.
const pseudonymTables = `CREATE TEMP TABLE dhis2life_pii (v text PRIMARY KEY, p text NOT NULL) ON COMMIT DROP;
	CREATE TEMP TABLE dhis2life_users (v text PRIMARY KEY, p text NOT NULL, surname text) ON COMMIT DROP`

// tableSizes fills mid and big: the tables of more than min(sideRows, bigRows) rows and of
// more than bigRows (estimated: reltuples, or before any ANALYZE the heap's size at 100 bytes
// a row).
func (r *piiRun) tableSizes(ctx context.Context) error {
	bigN := r.s.PII.bigRows()
	rows, err := r.tx.Query(ctx, `SELECT relname, est FROM (
		SELECT c.relname, CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE pg_relation_size(c.oid) / 100 END::float8 AS est
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relispartition) s WHERE est > $1`, min(sideRows, bigN))
	if err != nil {
		return fmt.Errorf("finding large tables: %w", err)
	}
	r.mid, r.big = map[string]bool{}, map[string]bool{}
	var name string
	var est float64
	_, err = pgx.ForEachRow(rows, []any{&name, &est}, func() error {
		r.mid[name] = true
		if est > float64(bigN) {
			r.big[name] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finding large tables: %w", err)
	}
	return nil
}

// rewrite maps the username columns of a large table in one table rewrite (rewriteTableTx)
// in the run's transaction.
func (r *piiRun) rewrite(ctx context.Context, rule, what, table string, spec rewriteSpec) error {
	if len(spec.users)+len(spec.jsons)+len(spec.texts) == 0 {
		return nil
	}
	maps, err := r.userMaps(ctx)
	if err != nil {
		return fmt.Errorf("scrub rule %s: %w", rule, err)
	}
	users, _, err := rewriteTableTx(ctx, r.tx, r.s.log(), maps, r.s.PII.kept(), r.salt, table, spec)
	if err != nil {
		return fmt.Errorf("scrub rule %s: %w", rule, err)
	}
	r.addRows(rule, what, users)
	return nil
}

// userMaps are dhis2life_users as JSON objects: production username → anonymised one, and →
// surname.
type userMaps struct{ names, surnames string }

func (r *piiRun) userMaps(ctx context.Context) (userMaps, error) {
	if r.umap.names != "" {
		return r.umap, nil
	}
	if err := r.tx.QueryRow(ctx, `SELECT coalesce(jsonb_object_agg(v, p), '{}')::text,
		coalesce(jsonb_object_agg(v, surname) FILTER (WHERE surname IS NOT NULL), '{}')::text FROM dhis2life_users`).Scan(&r.umap.names, &r.umap.surnames); err != nil {
		return userMaps{}, fmt.Errorf("reading the username map: %w", err)
	}
	return r.umap, nil
}

// addRows adds n rows to the change of rule (appending it with what when it is not there yet).
func (r *piiRun) addRows(rule, what string, n int64) {
	cs := *r.changes
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Rule == rule {
			cs[i].Rows += n
			return
		}
	}
	*r.changes = append(cs, Change{Rule: rule, Rows: n, What: what})
}

// userExprs are the SQL expressions that map usernames with userMaps (as literals, so they
// need no table: usable in ALTER TABLE … USING and on another connection).
type userExprs struct {
	kept, names, surnames string
	salt                  int64
}

func newUserExprs(maps userMaps, kept []string, salt int64) userExprs {
	k := "'{}'::text[]"
	if len(kept) > 0 {
		q := make([]string, len(kept))
		for i, v := range kept {
			q[i] = pg.QuoteLiteral(v)
		}
		k = "ARRAY[" + strings.Join(q, ", ") + "]::text[]"
	}
	return userExprs{kept: k, names: pg.QuoteLiteral(maps.names) + "::jsonb", surnames: pg.QuoteLiteral(maps.surnames) + "::jsonb", salt: salt}
}

// mapped is the anonymised username of text expression q: by the map, else (not kept, not
// empty) by the formula of usernames.
func (x userExprs) mapped(q string) string {
	return fmt.Sprintf("CASE WHEN %[1]s IS NULL OR %[1]s = '' OR %[1]s = ANY(%[2]s) THEN %[1]s ELSE coalesce(%[3]s ->> %[1]s, 'anon-' || substr(md5('%[4]d' || %[1]s), 1, 10)) END",
		q, x.kept, x.names, x.salt)
}

// jsonMapped is user jsonb expression q with its username mapped and its names anonymised.
func (x userExprs) jsonMapped(q string) string {
	return fmt.Sprintf(`CASE WHEN %[2]s ? (%[1]s ->> 'username') THEN %[1]s || jsonb_strip_nulls(jsonb_build_object('username', %[2]s ->> (%[1]s ->> 'username'),
		'firstName', CASE WHEN %[1]s ? 'firstName' THEN 'Anonymous' END, 'surname', CASE WHEN %[1]s ? 'surname' THEN coalesce(%[3]s ->> (%[1]s ->> 'username'), 'User') END)) ELSE %[1]s END`,
		q, x.names, x.surnames)
}

// userCond and jsonCond hold for the rows whose text or jsonb column q names a user to map.
func (x userExprs) userCond(q string) string {
	return fmt.Sprintf("(%[1]s <> '' AND NOT (%[1]s = ANY(%[2]s)))", q, x.kept)
}

func (x userExprs) jsonCond(q string) string {
	return fmt.Sprintf("(%s ? (%s ->> 'username'))", x.names, q)
}

// userSpec are the columns of table t that userColumns maps: its username text columns and
// user jsonb columns (sorted), and whether it has a mention jsonb column.
func (r *piiRun) userSpec(t string) (spec rewriteSpec, mentions bool) {
	for c, typ := range r.cat.cols[t] {
		switch {
		case dhis2.UsernameColumns[c] && r.cat.isText(t, c):
			spec.users = append(spec.users, c)
		case dhis2.UserJSONColumns[c] && typ == "jsonb":
			spec.jsons = append(spec.jsons, c)
		case dhis2.MentionColumns[c] && typ == "jsonb":
			mentions = true
		}
	}
	sort.Strings(spec.users)
	sort.Strings(spec.jsons)
	return spec, mentions
}

// rewriteSpec are the columns of one table rewrite: username text columns (mapped), user
// jsonb columns ({"username", "firstName", "surname"}: mapped and anonymised) and free-text
// columns (replaced by PIIText).
type rewriteSpec struct{ users, jsons, texts []string }

// rewriteTableTx pseudonymises the columns of spec of table on tx in one table rewrite (ALTER
// TABLE … TYPE … USING), falling back to one UPDATE when the table cannot be rewritten (a view
// depends on a column). The users of maps by them; other non-empty names in text columns, not
// kept, by the formula of usernames (the same pseudonym wherever else they occur). It returns
// the rows holding a mapped username and the rows holding a replaced text.
func rewriteTableTx(ctx context.Context, tx pgx.Tx, log *slog.Logger, maps userMaps, kept []string, salt int64, table string, spec rewriteSpec) (users, texts int64, err error) {
	x := newUserExprs(maps, kept, salt)
	mapped, jsonMapped := x.mapped, x.jsonMapped
	text := pg.QuoteLiteral(PIIText)
	replaced := func(q string) string {
		return fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL ELSE %[2]s END", q, text)
	}
	var alter, sets, userConds, textConds []string
	col := func(c string, expr func(string) string, text bool) error {
		var typ string
		if err := tx.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2`,
			"public."+pg.QuoteIdent(table), c).Scan(&typ); err != nil {
			return fmt.Errorf("type of %s.%s: %w", table, c, err)
		}
		q := pg.QuoteIdent(c)
		if text {
			alter = append(alter, fmt.Sprintf("ALTER COLUMN %s TYPE %s USING (%s)::%s", q, typ, expr(q+"::text"), typ))
		} else {
			alter = append(alter, fmt.Sprintf("ALTER COLUMN %s TYPE %s USING %s", q, typ, expr(q)))
		}
		sets = append(sets, fmt.Sprintf("%s = %s", q, expr(q)))
		return nil
	}
	for _, c := range spec.users {
		if err := col(c, mapped, true); err != nil {
			return 0, 0, err
		}
		userConds = append(userConds, x.userCond(pg.QuoteIdent(c)))
	}
	for _, c := range spec.jsons {
		if err := col(c, jsonMapped, false); err != nil {
			return 0, 0, err
		}
		userConds = append(userConds, x.jsonCond(pg.QuoteIdent(c)))
	}
	for _, c := range spec.texts {
		if err := col(c, replaced, true); err != nil {
			return 0, 0, err
		}
		textConds = append(textConds, fmt.Sprintf("(%[1]s IS NOT NULL AND %[1]s <> %[2]s)", pg.QuoteIdent(c), text))
	}
	count := func(conds []string) string {
		if len(conds) == 0 {
			return "0"
		}
		return "count(*) FILTER (WHERE " + strings.Join(conds, " OR ") + ")"
	}
	if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT %s, %s FROM %s", count(userConds), count(textConds), pg.QuoteIdent(table))).Scan(&users, &texts); err != nil {
		return 0, 0, fmt.Errorf("counting usernames and texts of %s: %w", table, err)
	}
	if users+texts == 0 {
		return 0, 0, nil
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT dhis2life_rewrite"); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if _, err := tx.Exec(ctx, "ALTER TABLE "+pg.QuoteIdent(table)+" "+strings.Join(alter, ", ")); err != nil {
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT dhis2life_rewrite"); err != nil {
			return 0, 0, err
		}
		conds := append(append([]string{}, userConds...), textConds...)
		if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s WHERE %s`, pg.QuoteIdent(table), strings.Join(sets, ", "), strings.Join(conds, " OR "))); err != nil {
			return 0, 0, fmt.Errorf("pseudonymising %s: %w", table, err)
		}
		return users, texts, nil
	}
	log.Debug("PII table rewrite", "table", table, "user_columns", len(spec.users)+len(spec.jsons), "text_columns", len(spec.texts),
		"rows", users+texts, "took", time.Since(t0).Round(time.Millisecond))
	return users, texts, nil
}

// shortSQL is the start of a statement on one line, for debug logs (statements carry no values:
// those are parameters or the pseudonym tables).
func shortSQL(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 90 {
		q = q[:90] + "…"
	}
	return q
}
