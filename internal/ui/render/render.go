package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// JSON prints v as indented JSON.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Count formats n with thousands separators.
func Count(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// warnings prints each warning on a line of its own.
func warnings(w io.Writer, ws []string) {
	for _, s := range ws {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
}
