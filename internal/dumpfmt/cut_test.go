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

// encode writes sections a, b, c, … with plain cuts (long false) or long cuts after them;
// cuts nil writes none.
func encode(t *testing.T, cuts *Cuts, long bool, bodies ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetCuts(cuts); err != nil {
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
		cut := w.Cut
		if long {
			cut = w.LongCut
		}
		if err := cut(); err != nil {
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
// before a plain cut, that cut cannot end a chunk and the chunk runs on into the next table;
// a long cut (cut, pad, cut) always ends one.
func TestCutsKeepTheNextSectionDeduplicated(t *testing.T) {
	pol := testPolynomials(t)[0]
	cuts, err := NewCuts(pol)
	if err != nil {
		t.Fatal(err)
	}
	var sumPlain, sumLong, sumWithout, held int
	const seeds = 8
	for seed := int64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewSource(seed))
		grown := randomBytes(rng, 3<<20) // a table that gains rows at its end
		added := randomBytes(rng, 150<<10)
		unchanged := randomBytes(rng, 900<<10) // the table after it, the same both days
		last := randomBytes(rng, 700<<10)      // another unchanged one
		day2Grown := append(append([]byte{}, grown...), added...)
		without := newChunkBytes(t, encode(t, nil, false, grown, unchanged, last), encode(t, nil, false, day2Grown, unchanged, last), pol)
		plain := newChunkBytes(t, encode(t, cuts, false, grown, unchanged, last), encode(t, cuts, false, day2Grown, unchanged, last), pol)
		day2 := encode(t, cuts, true, day2Grown, unchanged, last)
		long := newChunkBytes(t, encode(t, cuts, true, grown, unchanged, last), day2, pol)
		sumPlain, sumLong, sumWithout = sumPlain+plain, sumLong+long, sumWithout+without
		if plain > without || long > without {
			t.Errorf("seed %d: cuts stored more: %d (plain) and %d (long) new bytes, %d without", seed, plain, long, without)
		}
		// With long cuts the unchanged table always starts a chunk: a chunk ends right before
		// its header, and only the grown table's tail (with the pad) is new.
		next := bytes.Index(day2, []byte{esc, mHeader, '{', '"', 'k', 'i', 'n', 'd', '"', ':', '"', 't', 'a', 'b', 'l', 'e', '"', ',', '"', 'n', 'a', 'm', 'e', '"', ':', '"', 'b'})
		ends := false
		for _, c := range chunks(t, day2, pol) {
			if int(c.Start+c.Length) == next {
				ends = true
			}
		}
		if !ends || long > len(added)+chunker.MaxSize+PadSize {
			t.Errorf("seed %d: long cut: chunk ends before the next table %v, %d new bytes", seed, ends, long)
		}
		if plain == long {
			held++
		}
	}
	t.Logf("new chunk bytes on day 2 over %d seeds: %d without cuts, %d with plain cuts (held in %d), %d with long cuts", seeds, sumWithout, sumPlain, held, sumLong)
	if held < 2 || held == seeds || sumPlain >= sumWithout || sumLong >= sumPlain {
		t.Fatalf("plain cuts held in %d of %d cases; new bytes: %d without cuts, %d plain, %d long", held, seeds, sumWithout, sumPlain, sumLong)
	}
}

// Readers skip cuts: the sections read back as written, in format 2 as in format 1.
func TestReaderSkipsCuts(t *testing.T) {
	cuts, err := NewCuts(testPolynomials(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	m := cuts.Marker
	bodies := [][]byte{[]byte("1\t2\n"), {}, bytes.Repeat([]byte("x\xff"), 70000), []byte("z")}
	for _, s := range [][]byte{encode(t, cuts, false, bodies...), encode(t, cuts, true, bodies...), encode(t, nil, false, bodies...)} {
		if !bytes.HasPrefix(s, []byte(Magic)) {
			t.Fatalf("stream starts %q", s[:len(Magic)])
		}
		readSections(t, s, bodies)
	}
	// The cut element is where the marker says: after the section's end.
	s := encode(t, cuts, false, []byte("a"))
	if !bytes.Contains(s, append([]byte{esc, mEnd, esc, mCut}, m...)) {
		t.Fatal("no cut element after the section")
	}
	s = encode(t, cuts, true, []byte("a"))
	long := append(append(append(append([]byte{esc, mEnd, esc, mCut}, m...), esc, mPad), cuts.Pad...), esc, mCut)
	if !bytes.Contains(s, append(long, m...)) || len(cuts.Pad) != PadSize {
		t.Fatal("no long cut (cut, pad, cut) after the section")
	}
	// A format-1 stream (before cuts) still reads.
	v1 := append([]byte(MagicV1), encode(t, nil, false, []byte("old"))[len(Magic):]...)
	r, err := NewReader(bytes.NewReader(v1))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := r.Next(); err != nil || h.Name != "a" {
		t.Fatalf("format 1: %v %v", h, err)
	}
	// A stream cut inside a cut or pad element is corrupt, not silently short.
	full := encode(t, cuts, true, []byte("a"), []byte("b"))
	for _, at := range []int{bytes.Index(full, []byte{esc, mCut}) + 10, bytes.Index(full, []byte{esc, mPad}) + 1000} {
		r, _ = NewReader(bytes.NewReader(full[:at]))
		var got error
		for got == nil {
			_, got = r.Next()
		}
		if !errors.Is(got, ErrCorrupt) {
			t.Fatalf("stream truncated at %d: %v", at, got)
		}
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
	if err := w.SetCuts(&Cuts{Marker: []byte("short")}); err == nil {
		t.Fatal("a 5-byte marker was accepted")
	}
	if err := w.SetCuts(&Cuts{Marker: bytes.Repeat([]byte{esc}, CutMarkerSize)}); err == nil {
		t.Fatal("a marker of ESC bytes was accepted")
	}
	if err := w.SetCuts(&Cuts{Marker: bytes.Repeat([]byte{'a'}, CutMarkerSize), Pad: []byte{esc}}); err == nil {
		t.Fatal("a pad with an ESC byte was accepted")
	}
	if err := w.Cut(); err != nil || w.LongCut() != nil || buf.Len() != 0 {
		t.Fatalf("Cut without cuts wrote something or failed: %v", err)
	}
	cuts, _ := NewCuts(testPolynomials(t)[0])
	if err := w.SetCuts(cuts); err != nil {
		t.Fatal(err)
	}
	w.Begin(Header{Kind: KindTable})
	if err := w.Cut(); err == nil {
		t.Fatal("Cut inside a section was accepted")
	}
	if err := w.LongCut(); err == nil {
		t.Fatal("LongCut inside a section was accepted")
	}
}

// The pad holds no cut of restic's under the polynomial it was made for, so the second cut of
// a long cut ends the chunk even when the first did not.
func TestPadHasNoCut(t *testing.T) {
	for _, pol := range testPolynomials(t) {
		cuts, err := NewCuts(pol)
		if err != nil {
			t.Fatal(err)
		}
		elems := append(append(append([]byte{esc, mPad}, cuts.Pad...), esc, mCut), cuts.Marker...)
		if got := firstCut(elems, pol); got != len(elems) {
			t.Fatalf("polynomial %#x: a chunk ends at %d of %d bytes of pad and cut", pol, got, len(elems))
		}
		// Restic's default chunker, started 100 bytes before a long cut (its first cut did not
		// hold), ends the chunk exactly after the second marker.
		rng := rand.New(rand.NewSource(int64(pol)))
		data := append(append(append(randomBytes(rng, 100), esc, mCut), cuts.Marker...), elems...)
		data = append(data, randomBytes(rng, 2<<20)...)
		if got := chunks(t, data, pol)[0].Length; got != uint(100+2+CutMarkerSize+len(elems)) {
			t.Fatalf("polynomial %#x: first chunk %d bytes, want %d", pol, got, 100+2+CutMarkerSize+len(elems))
		}
	}
}
