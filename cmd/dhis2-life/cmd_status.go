package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
)

// loadStatus builds the status report from the catalogue or, while a running daemon holds it,
// from the daemon's /status endpoint.
func loadStatus(ctx context.Context, a *app.App) (*lifecycle.Report, error) {
	cat, err := a.Catalog()
	if err == nil {
		return lifecycle.Status(a.Config, cat, time.Now())
	}
	if !errors.Is(err, catalog.ErrLocked) || a.Config.Daemon.MetricsListen == "" {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Config.Daemon.MetricsListen+"/status", nil)
	resp, herr := http.DefaultClient.Do(req)
	if herr != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, err
	}
	var rep lifecycle.Report
	if derr := json.NewDecoder(resp.Body).Decode(&rep); derr != nil {
		return nil, fmt.Errorf("reading the daemon's status: %w", derr)
	}
	return &rep, nil
}

func cmdStatus() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show snapshot and drill ages, next runs and failures; exit 3 when limits are exceeded",
		Description: `Per instance: the newest snapshot set (age, size), the newest drill and the newest
successful one (age, measured restore time), the next scheduled runs, clones, and failed runs
in the last 7 days. Exits 3 when the newest snapshot set is older than instances.NAME.rpo, the
newest successful drill is older than instances.NAME.drill_max_age, or the newest drill failed:
usable as a Nagios-style check.

EXAMPLES:
   dhis2-life status
   dhis2-life status --json | jq '.instances.hmis.last_snapshot.age_seconds'`,
		Flags: []cli.Flag{jsonFlag, instanceFlag},
		Action: func(c *cli.Context) error {
			a, err := load(c)
			if err != nil {
				return err
			}
			defer a.Close()
			only := c.String("instance")
			if only != "" {
				if _, err := a.Config.Instance(only); err != nil {
					return usageErr("%v", err)
				}
			}
			rep, err := loadStatus(c.Context, a)
			if err != nil {
				return err
			}
			addWALStatus(c.Context, a, rep)
			if only != "" {
				rep.Instances = map[string]*lifecycle.InstanceStatus{only: rep.Instances[only]}
				rep.OK = rep.Instances[only].OK
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else {
				printStatus(c, rep)
			}
			if !rep.OK {
				return &exitError{code: exitVerify, err: fmt.Errorf("limits exceeded: %s", strings.Join(rep.SortedProblems(), "; "))}
			}
			return nil
		},
	}
}

func printStatus(c *cli.Context, rep *lifecycle.Report) {
	w := c.App.Writer
	names := make([]string, 0, len(rep.Instances))
	for n := range rep.Instances {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := rep.Instances[n]
		verdict := "OK"
		if !st.OK {
			verdict = "PROBLEM"
		}
		fmt.Fprintf(w, "%s: %s\n", n, verdict)
		if s := st.LastSnapshot; s != nil {
			fmt.Fprintf(w, "  last snapshot   %s, %s ago, %s read, %s added (%d sets)\n", s.ID, ui.Duration(secs(s.AgeSeconds)), ui.Bytes(s.Bytes), ui.Bytes(s.AddedBytes), st.Snapshots)
		} else {
			fmt.Fprintf(w, "  last snapshot   none\n")
		}
		if d := st.LastGoodDrill; d != nil {
			fmt.Fprintf(w, "  last good drill %s ago, set %s, restore %s (RTO)\n", ui.Duration(secs(d.AgeSeconds)), d.SetID, ui.Duration(secs(d.RestoreSeconds)))
		} else {
			fmt.Fprintf(w, "  last good drill none\n")
		}
		if d := st.LastDrill; d != nil && !d.OK {
			fmt.Fprintf(w, "  newest drill    FAILED %s ago (set %s)\n", ui.Duration(secs(d.AgeSeconds)), d.SetID)
		}
		for _, job := range lifecycle.Jobs {
			if t, ok := st.NextRuns[job]; ok {
				fmt.Fprintf(w, "  next %-10s %s (in %s)\n", job, t.Local().Format(time.RFC3339), ui.Duration(time.Until(t)))
			}
		}
		if r := st.Repository; r != nil {
			fmt.Fprintf(w, "  repository      %s stored (%s before compression), measured %s\n", ui.Bytes(r.Bytes), ui.Bytes(r.UncompressedBytes), ui.Age(r.MeasuredAt, time.Now()))
		}
		fmt.Fprintf(w, "  failures (7d)   %d\n", st.Failures7d)
		fmt.Fprintf(w, "  clones          %d\n", len(st.Clones))
		printWALStatus(w, st.WAL)
		for _, p := range st.Problems {
			fmt.Fprintf(w, "  PROBLEM: %s\n", p)
		}
	}
}
