package dumpfmt

import (
	"errors"
	"fmt"
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
