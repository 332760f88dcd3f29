package clone_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
)

// The daemon runs clone_ttl once per instance at the same moment: each run must handle only
// its instance's clones, or two runs race for one clone (one fails "target busy" and alerts).
func TestExpireInstanceOnlyItsClones(t *testing.T) {
	dir := t.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{StateDir: dir, Instances: map[string]*config.Instance{
		"hmis":  {Name: "hmis", Database: "postgres://dhis@127.0.0.1:1/dhis2"},
		"other": {Name: "other", Database: "postgres://dhis@127.0.0.1:1/other"},
	}}
	exp := time.Now().Add(-time.Hour)
	for _, r := range []clone.Record{
		{Target: "a", Instance: "hmis", Database: "postgres://dhis@127.0.0.1:1/clone_a", Expires: &exp},
		{Target: "b", Instance: "other", Database: "postgres://dhis@127.0.0.1:1/clone_b", Expires: &exp},
		{Target: "c", Instance: "gone", Database: "postgres://dhis@127.0.0.1:1/clone_c", Expires: &exp},
	} {
		if err := cat.PutJSON(clone.BucketClones, r.Target, r); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	got := map[string][]string{}
	for _, in := range []string{"hmis", "other"} {
		res, _ := clone.ExpireInstance(context.Background(), cfg, cat, log, in, time.Now())
		for _, r := range res {
			got[in] = append(got[in], r.Target)
		}
	}
	if len(got["hmis"]) != 2 || got["hmis"][0] != "a" || got["hmis"][1] != "c" || len(got["other"]) != 1 || got["other"][0] != "b" {
		t.Fatalf("expired per instance: %v", got)
	}
}
