package pg

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Querier is satisfied by *pgx.Conn and pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// FlywayVersion returns DHIS2's latest successful Flyway version ("" when the database has no
// flyway_schema_history, i.e. is not a DHIS2 ≥ 2.31 database).
func FlywayVersion(ctx context.Context, q Querier) (string, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('public.flyway_schema_history') IS NOT NULL`).Scan(&exists); err != nil {
		return "", fmt.Errorf("looking for flyway_schema_history: %w", err)
	}
	if !exists {
		return "", nil
	}
	var v *string
	err := q.QueryRow(ctx, `SELECT version FROM public.flyway_schema_history WHERE success AND version IS NOT NULL ORDER BY installed_rank DESC LIMIT 1`).Scan(&v)
	if err == pgx.ErrNoRows || v == nil {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading flyway version: %w", err)
	}
	return *v, nil
}

// Generation returns the DHIS2 major line of a flyway version: "2.42.17" → 2, 42.
func Generation(flyway string) (major, minor int, ok bool) {
	parts := strings.Split(flyway, ".")
	if len(parts) < 2 {
		return 0, 0, false
	}
	a, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(parts[1])
	return a, b, err1 == nil && err2 == nil
}

// Table is a user table whose data may be dumped.
type Table struct {
	Schema   string   `json:"schema"`
	Name     string   `json:"name"`
	Columns  []string `json:"columns,omitempty"` // non-generated columns in attnum order
	PK       []string `json:"-"`
	Bytes    int64    `json:"bytes"` // pg_table_size at dump time
	Unlogged bool     `json:"unlogged,omitempty"`
}

// Qualified returns the quoted schema-qualified name.
func (t Table) Qualified() string { return QualifiedName(t.Schema, t.Name) }

// Key returns schema.name unquoted, for maps and messages.
func (t Table) Key() string { return t.Schema + "." + t.Name }

// Tables lists ordinary tables (including partitions, excluding partitioned parents, foreign
// tables and extension members) outside system schemas.
func Tables(ctx context.Context, q Querier) ([]Table, error) {
	rows, err := q.Query(ctx, `
SELECT n.nspname, c.relname, c.relpersistence = 'u', pg_table_size(c.oid),
  ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum),
  coalesce(ARRAY(SELECT a.attname::text FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname`)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	defer rows.Close()
	var out []Table
	for rows.Next() {
		var t Table
		if err := rows.Scan(&t.Schema, &t.Name, &t.Unlogged, &t.Bytes, &t.Columns, &t.PK); err != nil {
			return nil, fmt.Errorf("reading table list: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Sequence is a sequence's state as dumped.
type Sequence struct {
	Schema    string `json:"schema"`
	Name      string `json:"name"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
}

// Sequences reads every user sequence's last_value and is_called (including identity and
// serial sequences).
func Sequences(ctx context.Context, q Querier) ([]Sequence, error) {
	rows, err := q.Query(ctx, `
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("listing sequences: %w", err)
	}
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Sequence, error) {
		var s Sequence
		return s, r.Scan(&s.Schema, &s.Name)
	})
	if err != nil {
		return nil, fmt.Errorf("listing sequences: %w", err)
	}
	for i := range seqs {
		s := &seqs[i]
		if err := q.QueryRow(ctx, "SELECT last_value, is_called FROM "+QualifiedName(s.Schema, s.Name)).Scan(&s.LastValue, &s.IsCalled); err != nil {
			return nil, fmt.Errorf("reading sequence %s.%s: %w", s.Schema, s.Name, err)
		}
	}
	return seqs, nil
}

// Extension is an installed extension.
type Extension struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Schema  string `json:"schema"`
}

// Extensions lists installed extensions other than plpgsql.
func Extensions(ctx context.Context, q Querier) ([]Extension, error) {
	rows, err := q.Query(ctx, `SELECT e.extname, e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("listing extensions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Extension, error) {
		var e Extension
		return e, r.Scan(&e.Name, &e.Version, &e.Schema)
	})
}

// RequiredExtensions are the extensions DHIS2 will not start without.
var RequiredExtensions = []string{"postgis", "pg_trgm", "btree_gin"}

// Exclusion is a table whose data is not dumped, with the rule that decided it.
type Exclusion struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ExclusionRules decide which tables' data is regenerable for a DHIS2 version.
type ExclusionRules struct {
	Major, Minor int      // DHIS2 generation (0,0 when unknown)
	ExcludeAudit bool     // opt-in
	Extra        []string // extra glob patterns on table names
}

// Reason returns why a table's data is excluded, or "" when it is dumped.
func (r ExclusionRules) Reason(schema, name string) string {
	if schema != "public" {
		return r.extra(schema, name)
	}
	n := name
	newRS := r.Major > 2 || (r.Major == 2 && r.Minor >= 41)
	switch {
	case strings.HasPrefix(n, "analytics_rs_"):
		return "analytics resource table (analytics_rs_*, DHIS2 ≥ 2.41), regenerated by the analytics job"
	case n == "analytics" || strings.HasPrefix(n, "analytics_"):
		if strings.HasSuffix(n, "_temp") {
			return "temporary analytics table (*_temp), left by an interrupted analytics run"
		}
		return "analytics table (analytics*), regenerated by the analytics job"
	case strings.HasPrefix(n, "_view_"):
		return "" // views, never data
	case strings.HasPrefix(n, "_deprecated_"):
		return "deprecated resource table (_deprecated_*, renamed by DHIS2 2.44), unused"
	case strings.HasPrefix(n, "_"):
		if newRS {
			return "legacy resource table (_*, replaced by analytics_rs_* in 2.41), regenerable"
		}
		return "resource table (_*, DHIS2 ≤ 2.40), regenerated by the resource table job"
	case (strings.HasPrefix(n, "aggregated") && !strings.HasPrefix(n, "aggregatedataexchange")) || strings.HasPrefix(n, "completeness"):
		// aggregatedataexchange (DHIS2 ≥ 2.39) is metadata that only shares the prefix.
		return "legacy aggregated table (aggregated*/completeness*), regenerable"
	case r.ExcludeAudit && (n == "audit" || n == "datavalueaudit" || n == "trackedentitydatavalueaudit" ||
		n == "trackedentityattributevalueaudit" || strings.HasSuffix(n, "changelog")):
		return "audit table excluded by exclude_audit = true"
	}
	return r.extra(schema, name)
}

func (r ExclusionRules) extra(schema, name string) string {
	for _, p := range r.Extra {
		target := name
		if strings.Contains(p, ".") {
			target = schema + "." + name
		}
		if ok, _ := path.Match(p, target); ok {
			return fmt.Sprintf("matches exclude_table_data pattern %q", p)
		}
	}
	return ""
}

// orderRules are the DHIS2 tables dumped in period/date order so daily changes stay local in
// the stream (DESIGN.md: physical order re-uploads ~43% a day, period order ~5%). The first
// candidate whose columns all exist wins; the primary key is appended to make order total.
var orderRules = map[string][][]string{
	"datavalue":                        {{"periodid", "dataelementid", "sourceid", "categoryoptioncomboid", "attributeoptioncomboid"}},
	"datavalueaudit":                   {{"periodid", "dataelementid", "sourceid"}, {"created"}},
	"programstageinstance":             {{"executiondate"}, {"created"}},
	"event":                            {{"occurreddate"}, {"executiondate"}, {"created"}},
	"trackerevent":                     {{"occurreddate"}, {"created"}},
	"singleevent":                      {{"occurreddate"}, {"created"}},
	"audit":                            {{"createdat"}},
	"trackedentitydatavalueaudit":      {{"created"}},
	"trackedentityattributevalueaudit": {{"created"}},
	"trackereventchangelog":            {{"created"}},
	"singleeventchangelog":             {{"created"}},
	"completedatasetregistration":      {{"periodid"}},
}

// OrderBy returns the ORDER BY columns for a table: a DHIS2 rule (or extra rule
// "table=col1,col2") followed by the primary key; nil when the table has neither.
func OrderBy(t Table, extra []string) []string {
	has := map[string]bool{}
	for _, c := range t.Columns {
		has[c] = true
	}
	var cands [][]string
	for _, e := range extra {
		tbl, cols, ok := strings.Cut(e, "=")
		if ok && (tbl == t.Name || tbl == t.Key()) {
			cands = append(cands, strings.Split(cols, ","))
		}
	}
	if t.Schema == "public" {
		cands = append(cands, orderRules[t.Name]...)
	}
	var out []string
	seen := map[string]bool{}
	for _, cand := range cands {
		ok := true
		for _, c := range cand {
			if !has[strings.TrimSpace(c)] {
				ok = false
			}
		}
		if ok {
			for _, c := range cand {
				c = strings.TrimSpace(c)
				out = append(out, c)
				seen[c] = true
			}
			break
		}
	}
	for _, c := range t.PK {
		if !seen[c] {
			out = append(out, c)
		}
	}
	return out
}
