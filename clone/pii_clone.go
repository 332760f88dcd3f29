package clone

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/restore"
)

// collectPII reads production's identifying values from the restored, not yet scrubbed copy db.
func (p *Prepared) collectPII(ctx context.Context, db string) error {
	if !p.Scrub.PII.On() || p.sought != nil {
		return nil
	}
	c, err := p.srv.connFor(db).Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return p.collect(ctx, c)
}

// collect reads production's identifying values from conn's database, for the scan; the
// scrub of this database maps the same values, so it need not read them again.
func (p *Prepared) collect(ctx context.Context, conn *pgx.Conn) error {
	t0 := time.Now()
	s, err := CollectPII(ctx, conn, p.Scrub.PII)
	if err != nil {
		return fmt.Errorf("collecting production's identifying values before the scrub: %w", err)
	}
	p.o.Log.Debug("PII values collected", "sought", s.Len(), "mapped", len(s.mapped), "took", time.Since(t0).Round(time.Millisecond))
	p.sought = s
	p.Scrub.PII.values = s.mapped
	return nil
}

// afterData pseudonymises the database being restored once its data is loaded, before its
// indexes, constraints and triggers are built (restore.Options.AfterData): production's
// identifying values are collected, then the tables are rewritten while no index must follow.
func (p *Prepared) afterData(ctx context.Context, conn *pgx.Conn, release func(table string)) error {
	t0 := time.Now()
	if err := p.collect(ctx, conn); err != nil {
		return err
	}
	if _, err := p.Scrub.ApplyPII(ctx, conn, release); err != nil {
		return fmt.Errorf("pseudonymising personal data: %w", err)
	}
	p.piiSeconds = time.Since(t0).Seconds()
	return nil
}

// FilesDir is the file store directory of a DHIS2_HOME (filestore.container of its dhis.conf
// when the provider is the file system, default files).
func FilesDir(home string) string {
	container := "files"
	if c, err := dhisconf.Read(confPath(home)); err == nil {
		if v := c.Get("filestore.container"); v != "" && (c.Get("filestore.provider") == "" || c.Get("filestore.provider") == "filesystem") {
			container = v
		}
	}
	if filepath.IsAbs(container) {
		return container
	}
	return filepath.Join(home, container)
}

// piiProof replaces people's files in the new home by placeholders, then scans the working
// copy and its file store for production's identifying values: any hit fails the clone.
func (p *Prepared) piiProof(ctx context.Context, home string, rec *Record) error {
	if !p.Scrub.PII.On() {
		return nil
	}
	t0 := time.Now()
	c, err := p.srv.connFor(p.Temp).Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	filesDir := ""
	if home != "" {
		filesDir = FilesDir(home)
		n, err := WritePlaceholders(ctx, c, filesDir)
		if err != nil {
			return fmt.Errorf("writing placeholders into the clone's file store: %w", err)
		}
		rec.Changes = append(rec.Changes, Change{Rule: "pii.files.store", Rows: int64(n), What: "files of people replaced by placeholders in the clone's file store"})
		p.o.Log.Debug("PII placeholders written", "files", n, "took", time.Since(t0).Round(time.Millisecond))
	}
	if p.sought == nil {
		// A copy of an existing template: its values were sought when it was built, but the
		// file store is restored anew, so seek production's values in production itself.
		in := p.o.Config.Instances[p.o.Target.Instance]
		pc, err := app.InstanceConn(in).Connect(ctx)
		if err != nil {
			rec.Warnings = append(rec.Warnings, "PII scan of this template copy not run: production could not be read ("+err.Error()+")")
			return nil
		}
		p.sought, err = CollectPII(ctx, pc, p.Scrub.PII)
		pc.Close(context.Background())
		if err != nil {
			return fmt.Errorf("collecting production's identifying values: %w", err)
		}
	}
	p.sought.log = p.o.Log
	rep, err := ScanBig(ctx, c, filesDir, p.sought, p.Scrub.PII.bigRows())
	if err != nil {
		return err
	}
	rep.Seconds = time.Since(t0).Seconds()
	rec.PII = rep
	chk := Check{Rule: "pii.scan", OK: len(rep.Hits) == 0}
	if !chk.OK {
		for _, h := range rep.Hits {
			chk.Violations += h.Count
		}
		chk.Detail = fmt.Sprintf("production values found in %d columns/files", len(rep.Hits))
	}
	rec.Checks = append(rec.Checks, chk)
	p.o.Log.Info("PII scan", "tables", rep.Tables, "columns", rep.Columns, "values", rep.Values, "files", rep.Files, "hits", len(rep.Hits), "took", time.Since(t0).Round(time.Millisecond))
	return rep.Error()
}

// ScanTarget runs the PII scan on demand: production's identifying values, read from the
// target's instance database, sought in the target's database and file store.
func ScanTarget(ctx context.Context, cfg *config.Config, t *config.Target) (*ScanReport, error) {
	in, ok := cfg.Instances[t.Instance]
	if !ok {
		return nil, fmt.Errorf("%w: target %s clones unknown instance %s", ErrUnknownTarget, t.Name, t.Instance)
	}
	o := PIIFor(t)
	o.Mode = PIIPseudonymise
	t0 := time.Now()
	prod, err := app.InstanceConn(in).Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading production's identifying values: %w", err)
	}
	s, err := CollectPII(ctx, prod, o)
	prod.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("reading production's identifying values: %w", err)
	}
	tc := TargetConn(t)
	if err := restore.GuardProduction(ctx, cfg, tc); err != nil {
		return nil, err
	}
	c, err := tc.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to the clone %s: %w", pg.Redact(t.Database), err)
	}
	defer c.Close(context.Background())
	filesDir := ""
	if t.DHIS2Home != "" {
		if _, err := os.Stat(t.DHIS2Home); err == nil {
			filesDir = FilesDir(t.DHIS2Home)
		}
	}
	rep, err := Scan(ctx, c, filesDir, s)
	if err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(t0).Seconds()
	return rep, nil
}

// MissingUIDs returns those of uids that name no tracked entity attribute or data element in
// the database of c (config check of pii_keep_attributes and pii_extra_attributes).
func MissingUIDs(ctx context.Context, c pg.Conn, uids []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT u FROM unnest($1::text[]) u
		WHERE NOT EXISTS (SELECT 1 FROM trackedentityattribute WHERE uid = u) AND NOT EXISTS (SELECT 1 FROM dataelement WHERE uid = u)`, uids)
	if err != nil {
		return nil, fmt.Errorf("looking up uids: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
