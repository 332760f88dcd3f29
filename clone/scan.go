package clone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// ErrPIIFound is returned (wrapped in a *VerifyError, so it also matches ErrVerify) when the
// scan finds production's personal data in a clone.
var ErrPIIFound = errors.New("personal data of production found in the clone")

// Sought are production's identifying values a scan looks for. They live in memory only:
// never stored, logged or printed.
type Sought struct {
	values   map[string]struct{}
	first    map[string]struct{} // first words of the values of several words
	maxWords int
	mapped   map[string]bool // every value the scrub maps (→ sought), read in the same pass
	log      *slog.Logger    // timings of the scan per table (nil: none)
}

// Len is the number of values sought.
func (s *Sought) Len() int {
	if s == nil {
		return 0
	}
	return len(s.values)
}

// minSought is the shortest value sought (in characters); shorter ones match too much.
const minSought = 4

// maxSoughtWords bounds the words of a sought value (names, IDs, not sentences).
const maxSoughtWords = 4

func (s *Sought) add(v string) {
	toks := tokens(strings.ToLower(v), nil)
	if len(toks) == 0 || len(toks) > maxSoughtWords {
		return
	}
	n := strings.Join(toks, " ")
	if utf8.RuneCountInString(n) < minSought {
		return
	}
	digits := strings.TrimLeft(n, "+")
	if strings.Trim(digits, "0123456789") == "" && len(digits) < 6 {
		return // short numbers are not identifying
	}
	s.values[n] = struct{}{}
	s.maxWords = max(s.maxWords, len(toks))
	if len(toks) > 1 {
		s.first[toks[0]] = struct{}{}
	}
}

func tokenRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '@' || r == '.' || r == '+' || r == '-' || r == '_'
}

// tokens splits lower-cased text into words (letters, digits and @ . + - _), trimming
// punctuation at their ends.
func tokens(s string, out []string) []string {
	out = out[:0]
	start := -1
	flush := func(end int) {
		if start >= 0 {
			if t := strings.Trim(s[start:end], ".-_"); t != "" {
				out = append(out, t)
			}
			start = -1
		}
	}
	for i, r := range s {
		if tokenRune(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		flush(i)
	}
	flush(len(s))
	return out
}

// matcher finds sought values in text. It works on bytes, without allocating per value: the
// scan reads every text value of the clone.
type matcher struct {
	s    *Sought
	low  []byte
	toks [][2]int // token spans in low
	buf  []byte
}

// hits reports whether text holds a sought value (whole words, case-insensitive).
func (m *matcher) hits(text string) bool { return m.hitsBytes([]byte(text)) }

// hitsBytes is hits on bytes: the same tokens as tokens(strings.ToLower(text)).
func (m *matcher) hitsBytes(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	ascii := true
	for _, c := range b {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		m.low = m.low[:0]
		for _, c := range b {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			m.low = append(m.low, c)
		}
	} else {
		m.low = bytes.ToLower(b)
	}
	m.toks = m.toks[:0]
	low := m.low
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		a, z := start, end
		for a < z && (low[a] == '.' || low[a] == '-' || low[a] == '_') {
			a++
		}
		for z > a && (low[z-1] == '.' || low[z-1] == '-' || low[z-1] == '_') {
			z--
		}
		if a < z {
			m.toks = append(m.toks, [2]int{a, z})
		}
		start = -1
	}
	for i := 0; i < len(low); {
		c := low[i]
		var tok bool
		size := 1
		if c < utf8.RuneSelf {
			tok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '@' || c == '.' || c == '+' || c == '-' || c == '_' || 'A' <= c && c <= 'Z'
		} else {
			var r rune
			r, size = utf8.DecodeRune(low[i:])
			tok = tokenRune(r)
		}
		if tok {
			if start < 0 {
				start = i
			}
		} else {
			flush(i)
		}
		i += size
	}
	flush(len(low))
	vals := m.s.values
	for i, t := range m.toks {
		w := low[t[0]:t[1]]
		if _, ok := vals[string(w)]; ok {
			return true
		}
		if m.s.maxWords > 1 {
			if _, ok := m.s.first[string(w)]; !ok {
				continue
			}
			m.buf = append(m.buf[:0], w...)
			for n := 1; n < m.s.maxWords && i+n < len(m.toks); n++ {
				u := m.toks[i+n]
				m.buf = append(m.buf, ' ')
				m.buf = append(m.buf, low[u[0]:u[1]]...)
				if _, ok := vals[string(m.buf)]; ok {
					return true
				}
			}
		}
	}
	return false
}

// CollectPII reads production's identifying values from a database that was not scrubbed (the
// restored copy before its scrub, or production itself): values of identifying attributes
// (unique, phone, email, username, name-like) and data elements, their history, contacts of
// program messages and SMS, and (training) the names, usernames and contacts of users that
// are not kept.
func CollectPII(ctx context.Context, conn *pgx.Conn, o PIIOptions) (*Sought, error) {
	cat, err := loadPIICatalog(ctx, conn)
	if err != nil {
		return nil, err
	}
	f, err := selectPIIFields(ctx, conn, cat, o)
	if err != nil {
		return nil, err
	}
	s := &Sought{values: map[string]struct{}{}, first: map[string]struct{}{}}
	vals, err := distinctValues(ctx, conn, cat, f)
	if err != nil {
		return nil, err
	}
	for v, sought := range vals {
		if sought {
			s.add(v)
		}
	}
	s.mapped = vals
	if o.Users && cat.has("userinfo", "username") {
		var cols []string
		for _, c := range dhis2.UserSoughtColumns {
			if cat.isText("userinfo", c) {
				cols = append(cols, pg.QuoteIdent(c)+"::text")
			}
		}
		if cat.isText("userinfo", "firstname") && cat.isText("userinfo", "surname") {
			cols = append(cols, "concat_ws(' ', firstname, surname)")
		}
		rows, err := conn.Query(ctx, `SELECT ARRAY[`+strings.Join(cols, ", ")+`] FROM userinfo WHERE NOT (username = ANY($1))`, o.kept())
		if err != nil {
			return nil, fmt.Errorf("reading users: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var a []*string
			if err := rows.Scan(&a); err != nil {
				return nil, err
			}
			for i, v := range a {
				if i == 0 && v != nil && dhis2.GenericUsernames[strings.ToLower(*v)] {
					continue
				}
				if v != nil {
					s.add(*v)
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ScanHit is where the scan found sought values: a table and column (Table "files" and the
// file's path for the file store), and the number of rows or files. Never the value.
type ScanHit struct {
	Table  string `json:"table"`
	Column string `json:"column"`
	Count  int64  `json:"count"`
}

// ScanReport is the result of a scan.
type ScanReport struct {
	Tables  int       `json:"tables"`
	Columns int       `json:"columns"`
	Rows    int64     `json:"rows"`
	Values  int       `json:"values"`
	Files   int       `json:"files"`
	Hits    []ScanHit `json:"hits"`
	Seconds float64   `json:"seconds"`
	// Note explains a scan that did not run (e.g. pii = "keep").
	Note string `json:"note,omitempty"`
}

// Error is the verification error for a report with hits (nil without hits).
func (r *ScanReport) Error() error {
	if r == nil || len(r.Hits) == 0 {
		return nil
	}
	var failed []Check
	for _, h := range r.Hits {
		failed = append(failed, Check{Rule: "pii.scan", Violations: h.Count,
			Detail: fmt.Sprintf("%s.%s holds %d production values (%v)", h.Table, h.Column, h.Count, ErrPIIFound)})
	}
	return &VerifyError{Failed: failed}
}

type scanCol struct{ schema, table, col, typ string }

// Scan searches every text, varchar, char, json and jsonb column of every table of the
// database, and every file under filesDir (when not empty), for the sought values.
func Scan(ctx context.Context, conn *pgx.Conn, filesDir string, s *Sought) (*ScanReport, error) {
	return ScanBig(ctx, conn, filesDir, s, bigRows)
}

// ScanBig is Scan reading the distinct values of each column of tables larger than big rows
// (a hit then counts distinct values, not rows).
func ScanBig(ctx context.Context, conn *pgx.Conn, filesDir string, s *Sought, big int64) (*ScanReport, error) {
	start := time.Now()
	rep := &ScanReport{Values: s.Len(), Hits: []ScanHit{}}
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname, a.attname, t.typname FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
		WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		AND a.attnum > 0 AND NOT a.attisdropped AND t.typname IN ('text', 'varchar', 'bpchar', 'json', 'jsonb', 'name')
		ORDER BY 1, 2, a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("listing text columns: %w", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (scanCol, error) {
		var c scanCol
		err := r.Scan(&c.schema, &c.table, &c.col, &c.typ)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing text columns: %w", err)
	}
	rep.Columns = len(cols)
	// Work items: every table (all its columns in one pass), and every column of large tables
	// (its distinct values); run on scanConns connections, results kept in item order.
	type item struct {
		cols []scanCol
		big  bool
	}
	var items []item
	for i := 0; i < len(cols); {
		j := i
		for j < len(cols) && cols[j].schema == cols[i].schema && cols[j].table == cols[i].table {
			j++
		}
		rep.Tables++
		if s.Len() > 0 && !(cols[i].schema == "public" && dhis2.ScanSkipTables[cols[i].table]) {
			var est float64
			table := pg.QualifiedName(cols[i].schema, cols[i].table)
			if err := conn.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&est); err != nil {
				return nil, fmt.Errorf("scanning %s: %w", table, err)
			}
			if est > float64(big) {
				for k := i; k < j; k++ {
					items = append(items, item{cols: cols[k : k+1], big: true})
				}
			} else {
				items = append(items, item{cols: cols[i:j]})
			}
		}
		i = j
	}
	type result struct {
		rows int64
		hits []ScanHit
		err  error
	}
	results := make([]result, len(items))
	next := make(chan int)
	var wg sync.WaitGroup
	worker := func(c *pgx.Conn) {
		defer wg.Done()
		m := &matcher{s: s}
		for k := range next {
			t0 := time.Now()
			r := &results[k]
			r.rows, r.hits, r.err = scanTable(ctx, c, items[k].cols, m, items[k].big)
			if s.log != nil {
				s.log.Debug("PII scan of a table", "table", scanName(items[k].cols[0]), "columns", len(items[k].cols), "distinct", items[k].big, "rows", r.rows, "took", time.Since(t0).Round(time.Millisecond))
			}
		}
	}
	// Extra connections like the given one; without them the scan runs on conn alone.
	var extra []*pgx.Conn
	defer func() {
		for _, c := range extra {
			c.Close(context.Background())
		}
	}()
	for n := 1; n < scanConns && n < len(items); n++ {
		c, err := pgx.ConnectConfig(ctx, conn.Config())
		if err != nil {
			break
		}
		extra = append(extra, c)
	}
	for _, c := range append([]*pgx.Conn{conn}, extra...) {
		wg.Add(1)
		go worker(c)
	}
	failed := false
	for k := range items {
		if failed = ctx.Err() != nil; failed {
			break
		}
		next <- k
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		rep.Rows += r.rows
		rep.Hits = append(rep.Hits, r.hits...)
	}
	if filesDir != "" {
		if err := scanFiles(ctx, filesDir, &matcher{s: s}, rep); err != nil {
			return nil, err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// scanConns is the number of connections a scan reads tables on.
const scanConns = 2

// scanTable reads the columns cols of one table (big: the distinct values of its one column)
// and returns the rows read and the columns holding sought values.
func scanTable(ctx context.Context, conn *pgx.Conn, cols []scanCol, m *matcher, big bool) (int64, []ScanHit, error) {
	table := pg.QualifiedName(cols[0].schema, cols[0].table)
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = pg.QuoteIdent(c.col) + "::text"
	}
	q := "COPY (SELECT " + strings.Join(sel, ", ") + " FROM ONLY " + table + ") TO STDOUT"
	if big {
		// Large tables (datavalue, audit): each column's distinct values, counted as such.
		q = "COPY (SELECT DISTINCT " + sel[0] + " FROM ONLY " + table + ") TO STDOUT"
	}
	w := &copyScanner{m: m, counts: make([]int64, len(cols))}
	if _, err := conn.PgConn().CopyTo(ctx, w, q); err != nil {
		return 0, nil, fmt.Errorf("scanning %s: %w", table, err)
	}
	w.flush()
	var hits []ScanHit
	for i, n := range w.counts {
		if n > 0 {
			hits = append(hits, ScanHit{Table: scanName(cols[i]), Column: cols[i].col, Count: n})
		}
	}
	return w.rows, hits, nil
}

func scanName(c scanCol) string {
	if c.schema != "public" {
		return c.schema + "." + c.table
	}
	return c.table
}

// copyScanner parses COPY text format rows and counts, per column, the rows holding a sought
// value.
type copyScanner struct {
	m      *matcher
	counts []int64
	rows   int64
	line   []byte
	field  []byte
}

func (w *copyScanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.line = append(w.line, p...)
			break
		}
		if len(w.line) > 0 {
			w.line = append(w.line, p[:i]...)
			w.row(w.line)
			w.line = w.line[:0]
		} else {
			w.row(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

func (w *copyScanner) flush() {
	if len(w.line) > 0 {
		w.row(w.line)
		w.line = w.line[:0]
	}
}

func (w *copyScanner) row(line []byte) {
	w.rows++
	for col := 0; col < len(w.counts); col++ {
		i := bytes.IndexByte(line, '\t')
		var f []byte
		if i < 0 {
			f, line = line, nil
		} else {
			f, line = line[:i], line[i+1:]
		}
		if !(len(f) == 2 && f[0] == '\\' && f[1] == 'N') && w.m.hitsBytes(w.unescape(f)) {
			w.counts[col]++
		}
		if i < 0 {
			break
		}
	}
}

// unescape decodes COPY text escapes (\\, \t, \n, \r, …); other escapes become a space.
func (w *copyScanner) unescape(f []byte) []byte {
	if bytes.IndexByte(f, '\\') < 0 {
		return f
	}
	w.field = w.field[:0]
	for i := 0; i < len(f); i++ {
		if f[i] != '\\' || i+1 == len(f) {
			w.field = append(w.field, f[i])
			continue
		}
		i++
		switch f[i] {
		case '\\':
			w.field = append(w.field, '\\')
		case 't', 'n', 'r', 'b', 'f', 'v':
			w.field = append(w.field, ' ')
		default:
			w.field = append(w.field, ' ', f[i])
		}
	}
	return w.field
}

// scanFiles searches every regular file under dir.
func scanFiles(ctx context.Context, dir string, m *matcher, rep *ScanReport) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var hits []ScanHit
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rep.Files++
		hit, err := fileHits(p, m)
		if err != nil {
			return err
		}
		if hit {
			rel, _ := filepath.Rel(dir, p)
			hits = append(hits, ScanHit{Table: "files", Column: rel, Count: 1})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scanning the file store %s: %w", dir, err)
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].Column < hits[j].Column })
	rep.Hits = append(rep.Hits, hits...)
	return nil
}

// fileHits reads a file in chunks (overlapping, so a value across a chunk border is found).
func fileHits(p string, m *matcher) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	const chunk, overlap = 4 << 20, 1024
	buf := make([]byte, chunk+overlap)
	keep := 0
	for {
		n, err := io.ReadFull(f, buf[keep:])
		if n > 0 && m.hits(string(buf[:keep+n])) {
			return true, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		end := keep + n
		keep = min(overlap, end)
		copy(buf, buf[end-keep:end])
	}
}

// WritePlaceholders replaces, in the file store filesDir of a scrubbed clone, the files of the
// file resources of people by the placeholders whose metadata the scrub wrote. It returns the
// number of file resources replaced.
func WritePlaceholders(ctx context.Context, conn *pgx.Conn, filesDir string) (int, error) {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.fileresource') IS NOT NULL`).Scan(&ok); err != nil || !ok {
		return 0, err
	}
	rows, err := conn.Query(ctx, `SELECT storagekey, coalesce(contenttype, '') FROM fileresource WHERE domain = ANY($1) AND storagekey IS NOT NULL`, dhis2.PersonalFileDomains)
	if err != nil {
		return 0, fmt.Errorf("listing file resources of people: %w", err)
	}
	type fr struct{ key, ct string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fr, error) {
		var x fr
		err := r.Scan(&x.key, &x.ct)
		return x, err
	})
	if err != nil {
		return 0, fmt.Errorf("listing file resources of people: %w", err)
	}
	n := 0
	for _, x := range list {
		if strings.Contains(x.key, "..") || filepath.IsAbs(x.key) {
			continue
		}
		p := filepath.Join(filesDir, filepath.FromSlash(x.key))
		b, _ := Placeholder(x.ct)
		// Image variants (key_small, key_medium, …) go too.
		variants, _ := filepath.Glob(globEscape(p) + "_*")
		for _, v := range variants {
			if err := os.WriteFile(v, b, 0o640); err != nil {
				return n, err
			}
		}
		if _, err := os.Stat(p); err != nil {
			continue // the file was missing in the set already
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			return n, fmt.Errorf("writing the placeholder of %s: %w", x.key, err)
		}
		n++
	}
	return n, nil
}

func globEscape(p string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(p)
}
