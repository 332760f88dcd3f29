package dumpfmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/restic/chunker"
)

// CutMarkerSize is the length of a cut marker: the window of restic's content-defined
// chunker (github.com/restic/chunker), whose Rabin fingerprint over the last 64 bytes
// decides where a chunk ends.
const CutMarkerSize = 64

// splitMask is restic's split condition: a chunk ends where the low 20 bits of the window's
// fingerprint are zero (an average chunk of 1 MiB), once the chunk holds at least 512 KiB.
const splitMask = 1<<20 - 1

// cutPrefix is the readable start of every marker; the two '0's count up when a
// polynomial's marker would contain an ESC byte, and the last three bytes are solved.
const cutPrefix = "\n-- dhis2-life cut marker 00: restic ends a chunk here ----- "

// CutMarker returns the cut marker of a restic repository whose chunker polynomial is pol
// (`restic cat config`: chunker_polynomial): 64 bytes, none of them ESC, whose fingerprint
// under pol meets restic's split condition. Restic's chunker therefore ends a chunk right
// after the marker whenever the chunk holds its minimum size (512 KiB) by then, so what
// follows a marker starts a chunk at the same place on every day it is unchanged.
//
// The marker is solved, not searched: the fingerprint is linear over GF(2), and the last three
// bytes add themselves unreduced (24 bits < the polynomial's degree), so they are chosen to
// cancel the low 20 bits of the fingerprint of the rest.
func CutMarker(pol uint64) ([]byte, error) {
	p := chunker.Pol(pol)
	if d := p.Deg(); d < 32 || d > 53 {
		return nil, fmt.Errorf("chunker polynomial %#x has degree %d, want 32..53 (restic uses 53)", pol, d)
	}
	m := []byte(cutPrefix + "\x00\x00\x00")
	if len(m) != CutMarkerSize {
		return nil, errors.New("dumpfmt: cut marker template has the wrong length")
	}
	at := strings.Index(cutPrefix, "00") // the two counter digits
	for n := 0; n < 100; n++ {
		m[at], m[at+1] = byte('0'+n/10), byte('0'+n%10)
		m[61], m[62], m[63] = 0, 0, 0
		low := fingerprint(m, p) & splitMask
		// The top nibble of byte 61 is free: '@' (0x4_) keeps it printable-ish and not ESC.
		m[61], m[62], m[63] = 0x40|byte(low>>16), byte(low>>8), byte(low)
		if m[62] != esc && m[63] != esc && IsCutMarker(m, pol) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no cut marker without ESC bytes for chunker polynomial %#x", pol)
}

// IsCutMarker reports whether m is a valid cut marker for polynomial pol: 64 bytes without
// ESC whose fingerprint meets restic's split condition.
func IsCutMarker(m []byte, pol uint64) bool {
	if len(m) != CutMarkerSize {
		return false
	}
	for _, c := range m {
		if c == esc {
			return false
		}
	}
	return fingerprint(m, chunker.Pol(pol))&splitMask == 0
}

// fingerprint is the Rabin fingerprint of b modulo p, as restic's chunker computes it over
// its window.
func fingerprint(b []byte, p chunker.Pol) uint64 {
	var h chunker.Pol
	for _, c := range b {
		h = (h<<8 | chunker.Pol(c)).Mod(p)
	}
	return uint64(h)
}

// PadSize is the length of a pad element's bytes: restic's minimum chunk size, so the cut
// after a pad always ends a chunk (see Writer.LongCut).
const PadSize = chunker.MinSize

// padLine is the pad's repeated text; its two '0's count up when a window of the repeated
// text would meet the split condition under the repository's polynomial.
const padLine = "-- dhis2-life pad 00: restic cuts no chunk in this text --\n"

// Cuts is what a Writer writes at cuts for one repository.
type Cuts struct {
	Marker []byte // CutMarkerSize bytes (CutMarker)
	Pad    []byte // PadSize bytes of text in which restic's chunker finds no cut
}

// NewCuts returns the marker and the pad of a repository whose chunker polynomial is pol. The
// pad is checked with restic's chunker: in a pad element followed by a cut element, the only
// place a chunk can end is right after the marker.
func NewCuts(pol uint64) (*Cuts, error) {
	m, err := CutMarker(pol)
	if err != nil {
		return nil, err
	}
	line := []byte(padLine)
	at := strings.Index(padLine, "00")
	for n := 0; n < 100; n++ {
		line[at], line[at+1] = byte('0'+n/10), byte('0'+n%10)
		pad := bytes.Repeat(line, PadSize/len(line)+1)[:PadSize]
		elems := append(append(append([]byte{esc, mPad}, pad...), esc, mCut), m...)
		if firstCut(elems, pol) == len(elems) {
			return &Cuts{Marker: m, Pad: pad}, nil
		}
	}
	return nil, fmt.Errorf("no pad without a cut for chunker polynomial %#x", pol)
}

// firstCut returns where restic's chunker, with no minimum beyond its window, first ends a
// chunk in b (len(b) when only at its end).
func firstCut(b []byte, pol uint64) int {
	c := chunker.NewWithBoundaries(bytes.NewReader(b), chunker.Pol(pol), CutMarkerSize, uint(len(b))+1)
	ch, err := c.Next(make([]byte, 0, len(b)))
	if err != nil && err != io.EOF {
		return -1
	}
	return int(ch.Length)
}
