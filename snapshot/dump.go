package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// DumpOptions configure the database stream producer.
type DumpOptions struct {
	Conn          pg.Conn
	ExcludeAudit  bool
	ExcludeExtra  []string // glob patterns of tables whose data is excluded
	OrderedTables []string // extra "table=col1,col2" ordering rules
	TempDir       string   // for pg_dump's temporary passfile
	PGBinDir      string   // pg_dump's directory ("" = by server version, then PATH)
	// Cuts are the repository's cut marker and pad (dumpfmt.NewCuts), written after the
	// schema and after every table so that restic ends a chunk there; nil = no cuts.
	Cuts *dumpfmt.Cuts
}

// countingWriter counts bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Dump writes one consistent database stream to w: it opens a REPEATABLE READ transaction,
// exports its snapshot, runs pg_dump --schema-only on that snapshot, then COPYs every
// non-excluded table (DHIS2's largest in period/date order, others by primary key) and
// writes a trailer with exact row counts taken from the COPY command tags. It returns the
// trailer. Any error leaves the stream without its end marker, so it can never be restored
// as if complete.
func Dump(ctx context.Context, o DumpOptions, out io.Writer) (*manifest.Trailer, error) {
	conn, err := o.Conn.ConnectBulk(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if err := prepareSession(ctx, conn); err != nil {
		return nil, err
	}
	verNum, verStr, err := pg.ServerVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly, DeferrableMode: pgx.NotDeferrable})
	if err != nil {
		return nil, fmt.Errorf("starting dump transaction: %w", err)
	}
	defer tx.Rollback(context.Background())

	tr := &manifest.Trailer{Database: conn.Config().Database, Server: manifest.Server{Version: verStr, VersionNum: verNum}}
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot(), now()").Scan(&tr.Snapshot, &tr.Time); err != nil {
		return nil, fmt.Errorf("exporting snapshot: %w", err)
	}
	dump, err := selectTables(ctx, tx, o, tr)
	if err != nil {
		return nil, err
	}
	cw := &countingWriter{w: out}
	if err := writeStream(ctx, tx, o, tr, dump, cw); err != nil {
		return nil, err
	}
	tr.Bytes = cw.n
	return tr, nil
}

// prepareSession sets what the dump needs of its session: no timeouts but a bounded wait
// for locks, the output formats the stream promises (see internal/dumpfmt), and no parallel
// query.
func prepareSession(ctx context.Context, conn *pgx.Conn) error {
	for _, s := range []string{
		"SET statement_timeout = 0", "SET idle_in_transaction_session_timeout = 0", "SET lock_timeout = '120s'",
		"SET DateStyle = ISO", "SET IntervalStyle = postgres", "SET extra_float_digits = 3",
		"SET client_encoding = 'UTF8'", "SET row_security = off", "SET application_name = 'dhis2-life dump'",
		// No parallel workers for the ordered COPYs: restic needs the other cores, and a
		// Gather Merge spends more CPU in all than one backend's sort (measured on 2 cores
		// during a snapshot: datavalue's sorted COPY 4.5-5.6 s without workers, 6.4-7.2 s with).
		"SET max_parallel_workers_per_gather = 0",
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("preparing dump session (%s): %w", s, err)
		}
	}
	return nil
}

// selectTables fills the trailer's DHIS2 version, extensions and exclusions, locks every
// table as pg_dump does and returns the tables whose data is dumped.
func selectTables(ctx context.Context, tx pgx.Tx, o DumpOptions, tr *manifest.Trailer) ([]pg.Table, error) {
	var err error
	if tr.DHIS2.Flyway, err = dhis2.FlywayVersion(ctx, tx); err != nil {
		return nil, err
	}
	rules := dhis2.ExclusionRules{ExcludeAudit: o.ExcludeAudit, Extra: o.ExcludeExtra}
	if g, ok := dhis2.GenerationOf(tr.DHIS2.Flyway); ok {
		rules.Gen = g
		tr.DHIS2.Generation = g.String()
	} else {
		tr.Warnings = append(tr.Warnings, "no flyway_schema_history: not a DHIS2 ≥ 2.31 database, version-specific rules use defaults")
	}
	if tr.Extensions, err = pg.Extensions(ctx, tx); err != nil {
		return nil, err
	}
	tables, err := pg.Tables(ctx, tx)
	if err != nil {
		return nil, err
	}
	var dump []pg.Table
	for _, t := range tables {
		if reason := rules.Reason(t.Schema, t.Name); reason != "" {
			tr.Excluded = append(tr.Excluded, dhis2.Exclusion{Schema: t.Schema, Name: t.Name, Reason: reason})
			continue
		}
		dump = append(dump, t)
	}
	// Lock what we read, as pg_dump does, so concurrent DDL cannot drop a table under us.
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.Qualified()
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS SHARE MODE"); err != nil {
			return nil, fmt.Errorf("locking tables for the dump (is a migration running?): %w", err)
		}
	}
	var nLO int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&nLO); err == nil && nLO > 0 {
		tr.Warnings = append(tr.Warnings, fmt.Sprintf("%d large objects are not included (DHIS2 does not use them)", nLO))
	}
	return dump, nil
}

// writeStream writes the stream: the schema archive, every table's rows, then the trailer
// with the row counts and sequences.
func writeStream(ctx context.Context, tx pgx.Tx, o DumpOptions, tr *manifest.Trailer, dump []pg.Table, out io.Writer) error {
	sw, err := dumpfmt.NewWriter(out)
	if err != nil {
		return fmt.Errorf("writing stream: %w", err)
	}
	if err := sw.SetCuts(o.Cuts); err != nil {
		return err
	}
	if err := dumpSchema(ctx, o, tr.Server.VersionNum/10000, tr.Snapshot, sw); err != nil {
		return err
	}
	// A cut after every section: the next one starts a restic chunk of its own whenever
	// 512 KiB lie since the last cut, so an unchanged table dedups after a grown one.
	if err := sw.Cut(); err != nil {
		return err
	}
	for _, t := range streamOrder(dump) {
		order := dhis2.OrderBy(t, o.OrderedTables)
		mt, err := copyTable(ctx, tx, t, order, sw)
		if err != nil {
			return err
		}
		tr.Tables = append(tr.Tables, mt)
		// After a large table a long cut (cut, pad, cut): its tail is what grows, and a plain
		// cut cannot end a chunk less than 512 KiB after restic's last cut in that tail.
		cut := sw.Cut
		if t.Bytes >= smallTableBytes {
			cut = sw.LongCut
		}
		if err := cut(); err != nil {
			return err
		}
	}
	if tr.Sequences, err = pg.Sequences(ctx, tx); err != nil {
		return err
	}
	tb, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	if err := sw.Begin(dumpfmt.Header{Kind: dumpfmt.KindTrailer}); err != nil {
		return err
	}
	if _, err := sw.Write(tb); err != nil {
		return err
	}
	if err := sw.End(); err != nil {
		return err
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("writing stream: %w", err)
	}
	return nil
}

// smallTableBytes is the size below which a table is dumped last, next to the trailer.
const smallTableBytes = 2 << 20

// streamOrder returns the order of the table sections: tables of smallTableBytes and more
// by schema and name, then the smaller ones, largest size class first (then by schema and
// name), so the smallest sit right before the trailer.
//
// The trailer (row counts, sequences, time) makes the stream's last restic chunk new every
// day, and restic cuts no chunk before 512 KiB: the small tables that change every day
// (periods, file resources, users' last logins, job times, settings) then share that chunk
// or the few before it instead of each costing a chunk of its own wherever its name puts it
// (bench/cmd/chunkattr measured 1.9 MB a day for the period table's chunk alone). A size
// class (a power of two) changes rarely, so the order is stable from day to day.
func streamOrder(tables []pg.Table) []pg.Table {
	out := append([]pg.Table(nil), tables...)
	class := func(t pg.Table) int {
		if t.Bytes >= smallTableBytes {
			return 64
		}
		return bits.Len64(uint64(max(t.Bytes, 0)) >> 13)
	}
	sort.SliceStable(out, func(i, j int) bool {
		ci, cj := class(out[i]), class(out[j])
		if ci != cj {
			return ci > cj
		}
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// dumpSchema runs pg_dump --schema-only on the exported snapshot into a schema section.
func dumpSchema(ctx context.Context, o DumpOptions, major int, snapshot string, sw *dumpfmt.Writer) error {
	tool, cleanup, err := pg.ToolIn(o.PGBinDir, "pg_dump", major, o.Conn, o.TempDir)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := pg.CheckDumpVersion(ctx, tool, major); err != nil {
		return err
	}
	if err := sw.Begin(dumpfmt.Header{Kind: dumpfmt.KindSchema}); err != nil {
		return err
	}
	cmd := tool.Command(ctx, "--format=custom", "--compress=0", "--schema-only", "--snapshot="+snapshot, "--no-sync")
	var stderr bytes.Buffer
	head := &stableHead{w: sw}
	cmd.Stdout = head
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_dump --schema-only failed: %v: %s", err, strings.TrimSpace(lastLine(stderr.String())))
	}
	if err := head.Close(); err != nil {
		return err
	}
	return sw.End()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// copyTable streams one table's rows in COPY text format.
func copyTable(ctx context.Context, tx pgx.Tx, t pg.Table, order []string, sw *dumpfmt.Writer) (manifest.Table, error) {
	mt := manifest.Table{Schema: t.Schema, Name: t.Name, OrderBy: order}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = pg.QuoteIdent(c)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM ONLY " + t.Qualified()
	if len(cols) == 0 {
		q = "SELECT FROM ONLY " + t.Qualified()
	}
	if len(order) > 0 {
		oc := make([]string, len(order))
		for i, c := range order {
			oc[i] = pg.QuoteIdent(c)
		}
		q += " ORDER BY " + strings.Join(oc, ", ")
	}
	if err := sw.Begin(dumpfmt.Header{Kind: dumpfmt.KindTable, Schema: t.Schema, Name: t.Name, Columns: t.Columns, OrderBy: order}); err != nil {
		return mt, err
	}
	cw := &countingWriter{w: sw}
	tag, err := tx.Conn().PgConn().CopyTo(ctx, cw, "COPY ("+q+") TO STDOUT")
	if err != nil {
		return mt, fmt.Errorf("dumping table %s: %w", t.Key(), err)
	}
	mt.Rows = tag.RowsAffected()
	mt.StreamBytes = cw.n
	return mt, sw.End()
}
