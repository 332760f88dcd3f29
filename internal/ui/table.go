package ui

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table lays out rows in aligned columns separated by two spaces, headers first.
type Table struct {
	headers []string
	rows    [][]string
	right   map[int]bool
}

// NewTable returns a table with the given column headers.
func NewTable(headers ...string) *Table {
	return &Table{headers: headers, right: map[int]bool{}}
}

// RightAlign right-aligns the given columns (0-based), e.g. sizes and counts.
func (t *Table) RightAlign(cols ...int) *Table {
	for _, c := range cols {
		t.right[c] = true
	}
	return t
}

// Row adds a row; missing columns are empty, extra columns are kept.
func (t *Table) Row(cols ...string) {
	t.rows = append(t.rows, cols)
}

// Write writes the table to w. Lines carry no trailing blanks.
func (t *Table) Write(w io.Writer) error {
	all := append([][]string{t.headers}, t.rows...)
	var widths []int
	for _, r := range all {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range all {
		if len(r) == 0 {
			continue
		}
		var line strings.Builder
		for i := range widths {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if t.right[i] {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing table: %w", err)
	}
	return nil
}
