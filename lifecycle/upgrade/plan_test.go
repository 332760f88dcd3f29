package upgrade

import (
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/pg"
)

func TestGreenCluster(t *testing.T) {
	for _, c := range []struct {
		blue      pg.Cluster
		data, bin string
	}{
		{pg.Cluster{Kind: pg.KindPGCtl, Major: 13, DataDir: "/var/lib/postgresql/13/main", BinDir: "/usr/lib/postgresql/13/bin"}, "/var/lib/postgresql/15/main", "/usr/lib/postgresql/15/bin"},
		{pg.Cluster{Kind: pg.KindPGCtl, Major: 13, DataDir: "/srv/pgdata", BinDir: "/opt/pg13/bin"}, "/srv/pgdata-15", "/usr/lib/postgresql/15/bin"},
		{pg.Cluster{Kind: pg.KindDebian, Major: 13, Name: "main", DataDir: "/data/13/main", BinDir: "/usr/lib/postgresql/13/bin"}, "/var/lib/postgresql/15/main", "/usr/lib/postgresql/15/bin"},
	} {
		g := greenCluster(c.blue, 15)
		if g.DataDir != c.data || g.BinDir != c.bin || g.Major != 15 || g.Port != c.blue.Port {
			t.Errorf("green of %+v = %+v, want data %s bin %s", c.blue, g, c.data, c.bin)
		}
	}
	if g := greenCluster(pg.Cluster{Kind: pg.KindDebian, Major: 13, Name: "main"}, 15); g.ConfDir != "/etc/postgresql/15/main" {
		t.Errorf("debian green conf dir %s", g.ConfDir)
	}
}

func TestDiskNeed(t *testing.T) {
	const gb = 1 << 30
	if n := diskNeed("copy", 10*gb); n < 11*gb {
		t.Errorf("copy of 10 GiB needs %d, want at least 11 GiB", n)
	}
	if n := diskNeed("link", 10*gb); n > gb {
		t.Errorf("link of 10 GiB needs %d, want well under 1 GiB", n)
	}
}
