package lock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrHeld means another process holds the lock.
var ErrHeld = errors.New("lock is held by another process")

// Lock is a held lock.
type Lock struct {
	f    *os.File
	path string
	// Stale is true when the previous holder died without releasing cleanly (its marker
	// was still present): callers should clean up after it (e.g. `restic unlock`).
	Stale bool
	// Previous describes the previous holder when Stale.
	Previous Holder
}

// Holder describes who holds a lock.
type Holder struct {
	PID     int       `json:"pid"`
	Job     string    `json:"job"`
	Started time.Time `json:"started"`
}

// Acquire takes the lock named name in dir without waiting. When it is held, the error
// wraps ErrHeld and says which process and job hold it.
func Acquire(dir, name, job string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	path := filepath.Join(dir, name+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		var h Holder
		b, _ := os.ReadFile(path)
		_ = json.Unmarshal(b, &h)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (pid %d) has run since %s", ErrHeld, h.Job, h.PID, h.Started.Format(time.RFC3339))
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	l := &Lock{f: f, path: path}
	b, _ := os.ReadFile(path)
	if len(b) > 0 {
		// The previous holder wrote its marker and never cleared it: it died.
		l.Stale = true
		_ = json.Unmarshal(b, &l.Previous)
	}
	h := Holder{PID: os.Getpid(), Job: job, Started: time.Now().UTC()}
	b, _ = json.Marshal(h)
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(b, 0)
		_ = f.Sync()
	}
	return l, nil
}

// Release clears the marker and releases the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
	return err
}
