package restore

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDrillNeverReadsOutsideTheFileStore: storage keys with "..", absolute keys and symlinks in
// the restored store that point outside are reported, and the file outside is never read (its
// size and md5 would otherwise match the row).
func TestDrillNeverReadsOutsideTheFileStore(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "secret")
	body := []byte("outside the store")
	if err := os.WriteFile(outside, body, 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "files", "files")
	if err := os.MkdirAll(filepath.Join(store, "document"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "document", "ok"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(store, "document", "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../secret", filepath.Join(store, "document", "rel-link")); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	md := hex.EncodeToString(sum[:])
	root, err := openStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if p := checkFile(root, "document/ok", int64(len(body)), md); p != "" {
		t.Fatalf("file inside the store: %s", p)
	}
	for _, key := range []string{"../../secret", "document/../../../secret", "document/abs-link", "document/rel-link", outside} {
		p := checkFile(root, key, int64(len(body)), md)
		if p == "" {
			t.Errorf("key %q read a file outside the store", key)
		} else if !strings.Contains(p, "outside") && !strings.Contains(p, "missing") {
			t.Errorf("key %q: %s", key, p)
		}
	}
	// A store directory that is itself a symlink out is not opened.
	if err := os.Symlink(dir, filepath.Join(dir, "files", "linked")); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(filepath.Join(dir, "files", "linked")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("symlinked store opened: %v", err)
	}
}
