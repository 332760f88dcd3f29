package dumpfmt

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func stream(t testing.TB, h Header, body []byte) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Begin(h); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzReader feeds arbitrary bytes to the framing reader: it ends with io.EOF after the end
// marker or with ErrCorrupt, within a bounded number of steps, and never panics.
func FuzzReader(f *testing.F) {
	f.Add(stream(f, Header{Kind: KindTable, Schema: "public", Name: `we"ird`, Columns: []string{"select", "a b"}}, []byte("1\t\\N\n")))
	f.Add(stream(f, Header{Kind: KindSchema}, []byte{esc, 0, esc, esc, mEnd}))
	f.Add([]byte(Magic + "\xffH{}\xffBabc\xffE\xffZ"))
	f.Add([]byte(Magic))
	f.Add([]byte(Magic + "\xffH{}\xffB\xffE"))
	f.Add([]byte(Magic + "\xffH{\xff\x00}\xffBabc\xffZ"))
	f.Add([]byte(Magic + "\xffC" + strings.Repeat("m", CutMarkerSize) + "\xffPpad\xffH{}\xffBx\xffE\xffZ"))
	f.Add([]byte(MagicV1 + "\xffC" + strings.Repeat("m", 10)))
	f.Add([]byte(Magic + "\xffPpad"))
	f.Add([]byte("not a stream"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("NewReader: %v is not ErrCorrupt", err)
			}
			return
		}
		for steps := 0; ; steps++ {
			if steps > len(data) {
				t.Fatalf("more sections (%d) than bytes", steps)
			}
			_, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Next: %v is not ErrCorrupt", err)
				}
				return
			}
			body, err := io.ReadAll(r)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read: %v is not ErrCorrupt", err)
				}
				return
			}
			if len(body) > len(data) {
				t.Fatalf("body of %d bytes from %d bytes of stream", len(body), len(data))
			}
		}
	})
}

// FuzzRoundTrip: any header names and body come back unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add("public", `we"ird; DROP`, "select", []byte("1\t2\n"))
	f.Add("", "", "", []byte{esc, mEnd, esc, 0, esc})
	f.Add("s\xff", "t\x00", "c\xffB", []byte{})
	f.Fuzz(func(t *testing.T, schema, name, col string, body []byte) {
		h := Header{Kind: KindTable, Schema: schema, Name: name, Columns: []string{col}}
		r, err := NewReader(bytes.NewReader(stream(t, h, body)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		// JSON replaces invalid UTF-8; compare with what JSON makes of the input.
		if want := jsonRoundTrip(t, h); got.Schema != want.Schema || got.Name != want.Name || got.Columns[0] != want.Columns[0] {
			t.Fatalf("header %+v, want %+v", got, want)
		}
		b, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("body %q, %v; want %q", b, err, body)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("want EOF, got %v", err)
		}
	})
}

func jsonRoundTrip(t *testing.T, h Header) Header {
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var out Header
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
