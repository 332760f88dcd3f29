package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
)

// TestFeedChunksRowAligned: every chunk of a split table ends at a row's end, a row longer
// than a chunk stays whole, together the chunks are the input, and data that ends inside a
// row is refused.
func TestFeedChunksRowAligned(t *testing.T) {
	var in bytes.Buffer
	for i := 0; i < 60000; i++ {
		fmt.Fprintf(&in, "%d\tvalue with \\n escaped newline %s\n", i, strings.Repeat("x", i%97))
		if i == 30000 {
			fmt.Fprintf(&in, "%d\t%s\n", i, strings.Repeat("long", splitChunk/2)) // 2 MiB row
		}
	}
	feed := func(data []byte) ([][]byte, error) {
		chunks := make(chan []byte)
		free := make(chan []byte, 3)
		for i := 0; i < cap(free); i++ {
			free <- make([]byte, 0, splitChunk)
		}
		var got [][]byte
		done := make(chan struct{})
		go func() {
			for b := range chunks {
				got = append(got, append([]byte(nil), b...))
				free <- b[:0]
			}
			close(done)
		}()
		err := feedChunks(context.Background(), bytes.NewReader(data), chunks, free)
		close(chunks)
		<-done
		return got, err
	}
	got, err := feed(in.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 4 {
		t.Fatalf("%d chunks", len(got))
	}
	var all []byte
	for i, c := range got {
		if c[len(c)-1] != '\n' {
			t.Fatalf("chunk %d ends inside a row: %q", i, c[len(c)-20:])
		}
		all = append(all, c...)
	}
	if !bytes.Equal(all, in.Bytes()) {
		t.Fatal("the chunks together are not the input")
	}
	if _, err := feed(append(in.Bytes(), "1\tno end"...)); !errors.Is(err, dumpfmt.ErrCorrupt) {
		t.Errorf("data ending inside a row: %v", err)
	}
}
