package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func good() *Manifest {
	return &Manifest{Format: 1, ID: NewID(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)), Instance: "hmis",
		Time:   time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC),
		Parts:  map[string]Part{"db": {Snapshot: "3fa1c2d4"}, "files": {Snapshot: "77aa"}},
		Files:  &Files{Home: "/opt/dhis2", Paths: []string{"dhis.conf", "files"}, Provider: "filesystem", Container: "files"},
		Tables: []Table{{Schema: "public", Name: `we"ird; DROP TABLE x`, Rows: 3}}}
}

func TestParseRoundTrip(t *testing.T) {
	g := good()
	raw, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, g) {
		t.Fatalf("round trip changed the manifest:\n got %+v\nwant %+v", m, g)
	}
	if m.Tables[0].Name != `we"ird; DROP TABLE x` {
		t.Fatalf("table name changed: %q", m.Tables[0].Name)
	}
}

// TestParseRefusesEditedManifests: values that would reach file paths or restic's command line
// from a manifest edited in the bucket are refused with an error saying so.
func TestParseRefusesEditedManifests(t *testing.T) {
	for name, edit := range map[string]func(m *Manifest){
		"id with ..":               func(m *Manifest) { m.ID = "../../etc" },
		"id with slash":            func(m *Manifest) { m.ID = "2026/x" },
		"id with NUL":              func(m *Manifest) { m.ID = "2026\x00x" },
		"id starting with -":       func(m *Manifest) { m.ID = "-rf" },
		"instance with slash":      func(m *Manifest) { m.Instance = "hmis/../../x" },
		"instance ..":              func(m *Manifest) { m.Instance = ".." },
		"restic id that is a flag": func(m *Manifest) { m.Parts["db"] = Part{Snapshot: "--password-command=sh"} },
		"container outside":        func(m *Manifest) { m.Files.Container = "../../etc" },
		"absolute container":       func(m *Manifest) { m.Files.Container = "/etc" },
		"path outside":             func(m *Manifest) { m.Files.Paths = []string{"files/../../.."} },
		"absolute path":            func(m *Manifest) { m.Files.Paths = []string{"/root/.ssh"} },
		"very long id":             func(m *Manifest) { m.ID = strings.Repeat("a", 300) },
	} {
		t.Run(name, func(t *testing.T) {
			m := good()
			edit(m)
			raw, _ := json.Marshal(m)
			_, err := Parse(raw)
			if err == nil || !strings.Contains(err.Error(), "edited in the bucket") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("want a one-line refusal naming the edit, got %v", err)
			}
		})
	}
}

// FuzzParse: any input either parses into a manifest whose names are safe and which survives a
// round trip, or is refused with a one-line error; never a panic.
func FuzzParse(f *testing.F) {
	raw, _ := json.Marshal(good())
	f.Add(raw)
	f.Add([]byte(`{"format":1,"id":"x","instance":"hmis"}`))
	f.Add([]byte(`{"format":2,"id":"x","instance":"hmis"}`))
	f.Add([]byte(`{"format":1,"id":"../x","instance":"hmis","files":{"container":"../"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if m != nil || err.Error() == "" {
				t.Fatalf("error %v with manifest %v", err, m)
			}
			return
		}
		if !ValidName(m.ID) || !ValidName(m.Instance) {
			t.Fatalf("unsafe names accepted: %q %q", m.ID, m.Instance)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("re-encoded manifest refused: %v", err)
		}
	})
}

// TestIDsOfAClockFarInTheFuture: a clock set to year 2999 or past 2262 (int64 nanoseconds) still yields valid,
// parseable set IDs (retention: retention.TestPlanClockFarInTheFuture).
func TestIDsOfAClockFarInTheFuture(t *testing.T) {
	for _, tm := range []time.Time{time.Date(2999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)} {
		m := good()
		m.ID, m.Time = NewID(tm), tm
		if !ValidName(m.ID) {
			t.Fatalf("NewID(%v) = %q is not a valid name", tm, m.ID)
		}
		raw, _ := json.Marshal(m)
		got, err := Parse(raw)
		if err != nil || !got.Time.Equal(tm) {
			t.Fatalf("manifest of %v: %v %v", tm, got, err)
		}
	}
}
