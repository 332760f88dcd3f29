package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
)

// Store opens the catalogue only for the moment it is needed, so the CLI (status, snapshots,
// restore, ...) keeps working while the daemon runs. Its calls are serialised.
type Store struct {
	Path string
	// Wait is how long With keeps retrying while another process holds the catalogue
	// (default 2m).
	Wait time.Duration
	mu   sync.Mutex
}

// With opens the catalogue, runs fn and closes it again.
func (s *Store) With(ctx context.Context, fn func(*catalog.Catalog) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wait := s.Wait
	if wait == 0 {
		wait = 2 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		cat, err := catalog.Open(s.Path)
		if err == nil {
			ferr := fn(cat)
			if cerr := cat.Close(); ferr == nil {
				ferr = cerr
			}
			return ferr
		}
		if !errors.Is(err, catalog.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the catalogue: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
