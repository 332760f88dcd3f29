package restore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// TestGuardProductionLocalAddress: the production database reached through one of this
// host's own non-loopback addresses is still the production database.
func TestGuardProductionLocalAddress(t *testing.T) {
	var local net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			local = ipn.IP
			break
		}
	}
	if local == nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no non-loopback IPv4 address on this host: the guard cannot be tested here")
		}
		t.Skip("no non-loopback IPv4 address on this host")
	}
	cfg := &config.Config{Instances: map[string]*config.Instance{
		"hmis": {Name: "hmis", Database: "postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable"},
	}}
	target := pg.Conn{DSN: fmt.Sprintf("postgres://dhis@%s:5432/dhis2?sslmode=disable", local)}
	if err := GuardProduction(context.Background(), cfg, target); !errors.Is(err, ErrUnsafeTarget) {
		t.Fatalf("restore into the production database via %s: %v, want ErrUnsafeTarget", local, err)
	}
	other := pg.Conn{DSN: fmt.Sprintf("postgres://dhis@%s:5432/dhis2_copy?sslmode=disable", local)}
	if err := GuardProduction(context.Background(), cfg, other); err != nil {
		t.Fatalf("another database on the same server: %v", err)
	}
}

func TestToolErrorPrefersTheServerError(t *testing.T) {
	out := `pg_restore: error: a worker process died unexpectedly
pg_restore: error: could not execute query: ERROR:  could not extend file "base/16384/16999": No space left on device
HINT:  Check free disk space.`
	if got := toolError(out); !strings.Contains(got, "No space left on device") || !strings.HasPrefix(got, "ERROR:") {
		t.Fatalf("toolError = %q", got)
	}
	if got := toolError("pg_restore: warning: x\npg_restore: error: schema \"x\" already exists\n"); got != `pg_restore: error: schema "x" already exists` {
		t.Fatalf("toolError = %q", got)
	}
}
