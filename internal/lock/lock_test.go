package lock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestAcquireExclusiveAndRelease(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "hmis", "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if l.Stale {
		t.Fatal("fresh lock reported stale")
	}
	if _, err := Acquire(dir, "hmis", "snapshot"); !errors.Is(err, ErrHeld) {
		t.Fatalf("second acquire: want ErrHeld, got %v", err)
	}
	if _, err := Acquire(dir, "other", "snapshot"); err != nil {
		t.Fatalf("other instance must not be blocked: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir, "hmis", "verify")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Stale {
		t.Fatal("cleanly released lock reported stale")
	}
	l2.Release()
}

// A process killed while holding the lock leaves its marker; the kernel drops the flock.
func TestKilledHolderIsRecovered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hmis.lock")
	// Simulate a holder that died: flock in a child shell that is killed.
	cmd := exec.Command("sh", "-c", `exec 9>>"$1"; flock -n 9; printf '{"pid":1,"job":"snapshot"}' > "$1"; kill -9 $$`, "sh", path)
	_ = cmd.Run()
	if b, _ := os.ReadFile(path); len(b) == 0 {
		t.Fatal("child did not write its marker")
	}
	l, err := Acquire(dir, "hmis", "snapshot")
	if err != nil {
		t.Fatalf("lock of a killed process must be recoverable: %v", err)
	}
	defer l.Release()
	if !l.Stale || l.Previous.Job != "snapshot" {
		t.Fatalf("want stale lock from the killed snapshot, got %+v", l)
	}
}
