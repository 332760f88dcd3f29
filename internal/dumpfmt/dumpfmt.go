package dumpfmt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Magic starts every stream the Writer writes: format 2, which may hold cut elements.
const Magic = "DHIS2LIFE-DBSTREAM 2\n"

// MagicV1 starts streams written before cut elements existed (before issue 16); the Reader
// reads both.
const MagicV1 = "DHIS2LIFE-DBSTREAM 1\n"

// Stream layout after Magic: a sequence of sections, each
//
//	ESC 'H' <header JSON> ESC 'B' <body> ESC 'E'
//
// then ESC 'Z'. Between sections, ESC 'C' and CutMarkerSize bytes (no ESC among them) is a
// cut element and ESC 'P' and any bytes up to the next ESC a pad element; readers skip both. Inside header and body, a literal ESC byte is written as ESC 0x00. Every
// marker depends only on the bytes around it, so an edit early in the stream does not shift
// the framing of what follows (a length-prefixed format would).
const (
	esc       = 0xFF
	mLiteral  = 0x00
	mHeader   = 'H'
	mBody     = 'B'
	mEnd      = 'E'
	mStreamZ  = 'Z'
	mCut      = 'C'
	mPad      = 'P'
	chunkSize = 256 * 1024
)

// Section kinds.
const (
	KindSchema  = "schema"  // pg_dump custom-format archive (--schema-only)
	KindTable   = "table"   // COPY text-format rows of one table
	KindTrailer = "trailer" // JSON written by the producer after everything else
)

// Header introduces a section.
type Header struct {
	Kind    string   `json:"kind"`
	Schema  string   `json:"schema,omitempty"`
	Name    string   `json:"name,omitempty"`
	Columns []string `json:"columns,omitempty"`
	OrderBy []string `json:"order_by,omitempty"`
}

// ErrCorrupt is returned for streams that do not follow the format.
var ErrCorrupt = errors.New("database stream is corrupt")

// Writer writes a stream.
type Writer struct {
	w      *bufio.Writer
	open   bool
	closed bool
	cuts   *Cuts // what Cut and LongCut write; nil = none
}

// NewWriter writes Magic and returns a Writer.
func NewWriter(w io.Writer) (*Writer, error) {
	bw := bufio.NewWriterSize(w, chunkSize)
	if _, err := bw.WriteString(Magic); err != nil {
		return nil, err
	}
	return &Writer{w: bw}, nil
}

// Begin starts a section; write its body to the Writer, then call End.
func (w *Writer) Begin(h Header) error {
	if w.open || w.closed {
		return errors.New("dumpfmt: Begin while a section is open or after Close")
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if _, err := w.w.Write([]byte{esc, mHeader}); err != nil {
		return err
	}
	if err := w.stuff(hb); err != nil {
		return err
	}
	if _, err := w.w.Write([]byte{esc, mBody}); err != nil {
		return err
	}
	w.open = true
	return nil
}

// Write writes body bytes of the open section.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.open {
		return 0, errors.New("dumpfmt: Write outside a section")
	}
	if err := w.stuff(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *Writer) stuff(p []byte) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, esc)
		if i < 0 {
			_, err := w.w.Write(p)
			return err
		}
		if _, err := w.w.Write(p[:i]); err != nil {
			return err
		}
		if _, err := w.w.Write([]byte{esc, mLiteral}); err != nil {
			return err
		}
		p = p[i+1:]
	}
	return nil
}

// SetCuts sets what Cut and LongCut write (see NewCuts); nil turns cuts off.
func (w *Writer) SetCuts(c *Cuts) error {
	if c == nil {
		w.cuts = nil
		return nil
	}
	if len(c.Marker) != CutMarkerSize || bytes.IndexByte(c.Marker, esc) >= 0 || bytes.IndexByte(c.Pad, esc) >= 0 {
		return fmt.Errorf("dumpfmt: a cut marker is %d bytes and neither it nor the pad holds 0xFF (marker %d bytes)", CutMarkerSize, len(c.Marker))
	}
	w.cuts = c
	return nil
}

// Cut writes a cut element (ESC 'C' and the marker) between two sections, so that restic's
// chunker ends a chunk right after it when the chunk holds its minimum size by then; without
// cuts it writes nothing.
func (w *Writer) Cut() error {
	if w.cuts == nil {
		return nil
	}
	if w.open || w.closed {
		return errors.New("dumpfmt: Cut inside a section or after Close")
	}
	if _, err := w.w.Write([]byte{esc, mCut}); err != nil {
		return err
	}
	_, err := w.w.Write(w.cuts.Marker)
	return err
}

// LongCut writes a cut, a pad element (ESC 'P' and the pad) and a second cut. The second cut
// always ends a chunk: at least the pad's 512 KiB lie since the previous chunk end, whether
// or not the first cut ended one (it cannot when restic cut less than 512 KiB before it). So
// the next section starts a chunk at the same place every day. The pad is the same text every
// time and compresses to almost nothing.
func (w *Writer) LongCut() error {
	if w.cuts == nil || len(w.cuts.Pad) == 0 {
		return w.Cut()
	}
	if err := w.Cut(); err != nil {
		return err
	}
	if _, err := w.w.Write([]byte{esc, mPad}); err != nil {
		return err
	}
	if _, err := w.w.Write(w.cuts.Pad); err != nil {
		return err
	}
	return w.Cut()
}

// End ends the open section.
func (w *Writer) End() error {
	if !w.open {
		return errors.New("dumpfmt: End without Begin")
	}
	w.open = false
	_, err := w.w.Write([]byte{esc, mEnd})
	return err
}

// Close writes the end-of-stream marker and flushes. A stream without it is incomplete.
func (w *Writer) Close() error {
	if w.open {
		return errors.New("dumpfmt: Close with an open section")
	}
	if w.closed {
		return nil
	}
	w.closed = true
	if _, err := w.w.Write([]byte{esc, mStreamZ}); err != nil {
		return err
	}
	return w.w.Flush()
}

// Reader reads a stream section by section.
type Reader struct {
	r      *bufio.Reader
	inBody bool
	done   bool
	err    error
}

// NewReader checks Magic and returns a Reader.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, chunkSize)
	m := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, m); err != nil {
		if !isEOF(err) {
			return nil, fmt.Errorf("reading the database stream: %w", err)
		}
		return nil, fmt.Errorf("%w: reading header: %v", ErrCorrupt, err)
	}
	if string(m) != Magic && string(m) != MagicV1 {
		if bytes.HasPrefix(m, []byte("DHIS2LIFE-DBSTREAM ")) {
			return nil, fmt.Errorf("%w: stream format %q is newer than this dhis2-life reads; use a newer dhis2-life", ErrCorrupt, bytes.TrimSpace(m[len("DHIS2LIFE-DBSTREAM "):]))
		}
		return nil, fmt.Errorf("%w: not a dhis2-life database stream", ErrCorrupt)
	}
	return &Reader{r: br}, nil
}

// Next returns the next section's header; io.EOF after the end-of-stream marker. Unread body
// bytes of the previous section are skipped.
func (r *Reader) Next() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.inBody {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, err
		}
	}
	if r.done {
		return nil, io.EOF
	}
	for {
		b0, err := r.r.ReadByte()
		if err != nil {
			return nil, r.failRead(err, "stream ends without its end marker (was the dump interrupted?)")
		}
		b1, err := r.r.ReadByte()
		if err != nil {
			return nil, r.failRead(err, "expected a section header")
		}
		if b0 != esc {
			return nil, r.fail("expected a section header")
		}
		switch b1 {
		case mStreamZ:
			r.done = true
			return nil, io.EOF
		case mCut:
			if _, err := r.r.Discard(CutMarkerSize); err != nil {
				return nil, r.failRead(err, "truncated cut element")
			}
			continue
		case mPad:
			if err := r.skipPad(); err != nil {
				return nil, err
			}
			continue
		case mHeader:
		default:
			return nil, r.fail(fmt.Sprintf("unexpected marker %#x", b1))
		}
		break
	}
	var hb []byte
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			return nil, r.failRead(err, "truncated section header")
		}
		if c != esc {
			hb = append(hb, c)
			if len(hb) > 1<<20 {
				return nil, r.fail("section header too long")
			}
			continue
		}
		m, err := r.r.ReadByte()
		if err != nil {
			return nil, r.failRead(err, "truncated section header")
		}
		if m == mLiteral {
			hb = append(hb, esc)
			continue
		}
		if m != mBody {
			return nil, r.fail("bad marker in section header")
		}
		break
	}
	var h Header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, r.fail("section header is not JSON")
	}
	r.inBody = true
	return &h, nil
}

// skipPad discards a pad element's bytes, up to the next ESC.
func (r *Reader) skipPad() error {
	for {
		buf, err := r.r.Peek(1)
		if err != nil || len(buf) == 0 {
			return r.failRead(err, "stream ends inside a pad element")
		}
		buf, _ = r.r.Peek(r.r.Buffered())
		if i := bytes.IndexByte(buf, esc); i >= 0 {
			r.r.Discard(i)
			return nil
		}
		r.r.Discard(len(buf))
	}
}

func (r *Reader) fail(msg string) error {
	r.err = fmt.Errorf("%w: %s", ErrCorrupt, msg)
	return r.err
}

// failRead fails on a read error: the stream is corrupt when it simply ends, but an error of
// the underlying reader (e.g. restic dump failing) is returned as the cause.
func (r *Reader) failRead(err error, msg string) error {
	if isEOF(err) {
		return r.fail(msg)
	}
	r.err = fmt.Errorf("reading the database stream: %w", err)
	return r.err
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

// Read reads body bytes of the current section; io.EOF at its end.
func (r *Reader) Read(p []byte) (int, error) {
	if !r.inBody {
		return 0, io.EOF
	}
	if r.err != nil {
		return 0, r.err
	}
	n := 0
	for n < len(p) {
		buf, err := r.r.Peek(1)
		if err != nil || len(buf) == 0 {
			if n > 0 {
				return n, nil
			}
			return 0, r.failRead(err, "stream ends inside a section (was the dump interrupted?)")
		}
		avail := r.r.Buffered()
		buf, _ = r.r.Peek(avail)
		if i := bytes.IndexByte(buf, esc); i != 0 {
			if i < 0 {
				i = len(buf)
			}
			c := copy(p[n:], buf[:i])
			r.r.Discard(c)
			n += c
			continue
		}
		// escape sequence
		pair, err := r.r.Peek(2)
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, r.failRead(err, "truncated escape sequence")
		}
		switch pair[1] {
		case mLiteral:
			p[n] = esc
			n++
			r.r.Discard(2)
		case mEnd:
			if n > 0 {
				return n, nil
			}
			r.r.Discard(2)
			r.inBody = false
			return 0, io.EOF
		default:
			return n, r.fail(fmt.Sprintf("bad marker %#x in section body", pair[1]))
		}
	}
	return n, nil
}
