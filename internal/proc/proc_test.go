package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSweep: entries of dead processes go, those of live ones (and unknown names) stay.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := strconv.Itoa(dead.Process.Pid)
	live := strconv.Itoa(os.Getppid())
	for _, n := range []string{"restore-" + deadPID + "-1", "drill-files-" + deadPID + "-2", "pgpass-" + deadPID + "-3",
		"restore-" + live + "-4", "restore-5", "other-" + deadPID + "-6"} {
		if err := os.MkdirAll(filepath.Join(dir, n, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := Sweep(dir, TempKinds...)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 3 {
		t.Fatalf("removed %v, want the three entries of pid %s", gone, deadPID)
	}
	for _, n := range []string{"restore-" + live + "-4", "restore-5", "other-" + deadPID + "-6"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
	if gone, err := Sweep(filepath.Join(dir, "missing")); err != nil || len(gone) != 0 {
		t.Fatalf("missing dir: %v %v", gone, err)
	}
}

func TestCleanEnv(t *testing.T) {
	got := CleanEnv([]string{"PATH=/bin", "AWS_SECRET_ACCESS_KEY=s", "AWS_ACCESS_KEY_ID=a", "RESTIC_PASSWORD=p", "PGPASSFILE=/x", "HOME=/root"})
	if len(got) != 3 || got[0] != "PATH=/bin" || got[1] != "PGPASSFILE=/x" || got[2] != "HOME=/root" {
		t.Fatalf("CleanEnv = %v", got)
	}
}
