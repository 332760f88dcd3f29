package restore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// Export formats.
const (
	FormatPlain  = "plain"  // SQL script for psql
	FormatCustom = "custom" // pg_dump custom archive for pg_restore
)

// ErrFormat is returned for an export format other than plain or custom.
var ErrFormat = errors.New("unknown export format")

// ExportOptions configure Export.
type ExportOptions struct {
	// Restore says where the set comes from (Config, Repo, Log, Manifest, or DBStream) and,
	// for the custom format, the server that holds the scratch database (Admin, else
	// Target; the database name is replaced).
	Restore Options
	// Format is FormatPlain or FormatCustom.
	Format string
	// Out receives the dump.
	Out io.Writer
	// PGBinDir optionally names the directory of pg_restore and pg_dump.
	PGBinDir string
}

// ExportResult describes a finished export.
type ExportResult struct {
	Set       string  `json:"set"`
	Format    string  `json:"format"`
	Tables    int     `json:"tables"`
	Rows      int64   `json:"rows"`
	Sequences int     `json:"sequences"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	ScratchDB string  `json:"scratch_database,omitempty"`
}

// Export turns a set's database stream into a standard dump: a plain SQL script written
// straight from the stream (the schema archive's pre-data as SQL, every table as a COPY
// block, the sequences, then the post-data), or a custom archive for pg_restore made by
// restoring into a scratch database and running pg_dump on it.
func Export(ctx context.Context, o ExportOptions) (*ExportResult, error) {
	start := time.Now()
	m := o.Restore.Manifest
	res := &ExportResult{Set: m.ID, Format: o.Format}
	cw := &countWriter{w: o.Out}
	var err error
	switch o.Format {
	case FormatPlain:
		err = withStream(ctx, &o.Restore, func(r io.Reader) error {
			st, err := WritePlain(ctx, r, cw, PlainOptions{TempDir: o.Restore.Config.Tuning.TempDir, PGBinDir: o.PGBinDir,
				ServerMajor: m.Server.VersionNum / 10000, Title: fmt.Sprintf("set %s of instance %s (%s)", m.ID, m.Instance, m.Time.UTC().Format(time.RFC3339))})
			if st != nil {
				res.Tables, res.Rows, res.Sequences = st.Tables, st.Rows, st.Sequences
			}
			return err
		})
	case FormatCustom:
		err = exportCustom(ctx, o, res, cw)
	default:
		return nil, fmt.Errorf("%w %q: use %s or %s", ErrFormat, o.Format, FormatPlain, FormatCustom)
	}
	if err != nil {
		return nil, fmt.Errorf("exporting set %s: %w", m.ID, err)
	}
	res.Bytes, res.Seconds = cw.n, time.Since(start).Seconds()
	return res, nil
}

// withStream opens the set's database stream (o.DBStream, else `restic dump` of the db
// part) and hands it to consume; a failure of either side is returned.
func withStream(ctx context.Context, o *Options, consume func(io.Reader) error) error {
	s, err := openStream(ctx, o)
	if err != nil {
		return err
	}
	return s.consume(consume)
}

// dbStream is the database part being read (o.DBStream, else `restic dump`) into a pipe.
// Nothing is read beyond what the pipe holds until it is consumed, so it may be opened
// before the target is ready: restic's start (repository open, key derivation, index load)
// then overlaps the creation of the target database.
type dbStream struct {
	r      *io.PipeReader
	cancel context.CancelFunc
	done   chan error
}

// openStream starts reading the set's database part.
func openStream(ctx context.Context, o *Options) (*dbStream, error) {
	m := o.Manifest
	part, ok := m.Parts["db"]
	if o.DBStream == nil && (!ok || part.Snapshot == "") {
		return nil, fmt.Errorf("set %s has no database part", m.ID)
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	s := &dbStream{r: pr, cancel: cancel, done: make(chan error, 1)}
	go func() {
		var err error
		if o.DBStream != nil {
			err = copyFrom(ctx, o.DBStream, pw)
		} else {
			err = o.Repo.Dump(ctx, part.Snapshot, "/"+manifest.DBFile, pw)
		}
		pw.CloseWithError(err)
		s.done <- err
	}()
	return s, nil
}

// consume hands the stream to fn, reads what fn left and waits for the reader: a failure
// of either side is returned.
func (s *dbStream) consume(fn func(io.Reader) error) error {
	defer s.cancel()
	if err := fn(s.r); err != nil {
		s.abort(err)
		return err
	}
	_, _ = io.Copy(io.Discard, s.r)
	if err := <-s.done; err != nil {
		return fmt.Errorf("reading the database part from the repository: %w", err)
	}
	return nil
}

// abort stops the reader (restic is killed) and waits for it.
func (s *dbStream) abort(err error) {
	s.cancel()
	s.r.CloseWithError(err)
	<-s.done
}

// PlainOptions configure WritePlain.
type PlainOptions struct {
	TempDir     string // for the schema archive (a few MB)
	PGBinDir    string // pg_restore's directory ("" = by ServerMajor, then PATH)
	ServerMajor int    // the dumped server's major version
	Title       string // named in the script's first comment
}

// PlainStats counts what WritePlain wrote.
type PlainStats struct {
	Tables, Sequences int
	Rows              int64
}

// WritePlain writes a psql script from a database stream (see internal/dumpfmt): the
// schema's pre-data (pg_restore -f -, without owners and privileges, so any role can load
// it), one COPY … FROM stdin block per table as the stream holds it, setval for every
// sequence, the post-data (indexes, constraints, triggers) and a REFRESH of every
// materialized view. Load it with `psql -v ON_ERROR_STOP=1 -f FILE` into an empty database
// as a role that may create the extensions (postgis is not trusted).
func WritePlain(ctx context.Context, r io.Reader, out io.Writer, o PlainOptions) (*PlainStats, error) {
	sr, err := dumpfmt.NewReader(r)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.TempDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating temp dir: %w", err)
	}
	work, err := os.MkdirTemp(o.TempDir, "export-")
	if err != nil {
		return nil, fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(work)
	w := bufio.NewWriterSize(out, 256<<10)

	// The schema archive, kept for pre-data now and post-data at the end.
	schemaFile, err := saveSchema(sr, work)
	if err != nil {
		return nil, err
	}
	tool, cleanup, err := pg.ToolIn(o.PGBinDir, "pg_restore", o.ServerMajor, pg.Conn{}, work)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	fmt.Fprintf(w, "--\n-- dhis2-life export: %s\n-- Load into an empty database: psql -v ON_ERROR_STOP=1 -f FILE\n--\n\n", o.Title)
	if err := sqlOf(ctx, tool, schemaFile, "pre-data", w); err != nil {
		return nil, err
	}

	// The data, table by table as the stream holds it, then the sequences from the trailer.
	st := &PlainStats{}
	var tr *manifest.Trailer
	for {
		h, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch h.Kind {
		case dumpfmt.KindTable:
			if err := writeCopy(w, h, sr, st); err != nil {
				return nil, err
			}
		case dumpfmt.KindTrailer:
			tr = &manifest.Trailer{}
			if err := json.NewDecoder(sr).Decode(tr); err != nil {
				return nil, fmt.Errorf("%w: trailer: %v", dumpfmt.ErrCorrupt, err)
			}
		default:
			return nil, fmt.Errorf("%w: unexpected section %q", dumpfmt.ErrCorrupt, h.Kind)
		}
	}
	if tr == nil {
		return nil, fmt.Errorf("%w: stream has no trailer", dumpfmt.ErrCorrupt)
	}
	if len(tr.Sequences) > 0 {
		fmt.Fprintf(w, "\n-- Sequences\n")
	}
	for _, s := range tr.Sequences {
		fmt.Fprintf(w, "SELECT pg_catalog.setval(%s, %d, %t);\n", pg.QuoteLiteral(pg.QualifiedName(s.Schema, s.Name)), s.LastValue, s.IsCalled)
		st.Sequences++
	}
	fmt.Fprintln(w)

	// Indexes, constraints, triggers; then fill the materialized views, which a schema-only
	// dump creates WITH NO DATA.
	if err := sqlOf(ctx, tool, schemaFile, "post-data", w); err != nil {
		return nil, err
	}
	mvs, err := matviews(ctx, tool, schemaFile)
	if err != nil {
		return nil, err
	}
	for _, mv := range mvs {
		fmt.Fprintf(w, "REFRESH MATERIALIZED VIEW %s;\n", mv)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("writing the export: %w", err)
	}
	return st, nil
}

// saveSchema copies the stream's first section, pg_dump's schema archive, to a file.
func saveSchema(sr *dumpfmt.Reader, dir string) (string, error) {
	h, err := sr.Next()
	if err != nil {
		return "", err
	}
	if h.Kind != dumpfmt.KindSchema {
		return "", fmt.Errorf("%w: first section is %q, want schema", dumpfmt.ErrCorrupt, h.Kind)
	}
	p := filepath.Join(dir, "schema.dump")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("writing schema archive: %w", err)
	}
	if _, err := io.Copy(f, sr); err != nil {
		f.Close()
		return "", fmt.Errorf("writing schema archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing schema archive: %w", err)
	}
	return p, nil
}

// sqlOf writes one section of the schema archive as SQL.
func sqlOf(ctx context.Context, tool *pg.Tool, archive, section string, w io.Writer) error {
	cmd := exec.CommandContext(ctx, tool.Path, "--no-owner", "--no-privileges", "--section="+section, "--file=-", archive)
	cmd.Env = append(os.Environ(), tool.Env...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_restore --section=%s: %v: %s", section, err, toolError(stderr.String()))
	}
	return nil
}

// matviews lists the archive's materialized views, quoted and schema-qualified.
func matviews(ctx context.Context, tool *pg.Tool, archive string) ([]string, error) {
	cmd := exec.CommandContext(ctx, tool.Path, "--list", archive)
	cmd.Env = append(os.Environ(), tool.Env...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("reading the schema archive's contents: %w", exitDetail(err))
	}
	var mvs []string
	for _, l := range strings.Split(string(out), "\n") {
		// "2345; 1259 16444 MATERIALIZED VIEW public name owner"
		_, rest, ok := strings.Cut(l, " MATERIALIZED VIEW ")
		if !ok || strings.HasPrefix(l, ";") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 2 {
			mvs = append(mvs, pg.QualifiedName(f[0], f[1]))
		}
	}
	return mvs, nil
}

// writeCopy writes one table section as a COPY block: the section holds COPY text-format
// rows, which is what COPY … FROM stdin reads.
func writeCopy(w *bufio.Writer, h *dumpfmt.Header, body io.Reader, st *PlainStats) error {
	cols := make([]string, len(h.Columns))
	for i, c := range h.Columns {
		cols[i] = pg.QuoteIdent(c)
	}
	target := pg.QualifiedName(h.Schema, h.Name)
	if len(cols) > 0 {
		target += " (" + strings.Join(cols, ", ") + ")"
	}
	fmt.Fprintf(w, "\n-- Data of %s.%s\nCOPY %s FROM stdin;\n", h.Schema, h.Name, target)
	lc := &lineCounter{w: w}
	if _, err := io.Copy(lc, body); err != nil {
		return fmt.Errorf("reading the data of %s.%s: %w", h.Schema, h.Name, err)
	}
	if lc.last != 0 && lc.last != '\n' {
		return fmt.Errorf("%w: the data of %s.%s does not end with a newline", dumpfmt.ErrCorrupt, h.Schema, h.Name)
	}
	if _, err := w.WriteString("\\.\n"); err != nil {
		return fmt.Errorf("writing the export: %w", err)
	}
	st.Tables++
	st.Rows += lc.lines
	return nil
}

// lineCounter counts the lines (COPY rows) written through it.
type lineCounter struct {
	w     io.Writer
	lines int64
	last  byte
}

func (c *lineCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	for _, b := range p[:n] {
		if b == '\n' {
			c.lines++
		}
	}
	if n > 0 {
		c.last = p[n-1]
	}
	return n, err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// exportCustom restores the set into a scratch database on the admin server, runs
// pg_dump --format=custom on it into out, and drops it again.
func exportCustom(ctx context.Context, o ExportOptions, res *ExportResult, out io.Writer) error {
	m := o.Restore.Manifest
	base := o.Restore.Target
	if o.Restore.Admin != nil {
		base = *o.Restore.Admin
	}
	if base.DSN == "" {
		return errors.New("the custom format needs a PostgreSQL server for a scratch database: configure the instance's admin_database")
	}
	scratch := "dhis2life_export_" + unsafeChars.ReplaceAllString(strings.ToLower(m.ID), "_")
	res.ScratchDB = scratch
	ro := o.Restore
	ro.Target = base.WithDatabase(scratch)
	ro.FilesTo, ro.SkipDatabase = "", false
	ro.Force, ro.Terminate, ro.SkipAnalyze = true, true, true
	if ro.Owner == "" {
		ro.Owner = base.User()
	}
	if ro.Jobs < 1 {
		ro.Jobs = 2
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := dropDatabase(cctx, &ro, scratch); err != nil {
			ro.Log.Warn("could not drop the export's scratch database", "database", scratch, "err", err)
		}
	}()
	rr, err := Restore(ctx, ro)
	if err != nil {
		return err
	}
	res.Tables, res.Rows, res.Sequences = rr.Tables, rr.Rows, rr.Sequences
	major := m.Server.VersionNum / 10000
	tool, cleanup, err := pg.ToolIn(o.PGBinDir, "pg_dump", major, ro.Target, ro.Config.Tuning.TempDir)
	if err != nil {
		return err
	}
	defer cleanup()
	cmd := tool.Command(ctx, "--format=custom", "--no-sync")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_dump of the scratch database %s: %v: %s", scratch, err, toolError(stderr.String()))
	}
	return nil
}
