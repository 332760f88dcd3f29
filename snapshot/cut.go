package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// ChunkerEnv names the environment variable through which Take hands the repository's
// chunker polynomial (hex) to the dump producer, which derives its cut marker and pad from it
// (dumpfmt.NewCuts): restic passes its environment on to the command it runs. The
// environment, unlike argv, is not readable by other users.
const ChunkerEnv = "DHIS2_LIFE_CHUNKER_POLYNOMIAL"

// BucketChunker holds each repository's chunker polynomial in the catalogue, by the SHA-256
// of the repository URL (a URL may hold credentials).
const BucketChunker = "chunker"

// ChunkerRecord is the cached chunker configuration of one repository.
type ChunkerRecord struct {
	RepositoryID string    `json:"repository_id"`
	Polynomial   string    `json:"chunker_polynomial"`
	CheckedAt    time.Time `json:"checked_at"`
}

// chunkerRecheck is how long a cached polynomial is used before `restic cat config` is asked
// again (a repository deleted and initialised anew at the same URL has a new polynomial; a
// stale one costs deduplication only, never data).
const chunkerRecheck = 7 * 24 * time.Hour

// CutsFromEnv returns the cuts for the polynomial that Take put into the producer's
// environment; nil when there is none.
func CutsFromEnv() (*dumpfmt.Cuts, error) {
	v := os.Getenv(ChunkerEnv)
	if v == "" {
		return nil, nil
	}
	pol, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return nil, fmt.Errorf("%s is not a hex number", ChunkerEnv)
	}
	return dumpfmt.NewCuts(pol)
}

func chunkerKey(url string) string {
	s := sha256.Sum256([]byte(url))
	return hex.EncodeToString(s[:])
}

// chunkerPolynomial returns the repository's chunker polynomial (hex) from the catalogue, or
// asks restic (once a week at most) and records it. It only serves deduplication: on any
// failure the set is taken without cuts ("").
func (t *taker) chunkerPolynomial(ctx context.Context) string {
	o := t.o
	key := chunkerKey(o.Repo.URL)
	var rec ChunkerRecord
	if ok, err := o.Catalog.GetJSON(BucketChunker, key, &rec); err == nil && ok && rec.Polynomial != "" && time.Since(rec.CheckedAt) < chunkerRecheck {
		return rec.Polynomial
	}
	pol, err := LearnChunker(ctx, o.Catalog, o.Repo)
	switch {
	case err != nil && pol == "":
		o.Log.Warn("no cut marker for this repository; this set is stored without cut markers", "err", err)
	case err != nil:
		o.Log.Warn("the chunker polynomial is not cached; the next snapshot asks restic again", "err", err)
	}
	return pol
}

// LearnChunker asks restic for the chunker polynomial of repo (one restic run, about half a
// second of key derivation) and records it in the catalogue, where snapshots find it; `init`
// calls it so that the first snapshot need not. It returns the polynomial (hex).
func LearnChunker(ctx context.Context, cat *catalog.Catalog, repo *restic.Repo) (string, error) {
	cfg, err := repo.Config(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the repository's chunker polynomial: %w", err)
	}
	pol, err := cfg.Polynomial()
	if err == nil {
		_, err = dumpfmt.NewCuts(pol)
	}
	if err != nil {
		return "", err
	}
	rec := ChunkerRecord{RepositoryID: cfg.ID, Polynomial: cfg.ChunkerPolynomial, CheckedAt: time.Now().UTC()}
	if err := cat.PutJSON(BucketChunker, chunkerKey(repo.URL), rec); err != nil {
		return rec.Polynomial, fmt.Errorf("recording the repository's chunker polynomial: %w", err)
	}
	return rec.Polynomial, nil
}

// ForgetChunker drops the cached polynomial of the repository at url: `init` calls it when it
// created a repository there (a new repository has a new polynomial).
func ForgetChunker(c *catalog.Catalog, url string) error {
	return c.DeleteKey(BucketChunker, chunkerKey(url))
}
