package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
)

// splitMinBytes is the default stream size from which a table is loaded by several connections at
// once: its rows are cut into row-aligned chunks that whichever COPY is free takes next.
const splitMinBytes = 64 << 20

// splitChunk is the size of one chunk of a split table (memory: a few of them per part).
const splitChunk = 1 << 20

// chunkReader is one COPY's share of a split table: the chunks it takes from the queue.
type chunkReader struct {
	chunks <-chan []byte
	free   chan<- []byte
	cur    []byte
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.buf != nil {
			r.free <- r.buf[:0]
			r.buf = nil
		}
		b, ok := <-r.chunks
		if !ok {
			return 0, io.EOF
		}
		r.buf, r.cur = b, b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// splitConns returns the n-1 connections that load a split table beside the direct one,
// opening them the first time.
func (l *loader) splitConns(n int) ([]*pgx.Conn, error) {
	for len(l.extra) < n-1 {
		c, err := l.open()
		if err != nil {
			return nil, err
		}
		l.extra = append(l.extra, c)
	}
	return l.extra[:n-1], nil
}

// loadSplit loads one big table on parts connections at once. Rows in COPY's text format
// end at a newline byte (a newline inside a value is written as \n), so chunks cut after a
// newline hold whole rows; the row counts of the parts add up to the table's.
func (l *loader) loadSplit(h *dumpfmt.Header, sr io.Reader, parts int) error {
	key := h.Schema + "." + h.Name
	extra, err := l.splitConns(parts)
	if err != nil {
		return fmt.Errorf("loading table %s: %w", key, err)
	}
	conns := append([]*pgx.Conn{l.direct}, extra...)
	ctx, cancel := context.WithCancelCause(l.ctx)
	defer cancel(nil)
	chunks := make(chan []byte)
	free := make(chan []byte, 2*parts+1)
	for i := 0; i < cap(free); i++ {
		free <- make([]byte, 0, splitChunk+64<<10)
	}
	start := time.Now()
	var wg sync.WaitGroup
	rows := make([]int64, len(conns))
	errs := make([]error, len(conns))
	q := copyQuery(h)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr := &chunkReader{chunks: chunks, free: free}
			tag, err := c.PgConn().CopyFrom(ctx, cr, q)
			if err != nil {
				errs[i] = err
				cancel(err)
				// drain so the feeder never blocks on a failed part
				for b := range chunks {
					free <- b[:0]
				}
				return
			}
			rows[i] = tag.RowsAffected()
		}()
	}
	ferr := feedChunks(ctx, sr, chunks, free)
	close(chunks)
	wg.Wait()
	var total int64
	for i := range conns {
		total += rows[i]
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loading table %s: %w%s", key, err, diskHint(err.Error()))
	}
	if ferr != nil {
		return fmt.Errorf("loading table %s: %w", key, ferr)
	}
	if exp, ok := l.want[key]; ok && exp != total {
		return fmt.Errorf("loading table %s: %d rows loaded, manifest says %d", key, total, exp)
	}
	l.done(key, total, start, fmt.Sprintf("split %d", parts))
	return nil
}

// feedChunks reads sr into row-aligned chunks for the parts.
func feedChunks(ctx context.Context, sr io.Reader, chunks chan<- []byte, free chan []byte) error {
	var carry []byte
	for {
		var b []byte
		select {
		case b = <-free:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		b = append(b, carry...)
		need := splitChunk
		if len(b) >= need { // a row longer than a chunk: read on until it ends
			need = len(b) + splitChunk
		}
		if cap(b) < need {
			b = append(make([]byte, 0, need), b...)
		}
		n, err := io.ReadAtLeast(sr, b[len(b):need], need-len(b))
		b = b[:len(b)+n]
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			free <- b[:0]
			return err
		}
		cut := bytes.LastIndexByte(b, '\n') + 1
		carry = append(carry[:0], b[cut:]...)
		b = b[:cut]
		if len(b) > 0 {
			select {
			case chunks <- b:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		} else {
			free <- b[:0]
		}
		if eof {
			if len(carry) > 0 {
				return fmt.Errorf("%w: table data ends inside a row", dumpfmt.ErrCorrupt)
			}
			return nil
		}
	}
}
