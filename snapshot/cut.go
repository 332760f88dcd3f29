package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
)

// CutMarkerEnv names the environment variable through which Take hands the repository's cut
// marker (hex) to the dump producer: restic passes its environment on to the command it
// runs. The environment, unlike argv, is not readable by other users.
const CutMarkerEnv = "DHIS2_LIFE_CUT_MARKER"

// BucketChunker holds each repository's cut marker in the catalogue, by the SHA-256 of the
// repository URL (a URL may hold credentials).
const BucketChunker = "chunker"

// ChunkerRecord is the cached chunker configuration of one repository.
type ChunkerRecord struct {
	RepositoryID string    `json:"repository_id"`
	Polynomial   string    `json:"chunker_polynomial"`
	CutMarker    string    `json:"cut_marker"` // hex
	CheckedAt    time.Time `json:"checked_at"`
}

// cutMarkerRecheck is how long a cached marker is used before `restic cat config` is asked
// again (a repository deleted and initialised anew at the same URL has a new polynomial; a
// stale marker costs deduplication only, never data).
const cutMarkerRecheck = 7 * 24 * time.Hour

// CutMarkerFromEnv returns the marker that Take put into the producer's environment; nil
// when there is none.
func CutMarkerFromEnv() ([]byte, error) {
	v := os.Getenv(CutMarkerEnv)
	if v == "" {
		return nil, nil
	}
	m, err := hex.DecodeString(v)
	if err != nil || len(m) != dumpfmt.CutMarkerSize {
		return nil, fmt.Errorf("%s is not %d hex-encoded bytes", CutMarkerEnv, dumpfmt.CutMarkerSize)
	}
	return m, nil
}

func chunkerKey(url string) string {
	s := sha256.Sum256([]byte(url))
	return hex.EncodeToString(s[:])
}

// cutMarker returns the repository's cut marker from the catalogue, or asks restic for the
// chunker polynomial (once a week at most) and records the marker solved for it. The marker
// only helps deduplication: on any failure the set is taken without cuts (nil).
func (t *taker) cutMarker(ctx context.Context) []byte {
	o := t.o
	key := chunkerKey(o.Repo.URL)
	var rec ChunkerRecord
	if ok, err := o.Catalog.GetJSON(BucketChunker, key, &rec); err == nil && ok && time.Since(rec.CheckedAt) < cutMarkerRecheck {
		if m, err := hex.DecodeString(rec.CutMarker); err == nil && len(m) == dumpfmt.CutMarkerSize {
			return m
		}
	}
	cfg, err := o.Repo.Config(ctx)
	if err != nil {
		o.Log.Warn("could not read the repository's chunker polynomial; this set is stored without cut markers", "err", err)
		return nil
	}
	pol, err := cfg.Polynomial()
	var m []byte
	if err == nil {
		m, err = dumpfmt.CutMarker(pol)
	}
	if err != nil {
		o.Log.Warn("no cut marker for this repository; this set is stored without cut markers", "err", err)
		return nil
	}
	rec = ChunkerRecord{RepositoryID: cfg.ID, Polynomial: cfg.ChunkerPolynomial, CutMarker: hex.EncodeToString(m), CheckedAt: time.Now().UTC()}
	if err := o.Catalog.PutJSON(BucketChunker, key, rec); err != nil {
		o.Log.Warn("could not record the repository's cut marker", "err", err)
	}
	return m
}
