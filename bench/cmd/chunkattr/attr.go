package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"

	"github.com/restic/chunker"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
)

// Stream framing bytes (internal/dumpfmt): ESC 'H' header ESC 'B' body ESC 'E', ESC 0x00 is a
// literal 0xFF, ESC 'Z' ends the stream; between sections ESC 'C' and a 64-byte marker is a
// cut and ESC 'P' and the bytes up to the next ESC a pad.
const (
	esc     = 0xFF
	mHeader = 'H'
	mBody   = 'B'
	mEnd    = 'E'
	mCut    = 'C'
	mPad    = 'P'
)

// srcCuts names the bytes of cuts and pads.
const srcCuts = "cuts and pads"

// archiveHeaderBytes is how much of the schema section's body counts as pg_dump's archive
// header (magic, versions, creation time, database and server names); the rest is the TOC.
const archiveHeaderBytes = 256

// span is a source's byte range [Start, End) of the encoded stream.
type span struct {
	Source     string
	Start, End int64
}

// chunk is one content-defined chunk of the stream as restic cuts it.
type chunk struct {
	ID         string
	Start, Len int64
}

// sectionScanner finds the sections of an encoded stream as its bytes pass by.
type sectionScanner struct {
	off      int64
	prevEsc  bool
	inHeader bool
	header   []byte
	cur      *span
	spans    []span
	pad      *span // the open pad element
}

func (s *sectionScanner) Write(p []byte) (int, error) {
	for i, c := range p {
		at := s.off + int64(i)
		if c == esc && s.pad != nil {
			s.pad.End = at
			s.spans = append(s.spans, *s.pad)
			s.pad = nil
		}
		if s.prevEsc {
			s.prevEsc = false
			switch c {
			case mCut:
				if s.cur == nil {
					s.spans = append(s.spans, span{Source: srcCuts, Start: at - 1, End: at + 1 + dumpfmt.CutMarkerSize})
				}
			case mPad:
				if s.cur == nil {
					s.pad = &span{Source: srcCuts, Start: at - 1}
				}
			case mHeader:
				s.cur = &span{Start: at - 1}
				s.inHeader, s.header = true, s.header[:0]
			case mBody:
				s.inHeader = false
				if s.cur != nil {
					s.cur.Source = sourceOf(s.header)
					if s.cur.Source == "schema" {
						// The archive's header (which holds pg_dump's timestamp) apart from the rest.
						cut := at + 1 + archiveHeaderBytes
						s.spans = append(s.spans, span{Source: "schema: archive header (pg_dump timestamp)", Start: s.cur.Start, End: cut})
						s.cur = &span{Source: "schema: archive TOC", Start: cut}
					}
				}
			case mEnd:
				if s.cur != nil {
					s.cur.End = at + 1
					s.close()
				}
			case 0x00:
				if s.inHeader {
					s.header = append(s.header, esc)
				}
			}
			continue
		}
		if c == esc {
			s.prevEsc = true
			continue
		}
		if s.inHeader && len(s.header) < 1<<20 {
			s.header = append(s.header, c)
		}
	}
	s.off += int64(len(p))
	return len(p), nil
}

// close records the finished section.
func (s *sectionScanner) close() {
	s.spans = append(s.spans, *s.cur)
	s.cur = nil
}

func sourceOf(header []byte) string {
	var h struct {
		Kind, Schema, Name string
	}
	if json.Unmarshal(header, &h) != nil {
		return "unreadable section header"
	}
	if h.Kind == "table" {
		if h.Schema == "public" {
			return "table " + h.Name
		}
		return "table " + h.Schema + "." + h.Name
	}
	return h.Kind
}

// chunkStream cuts r as restic does (polynomial pol, restic's default boundaries), hashes
// every chunk (its restic blob ID) and finds the stream's sections.
func chunkStream(r io.Reader, pol chunker.Pol) ([]chunk, []span, map[string]string, int64, error) {
	sc := &sectionScanner{}
	ch := chunker.New(io.TeeReader(r, sc), pol)
	buf := make([]byte, chunker.MaxSize)
	var chunks []chunk
	hashers := map[string]hash.Hash{}
	hi := 0
	for {
		c, err := ch.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, 0, fmt.Errorf("chunking the stream: %w", err)
		}
		sum := sha256.Sum256(c.Data)
		chunks = append(chunks, chunk{ID: hex.EncodeToString(sum[:]), Start: int64(c.Start), Len: int64(c.Length)})
		// Hash each source's bytes in this chunk. The scanner has seen at least up to the
		// chunk's end (it reads ahead of the chunker), so every span in it is known.
		cs, ce := int64(c.Start), int64(c.Start+c.Length)
		for hi < len(sc.spans) && sc.spans[hi].End <= cs {
			hi++
		}
		known := sc.spans[hi:]
		if sc.cur != nil && sc.cur.Source != "" {
			known = append(known[:len(known):len(known)], span{Source: sc.cur.Source, Start: sc.cur.Start, End: ce})
		}
		for _, sp := range known {
			lo, up := max(cs, sp.Start), min(ce, sp.End)
			if up <= lo {
				continue
			}
			h, ok := hashers[sp.Source]
			if !ok {
				h = sha256.New()
				hashers[sp.Source] = h
			}
			h.Write(c.Data[lo-cs : up-cs])
		}
	}
	digests := map[string]string{}
	for k, h := range hashers {
		digests[k] = hex.EncodeToString(h.Sum(nil))
	}
	// Bytes outside every section: the magic line and the end marker.
	spans := sc.spans
	var framing []span
	at := int64(0)
	for _, s := range spans {
		if s.Start > at {
			framing = append(framing, span{Source: "stream framing", Start: at, End: s.Start})
		}
		at = s.End
	}
	if sc.off > at {
		framing = append(framing, span{Source: "stream framing", Start: at, End: sc.off})
	}
	spans = append(spans, framing...)
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	return chunks, spans, digests, sc.off, nil
}

// Row is one source's share of a day's new bytes.
type Row struct {
	Source      string `json:"source"`
	Bytes       int64  `json:"bytes"`        // the source's bytes in the stream (0 for parts)
	NewBytes    int64  `json:"new_bytes"`    // its bytes that fall in chunks the repository did not have
	NewChunks   int    `json:"new_chunks"`   // new chunks that hold some of its bytes
	AddedPacked int64  `json:"added_packed"` // parts only: what restic added after compression
	// Changed says the source's bytes differ from the previous stream's; new bytes of an
	// unchanged source are spill-over: a chunk that a change nearby cut differently.
	Changed bool `json:"changed"`
}

// attribute maps the new chunks (those not in known) to the sources whose bytes they hold.
// known gains the stream's chunks.
// digests and prev are each source's content hash in this and the previous stream.
// Each new chunk's offset, length and sources go to verbose when it is not nil.
func attribute(chunks []chunk, spans []span, known map[string]bool, digests, prev map[string]string, verbose io.Writer) []Row {
	rows := map[string]*Row{}
	var order []string
	row := func(src string) *Row {
		if r, ok := rows[src]; ok {
			return r
		}
		r := &Row{Source: src, Changed: digests[src] != prev[src]}
		rows[src] = r
		order = append(order, src)
		return r
	}
	for _, s := range spans {
		row(s.Source).Bytes += s.End - s.Start
	}
	si := 0
	for _, c := range chunks {
		isNew := !known[c.ID]
		known[c.ID] = true
		if !isNew {
			continue
		}
		end := c.Start + c.Len
		for si < len(spans) && spans[si].End <= c.Start {
			si++
		}
		touched := map[string]bool{}
		if verbose != nil {
			fmt.Fprintf(verbose, "new chunk %s at %d, %d bytes:", c.ID[:8], c.Start, c.Len)
		}
		for j := si; j < len(spans) && spans[j].Start < end; j++ {
			lo, hi := max(c.Start, spans[j].Start), min(end, spans[j].End)
			if hi <= lo {
				continue
			}
			if verbose != nil {
				fmt.Fprintf(verbose, " %s %d", spans[j].Source, hi-lo)
			}
			r := row(spans[j].Source)
			r.NewBytes += hi - lo
			if !touched[r.Source] {
				touched[r.Source] = true
				r.NewChunks++
			}
		}
		if verbose != nil {
			fmt.Fprintln(verbose)
		}
	}
	out := make([]Row, 0, len(order))
	for _, k := range order {
		out = append(out, *rows[k])
	}
	return out
}
