package upgrade

import (
	"archive/zip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeZip(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dhis.war")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	for name, body := range files {
		w, _ := z.Create(name)
		w.Write([]byte(body))
	}
	z.Close()
	f.Close()
	return p
}

func TestWARVersion(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"build.properties", map[string]string{"WEB-INF/classes/build.properties": "build.revision=abc\nbuild.version = 2.41.2\n"}, "2.41.2"},
		{"api jar", map[string]string{"WEB-INF/lib/dhis-api-2.40.4.1.jar": "", "WEB-INF/lib/other-1.0.jar": ""}, "2.40.4.1"},
		{"snapshot jar", map[string]string{"WEB-INF/lib/dhis-service-core-2.42-SNAPSHOT.jar": ""}, "2.42"},
	} {
		got, err := WARVersion(writeZip(t, tt.files))
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := WARVersion(writeZip(t, map[string]string{"index.html": ""})); err == nil || !strings.Contains(err.Error(), "is it a DHIS2 WAR") {
		t.Errorf("not a DHIS2 WAR: %v", err)
	}
	if _, err := WARVersion(filepath.Join(t.TempDir(), "missing.war")); err == nil || !strings.Contains(err.Error(), "missing.war") {
		t.Errorf("missing WAR: %v", err)
	}
}

func TestVersionOrderAndNeeds(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		less bool
	}{{"2.41.9", "2.41.10", true}, {"2.41.10", "2.41.9", false}, {"2.40", "2.40.0", false}, {"2.39.5", "2.40", true}, {"2.42-SNAPSHOT", "2.42.1", true}} {
		if got := versionLess(tt.a, tt.b); got != tt.less {
			t.Errorf("versionLess(%s, %s) = %v", tt.a, tt.b, got)
		}
	}
	if j, p := needs("2.41.2"); j != 17 || p != 13 {
		t.Errorf("needs(2.41.2) = %d, %d", j, p)
	}
	if j, _ := needs("2.40.1"); j != 11 {
		t.Errorf("needs(2.40.1) java = %d", j)
	}
	if majorLine("2.41.17") != "2.41" {
		t.Error("majorLine")
	}
}

func TestLineDiffRedacts(t *testing.T) {
	d := lineDiff("a = 1\nconnection.password = old\nb = 2", "a = 1\nconnection.password = new\nb = 3")
	got := strings.Join(d, "|")
	if got != "- connection.password = <redacted>|- b = 2|+ connection.password = <redacted>|+ b = 3" {
		t.Fatalf("lineDiff = %q", got)
	}
	if strings.Contains(got, "old") || strings.Contains(got, "new") {
		t.Fatal("secret in diff")
	}
}
