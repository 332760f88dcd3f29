package restore

import (
	"context"
	"errors"
	"fmt"
	"net"
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
