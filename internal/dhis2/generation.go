package dhis2

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// FlywayVersion returns DHIS2's latest successful Flyway version ("" when the database has no
// flyway_schema_history, i.e. is not a DHIS2 ≥ 2.31 database).
func FlywayVersion(ctx context.Context, q pg.Querier) (string, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('public.flyway_schema_history') IS NOT NULL`).Scan(&exists); err != nil {
		return "", fmt.Errorf("looking for flyway_schema_history: %w", err)
	}
	if !exists {
		return "", nil
	}
	var v *string
	err := q.QueryRow(ctx, `SELECT version FROM public.flyway_schema_history WHERE success AND version IS NOT NULL ORDER BY installed_rank DESC LIMIT 1`).Scan(&v)
	if err == pgx.ErrNoRows || v == nil {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading flyway version: %w", err)
	}
	return *v, nil
}

// Generation is a DHIS2 schema generation, e.g. 2.42.
type Generation struct{ Major, Minor int }

func (g Generation) String() string { return fmt.Sprintf("%d.%d", g.Major, g.Minor) }

// JSONSettings reports whether systemsetting values are JSON-encoded (before 2.42).
func (g Generation) JSONSettings() bool { return g.Minor < 42 }

// AtLeast reports whether g is major.minor or newer.
func (g Generation) AtLeast(major, minor int) bool {
	return g.Major > major || (g.Major == major && g.Minor >= minor)
}

// GenerationOf returns the DHIS2 major line of a flyway version: "2.42.17" → 2.42.
func GenerationOf(flyway string) (Generation, bool) {
	parts := strings.Split(flyway, ".")
	if len(parts) < 2 {
		return Generation{}, false
	}
	a, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(parts[1])
	return Generation{a, b}, err1 == nil && err2 == nil
}

// ErrGeneration is returned for a DHIS2 schema generation the scrub rules do not know.
var ErrGeneration = errors.New("unrecognised DHIS2 schema generation")

// Supported DHIS2 schema generations of the scrub rules (2.38 merged users into userinfo;
// 2.44 is the newest whose schema the rules were checked against).
const (
	MinScrubMinor = 38
	MaxScrubMinor = 44
)

// ScrubGeneration returns the generation of a Flyway version ("2.42.17") and refuses those
// the scrub rules were not written for.
func ScrubGeneration(flyway string) (Generation, error) {
	if flyway == "" {
		return Generation{}, fmt.Errorf("%w: the set has no flyway_schema_history version (not a DHIS2 ≥ 2.31 database?)", ErrGeneration)
	}
	g, ok := GenerationOf(flyway)
	if !ok || g.Major != 2 || g.Minor < MinScrubMinor || g.Minor > MaxScrubMinor {
		return Generation{}, fmt.Errorf("%w: flyway version %s; the scrub profiles know 2.%d to 2.%d, so nothing was changed (upgrade dhis2-life)", ErrGeneration, flyway, MinScrubMinor, MaxScrubMinor)
	}
	return g, nil
}

// RequiredExtensions are the extensions DHIS2 will not start without.
var RequiredExtensions = []string{"postgis", "pg_trgm", "btree_gin"}

// FileResource is one fileresource row with a file in the file store.
type FileResource struct {
	StorageKey string
	Length     int64
	MD5        string
}

// FileResources lists the fileresource rows that name a file in the store, by storage key;
// ok is false when the database has no fileresource table.
func FileResources(ctx context.Context, q pg.Querier) (frs []FileResource, ok bool, err error) {
	if err := q.QueryRow(ctx, "SELECT to_regclass('public.fileresource') IS NOT NULL").Scan(&ok); err != nil || !ok {
		return nil, false, err
	}
	rows, err := q.Query(ctx, "SELECT storagekey, contentlength, contentmd5 FROM public.fileresource WHERE storagekey IS NOT NULL AND storagekey <> '' ORDER BY storagekey")
	if err != nil {
		return nil, true, fmt.Errorf("listing file resources: %w", err)
	}
	frs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (FileResource, error) {
		var f FileResource
		return f, r.Scan(&f.StorageKey, &f.Length, &f.MD5)
	})
	if err != nil {
		return nil, true, fmt.Errorf("listing file resources: %w", err)
	}
	return frs, true, nil
}
