package scheduler

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

func muninField(n string) string { return strings.NewReplacer("-", "_", ".", "_").Replace(n) }

// MuninConfig writes the munin plugin's `config` output: three graphs (snapshot age, snapshot
// size, drill restore time) with a field per instance; the age graph is critical past rpo.
func MuninConfig(w io.Writer, cfg *config.Config) {
	names := cfg.InstanceNames()
	fmt.Fprintln(w, "multigraph dhis2_life_snapshot_age")
	fmt.Fprintln(w, "graph_title DHIS2 snapshot age\ngraph_vlabel hours\ngraph_category backup\ngraph_args --base 1000 -l 0")
	for _, n := range names {
		fmt.Fprintf(w, "%s.label %s\n", muninField(n), n)
		if in := cfg.Instances[n]; in.RPO.Duration > 0 {
			fmt.Fprintf(w, "%s.critical %g\n", muninField(n), in.RPO.Hours())
		}
	}
	fmt.Fprintln(w, "multigraph dhis2_life_snapshot_size")
	fmt.Fprintln(w, "graph_title DHIS2 snapshot size\ngraph_vlabel bytes\ngraph_category backup\ngraph_args --base 1024 -l 0")
	for _, n := range names {
		fmt.Fprintf(w, "%s_read.label %s read\n%s_added.label %s added\n", muninField(n), n, muninField(n), n)
	}
	fmt.Fprintln(w, "multigraph dhis2_life_drill_restore")
	fmt.Fprintln(w, "graph_title DHIS2 drill restore time (RTO)\ngraph_vlabel seconds\ngraph_category backup\ngraph_args --base 1000 -l 0")
	for _, n := range names {
		fmt.Fprintf(w, "%s.label %s\n", muninField(n), n)
	}
}

// MuninFetch writes the munin plugin's values from a status report ("U" = unknown).
func MuninFetch(w io.Writer, cfg *config.Config, rep *lifecycle.Report) {
	names := cfg.InstanceNames()
	fmt.Fprintln(w, "multigraph dhis2_life_snapshot_age")
	for _, n := range names {
		v := "U"
		if s := rep.Instances[n].LastSnapshot; s != nil {
			v = fmt.Sprintf("%.2f", time.Duration(s.AgeSeconds*float64(time.Second)).Hours())
		}
		fmt.Fprintf(w, "%s.value %s\n", muninField(n), v)
	}
	fmt.Fprintln(w, "multigraph dhis2_life_snapshot_size")
	for _, n := range names {
		read, added := "U", "U"
		if s := rep.Instances[n].LastSnapshot; s != nil {
			read, added = fmt.Sprint(s.Bytes), fmt.Sprint(s.AddedBytes)
		}
		fmt.Fprintf(w, "%s_read.value %s\n%s_added.value %s\n", muninField(n), read, muninField(n), added)
	}
	fmt.Fprintln(w, "multigraph dhis2_life_drill_restore")
	for _, n := range names {
		v := "U"
		if d := rep.Instances[n].LastGoodDrill; d != nil {
			v = fmt.Sprintf("%.1f", d.RestoreSeconds)
		}
		fmt.Fprintf(w, "%s.value %s\n", muninField(n), v)
	}
}
