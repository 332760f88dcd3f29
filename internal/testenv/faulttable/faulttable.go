package faulttable

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// EnvVar names the file rows are appended to; unset, Record only logs the row.
const EnvVar = "DHIS2_LIFE_FAULT_TABLE"

// Row is one scenario of the fault suite (one JSON line).
type Row struct {
	Scenario          string `json:"scenario"`
	Expected          string `json:"expected"`
	Exit              int    `json:"exit"`
	Message           string `json:"message"`
	Alert             bool   `json:"alert"`
	CatalogConsistent bool   `json:"catalog_consistent"`
	NextRunOK         bool   `json:"next_run_ok"`
}

// Record appends r to $DHIS2_LIFE_FAULT_TABLE (one line, written under an exclusive lock so
// parallel test binaries do not interleave) and logs it.
func Record(t testing.TB, r Row) {
	t.Helper()
	r.Message = oneLine(r.Message)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("fault table row: %v", err)
	}
	t.Logf("fault table: %s", b)
	path := os.Getenv(EnvVar)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("fault table %s: %v", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("fault table %s: lock: %v", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatalf("fault table %s: %v", path, err)
	}
}

// oneLine keeps the first line of a message, at most 400 bytes.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 400 {
		s = s[:397] + "..."
	}
	return s
}

// Read parses a rows file; a line that is not a row is an error naming its line number.
func Read(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the fault table: %w", err)
	}
	defer f.Close()
	var rows []Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r Row
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Scenario == "" {
			return nil, fmt.Errorf("%s:%d: not a fault table row (want {\"scenario\",\"expected\",\"exit\",\"message\",\"alert\",\"catalog_consistent\",\"next_run_ok\"}): %q", path, n, line)
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// Markdown renders rows sorted by scenario (the last row of a scenario recorded twice wins),
// with a summary line.
func Markdown(rows []Row) string {
	byName := map[string]Row{}
	for _, r := range rows {
		byName[r.Scenario] = r
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| Scenario | Expected outcome | Exit | Message | Alert sent | Catalogue consistent | Next run ok |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	consistent, next := 0, 0
	for _, n := range names {
		r := byName[n]
		if r.CatalogConsistent {
			consistent++
		}
		if r.NextRunOK {
			next++
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s |\n", cell(r.Scenario), cell(r.Expected), r.Exit,
			cell(r.Message), yesNo(r.Alert), yesNo(r.CatalogConsistent), yesNo(r.NextRunOK))
	}
	fmt.Fprintf(&b, "\n%d scenarios; catalogue consistent in %d, next run ok in %d.\n", len(names), consistent, next)
	return b.String()
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	if s == "" {
		return "—"
	}
	return s
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}
