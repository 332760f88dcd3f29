package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier is satisfied by *pgx.Conn and pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
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
