package lifecycle

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/pitr"
)

// Report is `status --json` (contract: {"instances": {"NAME": {"last_snapshot", "last_drill", ...}}}).
type Report struct {
	Time      time.Time                  `json:"time"`
	OK        bool                       `json:"ok"`
	Instances map[string]*InstanceStatus `json:"instances"`
}

// InstanceStatus is one instance's state.
type InstanceStatus struct {
	LastSnapshot  *SnapshotStatus      `json:"last_snapshot"`
	LastDrill     *DrillStatus         `json:"last_drill"`
	LastGoodDrill *DrillStatus         `json:"last_good_drill"`
	Snapshots     int                  `json:"snapshots"`
	NextRuns      map[string]time.Time `json:"next_runs"`
	LastRuns      map[string]RunStatus `json:"last_runs"`
	Failures7d    int                  `json:"failures_7d"`
	Clones        []json.RawMessage    `json:"clones"`
	// Repository is the repository's stored size as last measured (after a daemon snapshot).
	Repository *RepositorySize `json:"repository"`
	// RPOSeconds and DrillMaxAgeSeconds are the configured limits (0 = none).
	RPOSeconds         float64  `json:"rpo_seconds"`
	DrillMaxAgeSeconds float64  `json:"drill_max_age_seconds"`
	Problems           []string `json:"problems"`
	OK                 bool     `json:"ok"`
	// WAL is the WAL archiving state of instances with [instances.NAME.wal], added by
	// LoadStatus (it needs the database, the catalogue does not have it).
	WAL *pitr.WALStatus `json:"wal,omitempty"`
}

// SnapshotStatus describes the newest snapshot set.
type SnapshotStatus struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`
	Bytes      int64     `json:"bytes"`
	AddedBytes int64     `json:"added_bytes"`
	Rows       int64     `json:"rows"`
}

// DrillStatus describes a drill.
type DrillStatus struct {
	ID             string    `json:"id"`
	SetID          string    `json:"set_id"`
	Time           time.Time `json:"time"`
	AgeSeconds     float64   `json:"age_seconds"`
	OK             bool      `json:"ok"`
	RestoreSeconds float64   `json:"restore_seconds"`
	DataAgeSeconds float64   `json:"data_age_seconds"`
}

// RunStatus is the newest run of a job.
type RunStatus struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
}

// Status builds the status report from the catalogue.
func Status(cfg *config.Config, cat *catalog.Catalog, now time.Time) (*Report, error) {
	rep := &Report{Time: now.UTC(), OK: true, Instances: map[string]*InstanceStatus{}}
	clones := map[string][]json.RawMessage{}
	err := cat.ListJSON("clones", func(_ string, raw []byte) error {
		var c struct {
			Instance string `json:"instance"`
		}
		if json.Unmarshal(raw, &c) == nil {
			clones[c.Instance] = append(clones[c.Instance], json.RawMessage(raw))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range cfg.InstanceNames() {
		in := cfg.Instances[name]
		st := &InstanceStatus{NextRuns: NextRuns(cfg, now), LastRuns: map[string]RunStatus{}, Clones: clones[name],
			RPOSeconds: in.RPO.Seconds(), DrillMaxAgeSeconds: in.DrillMaxAge.Seconds(), Problems: []string{}}
		if st.Clones == nil {
			st.Clones = []json.RawMessage{}
		}
		snaps, err := cat.Snapshots(name)
		if err != nil {
			return nil, err
		}
		st.Snapshots = len(snaps)
		var rs RepositorySize
		if ok, err := cat.GetJSON(BucketRepository, name, &rs); err == nil && ok {
			st.Repository = &rs
		}
		if len(snaps) > 0 {
			s := snaps[len(snaps)-1]
			ss := &SnapshotStatus{ID: s.ID, Time: s.Time, AgeSeconds: now.Sub(s.Time).Seconds()}
			if m, err := manifest.Parse(s.Manifest); err == nil {
				ss.Bytes, ss.AddedBytes, ss.Rows = m.TotalBytes(), m.AddedBytes(), m.TotalRows()
			}
			st.LastSnapshot = ss
		}
		drills, err := cat.Drills(name)
		if err != nil {
			return nil, err
		}
		for i := len(drills) - 1; i >= 0; i-- {
			d := drills[i]
			ds := &DrillStatus{ID: d.ID, SetID: d.SetID, Time: d.End, AgeSeconds: now.Sub(d.End).Seconds(), OK: d.OK,
				RestoreSeconds: d.RestoreSeconds, DataAgeSeconds: d.DataAgeSeconds}
			if st.LastDrill == nil {
				st.LastDrill = ds
			}
			if d.OK {
				st.LastGoodDrill = ds
				break
			}
		}
		runs, err := cat.Runs(name, "", time.Time{})
		if err != nil {
			return nil, err
		}
		weekAgo := now.Add(-7 * 24 * time.Hour)
		for _, r := range runs {
			st.LastRuns[r.Job] = RunStatus{Start: r.Start, End: r.End, Outcome: r.Outcome, Error: r.Error}
			if r.Outcome == catalog.OutcomeFailed && !r.Start.Before(weekAgo) {
				st.Failures7d++
			}
		}
		if in.RPO.Duration > 0 {
			switch {
			case st.LastSnapshot == nil:
				st.Problems = append(st.Problems, "no snapshot set yet (rpo "+in.RPO.String()+")")
			case now.Sub(st.LastSnapshot.Time) > in.RPO.Duration:
				st.Problems = append(st.Problems, fmt.Sprintf("newest snapshot set %s is %s old, older than rpo %s",
					st.LastSnapshot.ID, now.Sub(st.LastSnapshot.Time).Round(time.Second), in.RPO.Duration))
			}
		}
		if in.DrillMaxAge.Duration > 0 {
			switch {
			case st.LastGoodDrill == nil:
				st.Problems = append(st.Problems, "no successful drill yet (drill_max_age "+in.DrillMaxAge.String()+")")
			case now.Sub(st.LastGoodDrill.Time) > in.DrillMaxAge.Duration:
				st.Problems = append(st.Problems, fmt.Sprintf("newest successful drill is %s old, older than drill_max_age %s",
					now.Sub(st.LastGoodDrill.Time).Round(time.Second), in.DrillMaxAge.Duration))
			}
		}
		if st.LastDrill != nil && !st.LastDrill.OK {
			st.Problems = append(st.Problems, "newest drill (of set "+st.LastDrill.SetID+") failed")
		}
		st.OK = len(st.Problems) == 0
		rep.OK = rep.OK && st.OK
		rep.Instances[name] = st
	}
	return rep, nil
}

// NextRuns returns the next run of every scheduled job.
func NextRuns(cfg *config.Config, now time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	for _, job := range Jobs {
		spec := ScheduleOf(cfg, job)
		if spec == "" {
			continue
		}
		if s, err := cron.ParseStandard(spec); err == nil {
			out[job] = s.Next(now).UTC()
		}
	}
	return out
}

// Period estimates a schedule's period: the time between its next two runs.
func Period(s cron.Schedule, now time.Time) time.Duration {
	n1 := s.Next(now)
	return s.Next(n1).Sub(n1)
}

// SortedProblems lists every instance's problems as "instance: problem".
func (r *Report) SortedProblems() []string {
	var out []string
	for name, st := range r.Instances {
		for _, p := range st.Problems {
			out = append(out, name+": "+p)
		}
	}
	sort.Strings(out)
	return out
}
