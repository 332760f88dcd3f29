package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// Bucket is the catalogue bucket of upgrade records (key: upgrade ID).
const Bucket = "upgrades"

// States of an upgrade (the `upgrades --json` "state" field).
const (
	StateRunning    = "running"     // started; a killed run stays here until resume or rollback
	StateFailed     = "failed"      // a step failed and the automatic rollback did not finish
	StateDone       = "done"        // green serves the app; blue is kept until finalize
	StateRolledBack = "rolled_back" // blue serves the app again
	StateFinalized  = "finalized"   // blue's data directory is removed
)

// Steps of a PostgreSQL upgrade, in order.
const (
	StepPoint      = "rollback_point"
	StepAppStop    = "app_stop"
	StepCountBlue  = "count_blue"
	StepStopBlue   = "stop_blue"
	StepPGUpgrade  = "pg_upgrade"
	StepSwitchPort = "switch_port"
	StepStartGreen = "start_green"
	StepExtensions = "update_extensions"
	StepAnalyze    = "analyze"
	StepCountGreen = "count_green"
	StepAppStart   = "app_start"
	StepHealth     = "health"
)

// Steps lists the steps of a PostgreSQL upgrade in the order they run.
var Steps = []string{StepPoint, StepAppStop, StepCountBlue, StepStopBlue, StepPGUpgrade, StepSwitchPort,
	StepStartGreen, StepExtensions, StepAnalyze, StepCountGreen, StepAppStart, StepHealth}

// StepRecord is one step's timing (the `upgrades --json` "steps" entries).
type StepRecord struct {
	Name     string     `json:"name"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	OK       bool       `json:"ok"`
	Error    string     `json:"error,omitempty"`
}

// Record is one upgrade, persisted after every transition.
type Record struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"` // "postgres"
	Instance string `json:"instance"`
	From     int    `json:"from"`
	To       int    `json:"to"`
	Method   string `json:"method"` // copy | clone | link
	State    string `json:"state"`
	Step     string `json:"step"`  // the current (or last) step
	Point    string `json:"point"` // rollback point ID
	PointSet string `json:"point_set,omitempty"`

	Steps []StepRecord `json:"steps"`

	Blue  pg.Cluster `json:"blue"`
	Green pg.Cluster `json:"green"`
	// Init is how green is initialised so pg_upgrade accepts it (blue's settings).
	Init InitSettings `json:"init"`
	// BlueRows are the exact row counts of blue's tables (database -> schema.table -> rows).
	BlueRows map[string]map[string]int64 `json:"blue_rows,omitempty"`
	// GreenStarted is set before green is first started: from then on a link-mode blue is
	// unusable and only the rollback point can bring it back.
	GreenStarted bool `json:"green_started"`
	// UpgradePID is the running pg_upgrade's process ID (0 = none), so a resumed run can stop
	// one left behind by a killed dhis2-life.
	UpgradePID int `json:"upgrade_pid,omitempty"`
	// BlueStartConf is blue's postgresql-common start.conf before the switch (debian).
	BlueStartConf string `json:"blue_start_conf,omitempty"`
	// Rollback lists what the last rollback did, and Error why the upgrade stopped.
	Rollback []string `json:"rollback,omitempty"`
	Error    string   `json:"error,omitempty"`

	Created  time.Time  `json:"created"`
	Updated  time.Time  `json:"updated"`
	Done     *time.Time `json:"done,omitempty"`
	AppStop  *time.Time `json:"app_stopped,omitempty"`
	AppStart *time.Time `json:"app_started,omitempty"`
}

// InitSettings are blue's cluster-wide settings green must share.
type InitSettings struct {
	Superuser string `json:"superuser"`
	Encoding  string `json:"encoding"`
	Collate   string `json:"collate"`
	Ctype     string `json:"ctype"`
	Checksums bool   `json:"checksums"`
}

// Open reports whether the upgrade still needs resume or rollback.
func (r *Record) Open() bool { return r.State == StateRunning || r.State == StateFailed }

// Downtime is the time between the app's stop and its start again (zero when unknown).
func (r *Record) Downtime() time.Duration {
	if r.AppStop == nil || r.AppStart == nil {
		return 0
	}
	return r.AppStart.Sub(*r.AppStop)
}

func (r *Record) step(name string) *StepRecord {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	r.Steps = append(r.Steps, StepRecord{Name: name})
	return &r.Steps[len(r.Steps)-1]
}

// Finished reports whether a step has finished successfully.
func (r *Record) Finished(name string) bool {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.OK
		}
	}
	return false
}

// Started reports whether a step was ever started.
func (r *Record) Started(name string) bool {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Started != nil
		}
	}
	return false
}

// put stores the record in one transaction.
func put(cat *catalog.Catalog, r *Record) error {
	r.Updated = time.Now().UTC()
	if err := cat.PutJSON(Bucket, r.ID, r); err != nil {
		return fmt.Errorf("recording upgrade %s: %w", r.ID, err)
	}
	return nil
}

// List returns every upgrade record, oldest first ("" = all instances).
func List(cat *catalog.Catalog, instance string) ([]*Record, error) {
	var out []*Record
	err := cat.ListJSON(Bucket, func(key string, raw []byte) error {
		var r Record
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decoding upgrade %s: %w", key, err)
		}
		if instance == "" || r.Instance == instance {
			out = append(out, &r)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// ErrNoUpgrade is returned (wrapped) when an instance has no upgrade to act on.
var ErrNoUpgrade = errors.New("no upgrade")

// Latest returns the instance's newest upgrade record, or an error wrapping ErrNoUpgrade.
func Latest(cat *catalog.Catalog, instance string) (*Record, error) {
	recs, err := List(cat, instance)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w of instance %s to act on: see `dhis2-life upgrades`", ErrNoUpgrade, instance)
	}
	return recs[len(recs)-1], nil
}
