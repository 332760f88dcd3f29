package pg

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, dsn := range []string{
		"postgres://dhis:s3cret@127.0.0.1:5432/dhis2?sslmode=disable",
		"postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable&password=s3cret",
		"postgresql://dhis@127.0.0.1/dhis2?password=s3cret",
		"host=127.0.0.1 user=dhis password=s3cret dbname=dhis2",
	} {
		got := Redact(dsn)
		if strings.Contains(got, "s3cret") || !strings.Contains(got, "dhis2") {
			t.Errorf("Redact(%q) = %q", dsn, got)
		}
	}
	if d := "postgres://dhis@127.0.0.1/dhis2?sslmode=disable"; Redact(d) != d {
		t.Errorf("Redact changed a DSN without a password: %q", Redact(d))
	}
}
