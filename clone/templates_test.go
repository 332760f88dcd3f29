package clone

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

// Dropping the templates of target "t" must not drop those of "t-2" (configured) or of
// "t_old" (recorded in the catalogue), whose names also start with t's template prefix.
func TestDropTemplatesKeepsOtherTargets(t *testing.T) {
	pg := testenv.StartPostgres(t)
	base := fmt.Sprintf("t%d", time.Now().UnixNano()%1e9)
	mine, other, recorded := TemplateName(base, "s1"), TemplateName(base+"-2", "s2"), TemplateName(base+"_old", "s3")
	for _, db := range []string{mine, other, recorded} {
		pg.AdminExec(t, "postgres", fmt.Sprintf(`CREATE DATABASE %q`, db))
		db := db
		t.Cleanup(func() { pg.AdminExec(t, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %q`, db)) })
	}
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.PutJSON(BucketTemplates, recorded, templateRecord{Name: recorded, Target: base + "_old"}); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Targets: map[string]*config.Target{base: {Name: base}, base + "-2": {Name: base + "-2"}}}
	admin := pg.AdminConn(t, "postgres")
	ctx := context.Background()
	if err := dropTemplates(ctx, cfg, cat, admin, base, "", slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	for db, want := range map[string]bool{mine: false, other: true, recorded: true} {
		if ok, err := dbExists(ctx, admin, db); err != nil || ok != want {
			t.Errorf("%s exists = %v (%v), want %v", db, ok, err, want)
		}
	}
}
