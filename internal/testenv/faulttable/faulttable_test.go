package faulttable

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordReadMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	t.Setenv(EnvVar, path)
	Record(t, Row{Scenario: "b: outage", Expected: "exit 1", Exit: 1, Message: "the repository did not answer | x\nsecond line", Alert: true, CatalogConsistent: true, NextRunOK: true})
	Record(t, Row{Scenario: "a: flipped byte", Expected: "verify exits 3", Exit: 3, CatalogConsistent: true})
	rows, err := Read(path)
	if err != nil || len(rows) != 2 {
		t.Fatalf("%v %v", rows, err)
	}
	md := Markdown(rows)
	lines := strings.Split(md, "\n")
	if !strings.HasPrefix(lines[2], "| a: flipped byte | verify exits 3 | 3 | — | no | yes | no |") ||
		!strings.Contains(lines[3], `the repository did not answer \| x | yes | yes | yes |`) || strings.Contains(md, "second line") {
		t.Fatalf("markdown:\n%s", md)
	}
	if !strings.Contains(md, "2 scenarios; catalogue consistent in 2, next run ok in 1.") {
		t.Fatalf("summary:\n%s", md)
	}
	if err := os.WriteFile(path, []byte("{\"scenario\":\"x\"}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("bad line: %v", err)
	}
}
