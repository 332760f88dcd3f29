package render

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/lifecycle/upgrade"
)

// TestUpgradesJSONOneShape: `upgrades --json` lists every kind oldest first, with "from" and
// "to" strings for every kind (DESIGN: one shape across kinds).
func TestUpgradesJSONOneShape(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := &lifecycle.UpgradeList{
		Postgres: []*upgrade.Record{{ID: "pg", Kind: "postgres", From: 13, To: 15, State: upgrade.StateDone, Created: t0.Add(time.Hour)}},
		DHIS2:    []*upgrade.DHIS2Record{{ID: "d", Kind: "dhis2", From: "2.40.3", To: "2.41.2", State: upgrade.StateDone, Created: t0}},
		OS:       []*upgrade.OSRecord{{ID: "os", Kind: "os", From: "Debian 11", State: upgrade.StateRunning, Created: t0.Add(2 * time.Hour)}},
	}
	var b bytes.Buffer
	if err := Upgrades(&b, true, l); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b.Bytes(), &rows); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	want := []struct{ id, kind, from, to string }{{"d", "dhis2", "2.40.3", "2.41.2"}, {"pg", "postgres", "13", "15"}, {"os", "os", "Debian 11", ""}}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), b.String())
	}
	for i, w := range want {
		r := rows[i]
		from, fok := r["from"].(string)
		to, tok := r["to"].(string)
		if r["id"] != w.id || r["kind"] != w.kind || !fok || !tok || from != w.from || to != w.to {
			t.Fatalf("row %d = id %v kind %v from %#v to %#v, want %+v", i, r["id"], r["kind"], r["from"], r["to"], w)
		}
	}
	b.Reset()
	if err := Upgrades(&b, true, &lifecycle.UpgradeList{}); err != nil || b.String() != "[]\n" {
		t.Fatalf("no upgrades: %q, %v (want [])", b.String(), err)
	}
}
