package dumpfmt

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

func roundTrip(t *testing.T, bodies [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		if err := w.Begin(Header{Kind: KindTable, Name: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
		// write in uneven pieces
		for len(b) > 0 {
			n := 1 + len(b)/3
			if _, err := w.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	readSections(t, buf.Bytes(), bodies)
}

// readSections reads stream s and checks it holds the sections named a, b, c, … with bodies,
// then ends.
func readSections(t *testing.T, s []byte, bodies [][]byte) {
	t.Helper()
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
			t.Fatalf("section %d: header %+v", i, h)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("section %d: %d bytes (%v), want %d", i, len(got), err, len(want))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF after last section, got %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 3*chunkSize+17)
	rng.Read(big)
	roundTrip(t, [][]byte{{}, []byte("hello\n"), {0xFF}, {0xFF, 0xFF, 'E', 0xFF, 0x00}, big, bytes.Repeat([]byte{0xFF}, chunkSize+3)})
}

func TestSkipUnreadBody(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	w.Begin(Header{Kind: KindSchema})
	w.Write(bytes.Repeat([]byte("x\xff"), 1000))
	w.End()
	w.Begin(Header{Kind: KindTrailer})
	w.Write([]byte(`{"ok":true}`))
	w.End()
	w.Close()
	r, _ := NewReader(&buf)
	if h, _ := r.Next(); h.Kind != KindSchema {
		t.Fatal("want schema")
	}
	h, err := r.Next()
	if err != nil || h.Kind != KindTrailer {
		t.Fatalf("want trailer, got %v %v", h, err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != `{"ok":true}` {
		t.Fatalf("trailer body %q", b)
	}
}

func TestTruncatedStreamIsCorrupt(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	w.Begin(Header{Kind: KindTable, Name: "datavalue"})
	w.Write(bytes.Repeat([]byte("1\t2\t3\n"), 10000))
	w.End()
	w.Close()
	full := buf.Bytes()
	for _, cut := range []int{len(Magic) + 5, len(full) / 2, len(full) - 2, len(full) - 1} {
		r, err := NewReader(bytes.NewReader(full[:cut]))
		if err != nil {
			t.Fatal(err)
		}
		var got error
		for got == nil {
			_, got = r.Next()
			if got == nil {
				_, got = io.ReadAll(r)
			}
		}
		if !errors.Is(got, ErrCorrupt) {
			t.Fatalf("cut at %d: want ErrCorrupt, got %v", cut, got)
		}
	}
	if _, err := NewReader(bytes.NewReader([]byte("PGDMP..."))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong magic: %v", err)
	}
}

// Framing must not depend on offsets: the same body yields the same bytes wherever it sits.
func TestFramingIsOffsetIndependent(t *testing.T) {
	enc := func(prefix []byte) []byte {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf)
		w.Begin(Header{Kind: KindTable, Name: "a"})
		w.Write(prefix)
		w.End()
		w.Begin(Header{Kind: KindTable, Name: "b"})
		w.Write(bytes.Repeat([]byte("row\t\xff\n"), 100000))
		w.End()
		w.Close()
		return buf.Bytes()
	}
	a, b := enc([]byte("short")), enc(bytes.Repeat([]byte("longer prefix"), 1000))
	tail := 600000
	if !bytes.Equal(a[len(a)-tail:], b[len(b)-tail:]) {
		t.Fatal("the second section's bytes changed when the first grew")
	}
}

// TestReadErrorIsReturned: when the underlying reader fails (restic dump dies), the reader
// returns that error, not "stream is corrupt", wherever the failure falls.
func TestReadErrorIsReturned(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	w.Begin(Header{Kind: KindTable, Name: "datavalue"})
	w.Write(bytes.Repeat([]byte("1\t2\t3\n"), 10000))
	w.End()
	w.Close()
	full := buf.Bytes()
	cause := errors.New("restic dump failed (exit 1): wrong password")
	for _, cut := range []int{3, len(Magic), len(Magic) + 5, len(full) / 2, len(full) - 2} {
		src := io.MultiReader(bytes.NewReader(full[:cut]), iotestErrReader{cause})
		r, err := NewReader(src)
		got := err
		for got == nil {
			_, got = r.Next()
			if got == nil {
				_, got = io.ReadAll(r)
			}
		}
		if !errors.Is(got, cause) {
			t.Errorf("cut at %d: want the reader's error, got %v", cut, got)
		}
	}
}

type iotestErrReader struct{ err error }

func (e iotestErrReader) Read([]byte) (int, error) { return 0, e.err }
