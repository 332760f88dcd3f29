package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// filled returns a catalogue file with enough records to span many pages.
func filled(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		id := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC).Format("20060102T150405Z") + "-abcd"
		if err := c.PutSnapshot(SnapshotRecord{ID: id, Instance: "hmis", Time: time.Now(), Manifest: []byte(`{"pad":"` + strings.Repeat("x", 400) + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestDamagedCatalogue: a truncated, emptied or scribbled-over catalogue is refused with an
// error naming the file (never a panic, never silently taken as new), and SetAside moves it
// out of the way so a new one can be built.
func TestDamagedCatalogue(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"truncated": func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/3); err != nil {
				t.Fatal(err)
			}
		},
		"empty": func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		},
		"garbage meta": func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteAt([]byte(strings.Repeat("\xAB", 16384)), 0)
			f.Close()
		},
		"garbage data pages": func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, ok := readMeta(b[4096:])
			if m0, ok0 := readMeta(b); ok0 && (!ok || m0.txid > m.txid) {
				m, ok = m0, true
			}
			if !ok {
				t.Fatal("no meta page in a fresh catalogue")
			}
			ps := int(m.pageSize)
			for pg := 2; pg < int(m.pgid); pg++ {
				if uint64(pg) != m.freelist {
					copy(b[pg*ps:(pg+1)*ps], strings.Repeat("\xEE", ps))
				}
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"garbage pages": func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteAt([]byte(strings.Repeat("\xFF", int(fi.Size())-16384)), 16384)
			f.Close()
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			path := filled(t)
			damage(t, path)
			c, err := Open(path)
			if err == nil {
				_, err = c.Snapshots("")
			}
			if err == nil {
				t.Fatal("a damaged catalogue was opened and read without an error")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "catalog rebuild") {
				t.Fatalf("error does not name the damaged file and the fix: %v", err)
			}
			if fi, err := os.Stat(path); err != nil || (name == "empty" && fi.Size() != 0) {
				t.Fatalf("the damaged file was changed: %v %v", fi, err)
			}
			moved, err := SetAside(path, time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			if moved != path+".damaged-20261203T070000Z" {
				t.Fatalf("moved to %q", moved)
			}
			if _, err := os.Stat(moved); err != nil {
				t.Fatalf("the damaged file is not kept as evidence: %v", err)
			}
			c, err = Open(path)
			if err != nil {
				t.Fatalf("a new catalogue after SetAside: %v", err)
			}
			if recs, err := c.Snapshots(""); err != nil || len(recs) != 0 {
				t.Fatalf("new catalogue: %d records, %v", len(recs), err)
			}
		})
	}
	t.Run("whole", func(t *testing.T) {
		path := filled(t)
		moved, err := SetAside(path, time.Now())
		if err != nil || moved != "" {
			t.Fatalf("a whole catalogue was set aside: %q %v", moved, err)
		}
	})
}
