package dumpfmt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/restic/chunker"
)

// testPolynomials are restic-style random irreducible polynomials of degree 53 (fixed, so
// the test is the same on every run) plus the one of a repository restic 0.19.1 created.
func testPolynomials(t *testing.T) []uint64 {
	t.Helper()
	pols := []uint64{0x2cb586ff66baa7, 0x3dea92648f6e83}
	rng := rand.New(rand.NewSource(7))
	for len(pols) < 8 {
		p := chunker.Pol(rng.Int63n(1<<53) | 1<<53)
		if p.Deg() == 53 && p.Irreducible() {
			pols = append(pols, uint64(p))
		}
	}
	return pols
}

// chunks cuts data as restic backup does (default boundaries: 512 KiB .. 8 MiB).
func chunks(t *testing.T, data []byte, pol uint64) []chunker.Chunk {
	t.Helper()
	c := chunker.New(bytes.NewReader(data), chunker.Pol(pol))
	buf := make([]byte, chunker.MaxSize)
	var out []chunker.Chunk
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		ch.Data = nil
		out = append(out, ch)
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

// A default-parameter chunker fed at least MinSize-64 arbitrary bytes and then the marker
// cuts exactly after the marker (unless the arbitrary bytes held a cut of their own).
func TestCutMarkerCutsRightAfterIt(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	tested := 0
	for _, pol := range testPolynomials(t) {
		m, err := CutMarker(pol)
		if err != nil {
			t.Fatalf("polynomial %#x: %v", pol, err)
		}
		if len(m) != CutMarkerSize || bytes.IndexByte(m, esc) >= 0 || !strings.HasPrefix(string(m), "\n-- dhis2-life cut marker") {
			t.Fatalf("polynomial %#x: marker %q", pol, m)
		}
		if !IsCutMarker(m, pol) {
			t.Fatalf("polynomial %#x: IsCutMarker(CutMarker) is false", pol)
		}
		again, _ := CutMarker(pol)
		if !bytes.Equal(m, again) {
			t.Fatalf("polynomial %#x: the marker is not deterministic", pol)
		}
		for _, n := range []int{chunker.MinSize - CutMarkerSize, chunker.MinSize, chunker.MinSize + 1000, chunker.MinSize + 200<<10} {
			prefix := randomBytes(rng, n)
			suffix := randomBytes(rng, 3<<20)
			// Skip prefixes in which restic would cut anyway: then the marker is not the cause.
			if plain := chunks(t, append(append([]byte{}, prefix...), suffix...), pol); plain[0].Length <= uint(n) {
				continue
			}
			got := chunks(t, append(append(append([]byte{}, prefix...), m...), suffix...), pol)
			if got[0].Length != uint(n+CutMarkerSize) {
				t.Errorf("polynomial %#x, %d bytes before the marker: first chunk %d bytes, want %d", pol, n, got[0].Length, n+CutMarkerSize)
			}
			tested++
		}
	}
	if tested < 20 {
		t.Fatalf("only %d cases without an earlier natural cut", tested)
	}
	// Before MinSize the marker does not cut (restic's minimum holds).
	pol := testPolynomials(t)[0]
	m, _ := CutMarker(pol)
	got := chunks(t, append(append(randomBytes(rng, 1000), m...), randomBytes(rng, 3<<20)...), pol)
	if got[0].Length < chunker.MinSize {
		t.Fatalf("cut at %d bytes, below restic's minimum", got[0].Length)
	}
	// The marker is specific to its polynomial.
	other := testPolynomials(t)[1]
	if IsCutMarker(m, other) {
		t.Fatalf("marker of %#x also cuts under %#x", pol, other)
	}
}

func TestCutMarkerRefusesBadPolynomial(t *testing.T) {
	for _, p := range []uint64{0, 1, 0xffff, 1 << 60} {
		if _, err := CutMarker(p); err == nil {
			t.Errorf("polynomial %#x accepted", p)
		}
	}
}

// encode writes sections a, b, c with or without cuts between them.
func encode(t *testing.T, cut []byte, bodies ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetCutMarker(cut); err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		if err := w.Begin(Header{Kind: KindTable, Name: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		if err := w.Cut(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newChunkBytes is how many bytes of day2's chunks day1 does not hold (restic's new data).
func newChunkBytes(t *testing.T, day1, day2 []byte, pol uint64) int {
	t.Helper()
	have := map[[32]byte]bool{}
	for _, c := range chunks(t, day1, pol) {
		have[sha256.Sum256(day1[c.Start:c.Start+c.Length])] = true
	}
	n := 0
	for _, c := range chunks(t, day2, pol) {
		if !have[sha256.Sum256(day2[c.Start:c.Start+c.Length])] {
			n += int(c.Length)
		}
	}
	return n
}

// The point of cuts: a table that grew no longer drags the unchanged table after it into
// new chunks. Without cuts the grown tail and the start of the next table share a chunk.
// Restic's minimum chunk size still holds: when its last own cut lies less than 512 KiB
// before the marker, the marker cannot cut, and the chunk runs on into the next table.
func TestCutsKeepTheNextSectionDeduplicated(t *testing.T) {
	pol := testPolynomials(t)[0]
	m, err := CutMarker(pol)
	if err != nil {
		t.Fatal(err)
	}
	var sumWith, sumWithout, aligned int
	for seed := int64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewSource(seed))
		grown := randomBytes(rng, 3<<20) // a table that gains rows at its end
		added := randomBytes(rng, 150<<10)
		unchanged := randomBytes(rng, 900<<10) // the table after it, the same both days
		last := randomBytes(rng, 700<<10)      // another unchanged one
		day2Grown := append(append([]byte{}, grown...), added...)
		day2 := encode(t, m, day2Grown, unchanged, last)
		withCuts := newChunkBytes(t, encode(t, m, grown, unchanged, last), day2, pol)
		without := newChunkBytes(t, encode(t, nil, grown, unchanged, last), encode(t, nil, day2Grown, unchanged, last), pol)
		sumWith, sumWithout = sumWith+withCuts, sumWithout+without
		if withCuts > without {
			t.Errorf("seed %d: cuts stored more: %d new bytes, %d without", seed, withCuts, without)
		}
		// Where the grown table's last chunk began at least MinSize before the marker's end,
		// that chunk ends right after the marker and nothing of the unchanged table is new.
		markerEnd := bytes.Index(day2, append([]byte{esc, mCut}, m...)) + 2 + CutMarkerSize
		for _, c := range chunks(t, day2, pol) {
			if end := int(c.Start + c.Length); int(c.Start) < markerEnd && end >= markerEnd {
				if markerEnd-int(c.Start) >= chunker.MinSize {
					if end != markerEnd {
						t.Errorf("seed %d: the chunk from %d ends at %d, not after the marker at %d", seed, c.Start, end, markerEnd)
					}
					if withCuts > len(added)+chunker.MaxSize {
						t.Errorf("seed %d: %d new bytes though the cut held", seed, withCuts)
					}
					aligned++
				}
				break
			}
		}
	}
	t.Logf("new chunk bytes on day 2 over 8 seeds: %d with cuts, %d without; the cut held in %d", sumWith, sumWithout, aligned)
	if aligned < 3 || sumWith >= sumWithout {
		t.Fatalf("cuts held in %d of 8 cases; %d new bytes with cuts, %d without", aligned, sumWith, sumWithout)
	}
}

// Readers skip cuts: the sections read back as written, in format 2 as in format 1.
func TestReaderSkipsCuts(t *testing.T) {
	m, err := CutMarker(testPolynomials(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{[]byte("1\t2\n"), {}, bytes.Repeat([]byte("x\xff"), 70000), []byte("z")}
	for _, s := range [][]byte{encode(t, m, bodies...), encode(t, nil, bodies...)} {
		if !bytes.HasPrefix(s, []byte(Magic)) {
			t.Fatalf("stream starts %q", s[:len(Magic)])
		}
		r, err := NewReader(bytes.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range bodies {
			h, err := r.Next()
			if err != nil {
				t.Fatalf("section %d: %v", i, err)
			}
			if h.Name != string(rune('a'+i)) {
				t.Fatalf("section %d is %q", i, h.Name)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("section %d: %d bytes (%v), want %d", i, len(got), err, len(want))
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after the last section: %v", err)
		}
	}
	// The cut element is where the marker says: after the section's end.
	s := encode(t, m, []byte("a"))
	if !bytes.Contains(s, append([]byte{esc, mEnd, esc, mCut}, m...)) {
		t.Fatal("no cut element after the section")
	}
	// A format-1 stream (before cuts) still reads.
	v1 := append([]byte(MagicV1), encode(t, nil, []byte("old"))[len(Magic):]...)
	r, err := NewReader(bytes.NewReader(v1))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := r.Next(); err != nil || h.Name != "a" {
		t.Fatalf("format 1: %v %v", h, err)
	}
	// A stream cut inside a cut element is corrupt, not silently short.
	full := encode(t, m, []byte("a"), []byte("b"))
	at := bytes.Index(full, []byte{esc, mCut}) + 10
	r, _ = NewReader(bytes.NewReader(full[:at]))
	var got error
	for got == nil {
		_, got = r.Next()
	}
	if !errors.Is(got, ErrCorrupt) {
		t.Fatalf("truncated cut element: %v", got)
	}
	// A newer format is named as such.
	_, err = NewReader(strings.NewReader("DHIS2LIFE-DBSTREAM 3\n\xffZ"))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("format 3: %v", err)
	}
}

func TestWriterCutRules(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	if err := w.SetCutMarker([]byte("short")); err == nil {
		t.Fatal("a 5-byte marker was accepted")
	}
	if err := w.SetCutMarker(bytes.Repeat([]byte{esc}, CutMarkerSize)); err == nil {
		t.Fatal("a marker of ESC bytes was accepted")
	}
	if err := w.Cut(); err != nil || buf.Len() != 0 {
		t.Fatalf("Cut without a marker wrote something or failed: %v", err)
	}
	m, _ := CutMarker(testPolynomials(t)[0])
	if err := w.SetCutMarker(m); err != nil {
		t.Fatal(err)
	}
	w.Begin(Header{Kind: KindTable})
	if err := w.Cut(); err == nil {
		t.Fatal("Cut inside a section was accepted")
	}
}
