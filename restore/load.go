package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// loader loads the table sections of a stream on several connections. When a worker
// connection is idle and the table fits the spool budget, the section is copied to a
// temporary file at disk speed and the worker loads it while the stream goes on; otherwise
// the table is loaded straight from the stream on the reader's own connection. So two
// tables load at once (like pg_restore -j2) with bounded temporary disk.
type loader struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	conn   pg.Conn
	setup  []string
	dir    string
	want   map[string]int64 // rows per table (manifest)
	size   map[string]int64 // stream bytes per table (manifest)
	direct *pgx.Conn
	budget int64
	// parts is how many connections load a table of splitMinBytes or more at once.
	parts    int
	splitMin int64
	extra    []*pgx.Conn // the split loads' connections beside direct
	// loaded, when set, is called with "schema.name" once a table's rows are all in.
	loaded func(table string)
	log    *slog.Logger

	idle chan struct{} // one token per idle worker
	jobs chan spoolJob
	wg   sync.WaitGroup

	mu     sync.Mutex
	tables int
	rows   int64
}

type spoolJob struct {
	h    *dumpfmt.Header
	path string
}

func newLoader(ctx context.Context, conn pg.Conn, setup []string, dir string, workers int, budget int64, want, size map[string]int64) (*loader, error) {
	lctx, cancel := context.WithCancelCause(ctx)
	l := &loader{ctx: lctx, cancel: cancel, conn: conn, setup: setup, dir: dir, want: want, size: size, budget: budget}
	var err error
	if l.direct, err = l.open(); err != nil {
		cancel(err)
		return nil, err
	}
	if budget <= 0 {
		workers = 0
	}
	l.idle = make(chan struct{}, workers)
	l.jobs = make(chan spoolJob)
	for i := 0; i < workers; i++ {
		c, err := l.open()
		if err != nil {
			l.close()
			return nil, err
		}
		l.wg.Add(1)
		go l.work(c)
		l.idle <- struct{}{}
	}
	return l, nil
}

func (l *loader) open() (*pgx.Conn, error) {
	c, err := l.conn.Connect(l.ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range l.setup {
		if _, err := c.Exec(l.ctx, s); err != nil {
			c.Close(context.Background())
			return nil, fmt.Errorf("preparing data load (%s): %w", s, err)
		}
	}
	return c, nil
}

func copyQuery(h *dumpfmt.Header) string {
	q := "COPY " + pg.QualifiedName(h.Schema, h.Name)
	if len(h.Columns) > 0 { // a table without columns takes no column list
		cols := make([]string, len(h.Columns))
		for i, c := range h.Columns {
			cols[i] = pg.QuoteIdent(c)
		}
		q += " (" + strings.Join(cols, ", ") + ")"
	}
	return q + " FROM STDIN"
}

// load copies rows from r into the table of h on c and checks the row count.
func (l *loader) load(c *pgx.Conn, h *dumpfmt.Header, r io.Reader) error {
	key := h.Schema + "." + h.Name
	start := time.Now()
	tag, err := c.PgConn().CopyFrom(l.ctx, r, copyQuery(h))
	if err != nil {
		return fmt.Errorf("loading table %s: %w%s", key, err, diskHint(err.Error()))
	}
	if exp, ok := l.want[key]; ok && exp != tag.RowsAffected() {
		return fmt.Errorf("loading table %s: %d rows loaded, manifest says %d", key, tag.RowsAffected(), exp)
	}
	how := "spooled"
	if c == l.direct {
		how = "streamed"
	}
	l.done(key, tag.RowsAffected(), start, how)
	return nil
}

// done counts a loaded table and says so.
func (l *loader) done(key string, rows int64, start time.Time, how string) {
	l.mu.Lock()
	l.tables++
	l.rows += rows
	l.mu.Unlock()
	if l.log != nil {
		l.log.Debug("loaded", "table", key, "rows", rows, "seconds", time.Since(start).Seconds(), "how", how)
	}
	if l.loaded != nil {
		l.loaded(key)
	}
}

// Table loads one table section read from sr.
func (l *loader) Table(h *dumpfmt.Header, sr io.Reader) error {
	if err := context.Cause(l.ctx); err != nil {
		return err
	}
	size, ok := l.size[h.Schema+"."+h.Name]
	if ok && l.parts > 1 && size >= l.splitMin {
		return l.loadSplit(h, sr, l.parts)
	}
	if ok && size <= l.budget {
		select {
		case <-l.idle:
			f, err := os.CreateTemp(l.dir, "table-*.copy")
			if err == nil {
				_, err = io.Copy(f, sr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				if f != nil {
					os.Remove(f.Name())
				}
				l.idle <- struct{}{}
				return fmt.Errorf("spooling table %s.%s to %s: %w", h.Schema, h.Name, l.dir, err)
			}
			l.jobs <- spoolJob{h: h, path: f.Name()}
			return nil
		default:
		}
	}
	return l.load(l.direct, h, sr)
}

func (l *loader) work(c *pgx.Conn) {
	defer l.wg.Done()
	defer c.Close(context.Background())
	for j := range l.jobs {
		err := func() error {
			f, err := os.Open(j.path)
			if err != nil {
				return err
			}
			defer f.Close()
			return l.load(c, j.h, f)
		}()
		os.Remove(j.path)
		if err != nil {
			l.cancel(err)
		}
		l.idle <- struct{}{}
	}
}

// Wait waits for the workers and returns the first error of any of them.
func (l *loader) Wait() error {
	if l.jobs != nil {
		close(l.jobs)
		l.jobs = nil
	}
	l.wg.Wait()
	if err := context.Cause(l.ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return l.ctx.Err()
}

func (l *loader) close() {
	if l.jobs != nil {
		close(l.jobs)
		l.jobs = nil
	}
	l.wg.Wait()
	l.cancel(context.Canceled)
	l.direct.Close(context.Background())
	for _, c := range l.extra {
		c.Close(context.Background())
	}
}
