package pg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetConfValue(t *testing.T) {
	f := filepath.Join(t.TempDir(), "postgresql.conf")
	orig := "port = 5433\t\t# (change requires restart)\n#port = 1\nlisten_addresses = 'localhost' # what IP\n"
	if err := os.WriteFile(f, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := ConfValue(f, "port"); !ok || v != "5433" {
		t.Fatalf("port = %q %v", v, ok)
	}
	if v, _, _ := ConfValue(f, "listen_addresses"); v != "localhost" {
		t.Fatalf("listen_addresses = %q", v)
	}
	for i := 0; i < 2; i++ { // the second call changes nothing
		if err := SetConfValue(f, "port", "5432"); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(f)
	if v, _, _ := ConfValue(f, "port"); v != "5432" || strings.Count(string(b), "set by dhis2-life") != 1 {
		t.Fatalf("after SetConfValue: port %q\n%s", v, b)
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", fi.Mode())
	}
	if err := SetConfValue(f, "listen_addresses", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := ConfValue(f, "listen_addresses"); v != "127.0.0.1" {
		t.Fatalf("listen_addresses = %q", v)
	}
}

func TestBinDirFor(t *testing.T) {
	c := Cluster{Major: 13, BinDir: "/usr/lib/postgresql/13/bin"}
	if got := c.BinDirFor(15); got != "/usr/lib/postgresql/15/bin" {
		t.Errorf("BinDirFor(15) = %s", got)
	}
}
