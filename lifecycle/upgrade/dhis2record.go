package upgrade

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
)

// DHIS2Bucket is the catalogue bucket of DHIS2 upgrade records (key: upgrade ID); their
// versions are strings, so they do not share the PostgreSQL records' bucket.
const DHIS2Bucket = "upgrades_dhis2"

// Steps of a blue-green DHIS2 upgrade.
const (
	DStepPoint       = "rollback_point"
	DStepMaintenance = "maintenance"    // blue's stop hook
	DStepFinalSet    = "final_set"      // snapshot set of blue in maintenance
	DStepGreenDB     = "green_database" // restored from the final set, no scrub
	DStepGreenStart  = "green_start"    // green dhis.conf, start hook with the new WAR
	DStepGreenHealth = "green_health"   // ping, info version, no failed flyway rows
	DStepSwitch      = "proxy_switch"
	DStepProxyCheck  = "proxy_check" // the new version answers through the proxy
)

// DHIS2Steps lists the steps of a DHIS2 upgrade in the order they run.
var DHIS2Steps = []string{DStepPoint, DStepMaintenance, DStepFinalSet, DStepGreenDB, DStepGreenStart, DStepGreenHealth, DStepSwitch, DStepProxyCheck}

// TableChange counts one table's rows created or updated on green after the switch.
type TableChange struct {
	Table   string `json:"table"`
	Created int64  `json:"created"`
	Updated int64  `json:"updated"`
	CSV     string `json:"csv,omitempty"`
}

// DHIS2Record is one DHIS2 upgrade (`upgrades --json` entries of kind "dhis2").
type DHIS2Record struct {
	ID       string       `json:"id"`
	Kind     string       `json:"kind"` // "dhis2"
	Instance string       `json:"instance"`
	From     string       `json:"from"` // blue's flyway version
	To       string       `json:"to"`   // the WAR's version
	WAR      string       `json:"war"`
	State    string       `json:"state"`
	Step     string       `json:"step"`
	Point    string       `json:"point"`
	PointSet string       `json:"point_set,omitempty"`
	FinalSet string       `json:"final_set,omitempty"`
	Steps    []StepRecord `json:"steps"`

	BlueDB        string `json:"blue_database"`  // DSN
	GreenDB       string `json:"green_database"` // DSN
	BlueUpstream  string `json:"blue_upstream"`
	GreenUpstream string `json:"green_upstream"`
	GreenHome     string `json:"green_home"`

	// FlywayBefore/After are flyway_schema_history rows on green before and after its start.
	FlywayBefore int `json:"flyway_rows_before"`
	FlywayAfter  int `json:"flyway_rows_after"`
	// Switched is when the proxy went to green; SwitchedDB the same instant in the database's
	// local time (DHIS2's created/lastupdated columns).
	Switched   *time.Time `json:"switched,omitempty"`
	SwitchedDB string     `json:"switched_db,omitempty"`
	// SinceSwitch is the rollback report: rows entered on green after the switch.
	SinceSwitch []TableChange `json:"since_switch,omitempty"`

	Rollback []string   `json:"rollback,omitempty"`
	Error    string     `json:"error,omitempty"`
	LogTail  string     `json:"log_tail,omitempty"`
	Created  time.Time  `json:"created"`
	Updated  time.Time  `json:"updated"`
	Done     *time.Time `json:"done,omitempty"`
	AppStop  *time.Time `json:"app_stopped,omitempty"`
	AppStart *time.Time `json:"app_started,omitempty"`
}

// Open reports whether the upgrade still needs resume or rollback.
func (r *DHIS2Record) Open() bool { return r.State == StateRunning || r.State == StateFailed }

// Downtime is from maintenance on to the new version answering through the proxy.
func (r *DHIS2Record) Downtime() time.Duration {
	if r.AppStop == nil || r.AppStart == nil {
		return 0
	}
	return r.AppStart.Sub(*r.AppStop)
}

func (r *DHIS2Record) step(name string) *StepRecord {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	r.Steps = append(r.Steps, StepRecord{Name: name})
	return &r.Steps[len(r.Steps)-1]
}

// Finished reports whether a step has finished successfully.
func (r *DHIS2Record) Finished(name string) bool {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.OK
		}
	}
	return false
}

// Started reports whether a step was ever started.
func (r *DHIS2Record) Started(name string) bool {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Started != nil
		}
	}
	return false
}

func putDHIS2(cat *catalog.Catalog, r *DHIS2Record) error {
	r.Updated = time.Now().UTC()
	if err := cat.PutJSON(DHIS2Bucket, r.ID, r); err != nil {
		return fmt.Errorf("recording upgrade %s: %w", r.ID, err)
	}
	return nil
}

// ListDHIS2 returns every DHIS2 upgrade record, oldest first ("" = all instances).
func ListDHIS2(cat *catalog.Catalog, instance string) ([]*DHIS2Record, error) {
	var out []*DHIS2Record
	err := cat.ListJSON(DHIS2Bucket, func(key string, raw []byte) error {
		var r DHIS2Record
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

// LatestKind returns the kind ("postgres" or "dhis2") of the instance's newest upgrade, ""
// when it has none.
func LatestKind(cat *catalog.Catalog, instance string) (string, error) {
	pgs, err := List(cat, instance)
	if err != nil {
		return "", err
	}
	ds, err := ListDHIS2(cat, instance)
	if err != nil {
		return "", err
	}
	switch {
	case len(pgs) == 0 && len(ds) == 0:
		return "", nil
	case len(ds) == 0:
		return "postgres", nil
	case len(pgs) == 0:
		return "dhis2", nil
	case ds[len(ds)-1].Created.After(pgs[len(pgs)-1].Created):
		return "dhis2", nil
	}
	return "postgres", nil
}
