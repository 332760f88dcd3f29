package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the catalogue's file name inside state_dir.
const FileName = "catalog.db"

// LockTimeout is how long Open waits for another process to release the catalogue.
const LockTimeout = 5 * time.Second

// schemaVersion is stored in the meta bucket; Open refuses catalogues of a newer schema.
const schemaVersion = 1

var (
	// ErrNotFound is returned (wrapped) when no record matches.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous is returned (wrapped) when an ID prefix matches several snapshot sets.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrLocked is returned (wrapped) by Open when another process holds the catalogue.
	ErrLocked = errors.New("another dhis2-life holds the catalogue")
)

var (
	bucketMeta      = []byte("meta")
	bucketSnapshots = []byte("snapshots")
	bucketDrills    = []byte("drills")
	bucketRuns      = []byte("runs")
	bucketJSON      = []byte("json") // parent of the generic buckets of PutJSON
)

// Catalog is an open catalogue. Its methods are safe for concurrent use; every write is one
// bbolt transaction, so a killed process leaves the previous or the new state, never a mix.
//
// The bbolt file is opened for each transaction and closed right after it, so a long job
// (a snapshot, a drill, the daemon) never holds the catalogue: other commands wait at most
// for one short transaction.
type Catalog struct {
	path    string
	timeout time.Duration
}

// Path returns the catalogue's path inside stateDir.
func Path(stateDir string) string { return filepath.Join(stateDir, FileName) }

// Open opens the catalogue at path, creating it (and its directory, mode 0700) when missing.
// When path is an existing directory, the catalogue is path/catalog.db. Only one process can
// hold the catalogue: Open waits LockTimeout for it and then returns an error wrapping
// ErrLocked.
func Open(path string) (*Catalog, error) {
	return open(path, LockTimeout)
}

// OpenWait is Open for long-running users (the daemon): each transaction waits up to wait
// for another process to release the catalogue before it fails with ErrLocked.
func OpenWait(path string, wait time.Duration) (*Catalog, error) {
	return open(path, wait)
}

func open(path string, timeout time.Duration) (c *Catalog, err error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = Path(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating catalogue directory: %w", err)
	}
	if err := Validate(path); err != nil {
		return nil, err
	}
	defer faultsPanic()()
	defer guard(path, &err)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("opening catalogue %s: %w (waited %s): wait for the other command or daemon to finish, or stop it", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("opening catalogue %s: %w", path, err)
	}
	defer closeOnPanic(db)
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketSnapshots, bucketDrills, bucketRuns, bucketJSON} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v != nil {
			var have int
			if err := json.Unmarshal(v, &have); err != nil {
				return fmt.Errorf("reading schema version: %w", err)
			}
			if have > schemaVersion {
				return fmt.Errorf("catalogue schema %d is newer than this dhis2-life understands (%d): upgrade dhis2-life", have, schemaVersion)
			}
			return nil
		}
		return meta.Put([]byte("schema"), []byte(fmt.Sprint(schemaVersion)))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising catalogue %s: %w", path, err)
	}
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("closing catalogue %s: %w", path, err)
	}
	return &Catalog{path: path, timeout: timeout}, nil
}

// Path returns the catalogue file's path.
func (c *Catalog) Path() string { return c.path }

// withDB opens the file for one transaction.
func (c *Catalog) withDB(fn func(db *bbolt.DB) error) (err error) {
	if err := Validate(c.path); err != nil {
		return err
	}
	defer faultsPanic()()
	defer guard(c.path, &err)
	db, err := bbolt.Open(c.path, 0o600, &bbolt.Options{Timeout: c.timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("opening catalogue %s: %w (waited %s): wait for the other command to finish", c.path, ErrLocked, c.timeout)
	}
	if err != nil {
		return fmt.Errorf("opening catalogue %s: %w", c.path, err)
	}
	defer closeOnPanic(db)
	ferr := fn(db)
	if err := db.Close(); err != nil && ferr == nil {
		ferr = fmt.Errorf("closing catalogue: %w", err)
	}
	return ferr
}

// view runs fn in one read-only transaction.
func (c *Catalog) view(fn func(tx *bbolt.Tx) error) error {
	return c.withDB(func(db *bbolt.DB) error { return db.View(fn) })
}

// SnapshotRecord is a snapshot set. Manifest is the set's manifest JSON, opaque to this package.
type SnapshotRecord struct {
	ID       string          `json:"id"`
	Instance string          `json:"instance"`
	Time     time.Time       `json:"time"`
	Manifest json.RawMessage `json:"manifest,omitempty"`
}

func (r SnapshotRecord) check() error {
	switch {
	case r.ID == "":
		return errors.New("snapshot record has no ID")
	case r.Instance == "":
		return fmt.Errorf("snapshot record %s has no instance", r.ID)
	case r.Time.IsZero():
		return fmt.Errorf("snapshot record %s has no time", r.ID)
	}
	return nil
}

// PutSnapshot records (or replaces) a snapshot set.
func (c *Catalog) PutSnapshot(r SnapshotRecord) error {
	if err := r.check(); err != nil {
		return fmt.Errorf("recording snapshot set: %w", err)
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("recording snapshot set %s: %w", r.ID, err)
	}
	return c.update("recording snapshot set "+r.ID, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSnapshots).Put([]byte(r.ID), v)
	})
}

// Snapshots returns the snapshot sets of an instance ("" = all instances), oldest first.
func (c *Catalog) Snapshots(instance string) ([]SnapshotRecord, error) {
	return list(c, bucketSnapshots, "snapshot sets",
		func(r SnapshotRecord) bool { return instance == "" || r.Instance == instance },
		func(r SnapshotRecord) (time.Time, string) { return r.Time, r.ID })
}

// Snapshot returns the snapshot set whose ID is idOrPrefix or, failing that, the only one
// whose ID starts with it. Errors wrap ErrNotFound or ErrAmbiguous (naming the candidates).
func (c *Catalog) Snapshot(idOrPrefix string) (SnapshotRecord, error) {
	var r SnapshotRecord
	if idOrPrefix == "" {
		return r, fmt.Errorf("snapshot set \"\": %w: give an ID or ID prefix", ErrNotFound)
	}
	var matches [][]byte
	var exact []byte
	err := c.view(func(tx *bbolt.Tx) error {
		cur := tx.Bucket(bucketSnapshots).Cursor()
		p := []byte(idOrPrefix)
		for k, v := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = cur.Next() {
			if bytes.Equal(k, p) {
				exact = bytes.Clone(v)
				return nil
			}
			matches = append(matches, bytes.Clone(k))
			if len(matches) == 1 {
				exact = bytes.Clone(v)
			}
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("looking up snapshot set %q: %w", idOrPrefix, err)
	}
	switch {
	case exact == nil:
		return r, fmt.Errorf("snapshot set %q: %w (list them with `dhis2-life snapshots`)", idOrPrefix, ErrNotFound)
	case len(matches) > 1:
		names := make([]string, 0, len(matches))
		for i, m := range matches {
			if i == 10 {
				names = append(names, fmt.Sprintf("and %d more", len(matches)-10))
				break
			}
			names = append(names, string(m))
		}
		return r, fmt.Errorf("snapshot set prefix %q is %w: it matches %d sets (%s); give more characters",
			idOrPrefix, ErrAmbiguous, len(matches), strings.Join(names, ", "))
	}
	if err := json.Unmarshal(exact, &r); err != nil {
		return r, fmt.Errorf("decoding snapshot set %q: %w", idOrPrefix, err)
	}
	return r, nil
}

// DeleteSnapshot removes a snapshot set's record (not the data in the repository). Deleting a
// missing record is not an error.
func (c *Catalog) DeleteSnapshot(id string) error {
	return c.update("deleting snapshot set "+id, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSnapshots).Delete([]byte(id))
	})
}

// ReplaceSnapshots replaces, in one transaction, every snapshot set record of an instance
// ("" = of all instances) with recs; `catalog rebuild` uses it with what the repository holds.
func (c *Catalog) ReplaceSnapshots(instance string, recs []SnapshotRecord) error {
	vals := make([][]byte, len(recs))
	for i, r := range recs {
		if err := r.check(); err != nil {
			return fmt.Errorf("replacing snapshot sets: %w", err)
		}
		if instance != "" && r.Instance != instance {
			return fmt.Errorf("replacing snapshot sets of instance %s: set %s belongs to instance %s", instance, r.ID, r.Instance)
		}
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("replacing snapshot sets: encoding %s: %w", r.ID, err)
		}
		vals[i] = v
	}
	return c.update("replacing snapshot sets", func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		var del [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if instance != "" {
				var r SnapshotRecord
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decoding snapshot set %s: %w", k, err)
				}
				if r.Instance != instance {
					return nil
				}
			}
			del = append(del, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for i, r := range recs {
			if err := b.Put([]byte(r.ID), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// DrillRecord is the result of one drill (restore + verification) of a snapshot set.
type DrillRecord struct {
	ID       string    `json:"id"` // unique run ID
	SetID    string    `json:"set_id"`
	Instance string    `json:"instance"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	OK       bool      `json:"ok"`
	// Interrupted drills (SIGINT/SIGTERM) are kept for the record but are neither passed
	// nor failed: Drills leaves them out.
	Interrupted    bool            `json:"interrupted,omitempty"`
	RestoreSeconds float64         `json:"restore_seconds"` // measured RTO
	DataAgeSeconds float64         `json:"data_age_seconds"`
	Report         json.RawMessage `json:"report,omitempty"`
}

// PutDrill records (or replaces) a drill.
func (c *Catalog) PutDrill(r DrillRecord) error {
	if r.ID == "" {
		return errors.New("recording drill: record has no ID")
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("recording drill %s: %w", r.ID, err)
	}
	return c.update("recording drill "+r.ID, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDrills).Put([]byte(r.ID), v)
	})
}

// Drills returns the finished drills of an instance ("" = all), by Start, oldest first;
// interrupted drills are left out (InterruptedDrills lists them).
func (c *Catalog) Drills(instance string) ([]DrillRecord, error) {
	return list(c, bucketDrills, "drills",
		func(r DrillRecord) bool { return !r.Interrupted && (instance == "" || r.Instance == instance) },
		func(r DrillRecord) (time.Time, string) { return r.Start, r.ID })
}

// InterruptedDrills returns the drills of an instance ("" = all) that were stopped before
// they finished, by Start, oldest first.
func (c *Catalog) InterruptedDrills(instance string) ([]DrillRecord, error) {
	return list(c, bucketDrills, "drills",
		func(r DrillRecord) bool { return r.Interrupted && (instance == "" || r.Instance == instance) },
		func(r DrillRecord) (time.Time, string) { return r.Start, r.ID })
}

// Run outcomes.
const (
	OutcomeRunning = "running"
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped"
)

// RunRecord is one run of a job (snapshot, verify, retention, clone, ...) by the daemon or
// the CLI. Put it once with OutcomeRunning when the job starts and again when it ends.
type RunRecord struct {
	ID       string    `json:"id"`
	Instance string    `json:"instance"`
	Job      string    `json:"job"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Outcome  string    `json:"outcome"` // running | ok | failed | skipped
	Error    string    `json:"error,omitempty"`
	Bytes    int64     `json:"bytes,omitempty"`
}

// PutRun records (or updates) a job run.
func (c *Catalog) PutRun(r RunRecord) error {
	if r.ID == "" {
		return errors.New("recording job run: record has no ID")
	}
	switch r.Outcome {
	case OutcomeRunning, OutcomeOK, OutcomeFailed, OutcomeSkipped:
	default:
		return fmt.Errorf("recording job run %s: unknown outcome %q", r.ID, r.Outcome)
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("recording job run %s: %w", r.ID, err)
	}
	return c.update("recording job run "+r.ID, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRuns).Put([]byte(r.ID), v)
	})
}

// Runs returns the runs of a job of an instance ("" = any) that started at or after since
// (zero = all), oldest first.
func (c *Catalog) Runs(instance, job string, since time.Time) ([]RunRecord, error) {
	return list(c, bucketRuns, "job runs",
		func(r RunRecord) bool {
			return (instance == "" || r.Instance == instance) && (job == "" || r.Job == job) && !r.Start.Before(since)
		},
		func(r RunRecord) (time.Time, string) { return r.Start, r.ID })
}

// list decodes the records of a bucket that keep selects, ordered by the time and ID that
// order returns.
func list[T any](c *Catalog, bucket []byte, what string, keep func(T) bool, order func(T) (time.Time, string)) ([]T, error) {
	var out []T
	err := c.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var r T
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding %s %s: %w", what, k, err)
			}
			if keep(r) {
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", what, err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		ti, idi := order(out[i])
		tj, idj := order(out[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return idi < idj
	})
	return out, nil
}

// PruneRuns deletes job runs that started before cutoff and are no longer running; it
// returns how many it deleted.
func (c *Catalog) PruneRuns(cutoff time.Time) (int, error) {
	n := 0
	err := c.update("pruning job runs", func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		var del [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var r RunRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding job run %s: %w", k, err)
			}
			if r.Start.Before(cutoff) && r.Outcome != OutcomeRunning {
				del = append(del, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(del)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PutJSON stores v as JSON under key in a generic bucket (created when missing), for records
// such as clones, archives, rollback points, upgrades and keep marks.
func (c *Catalog) PutJSON(bucket, key string, v any) error {
	if bucket == "" || key == "" {
		return fmt.Errorf("storing %s/%s: bucket and key must not be empty", bucket, key)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("storing %s/%s: %w", bucket, key, err)
	}
	return c.update(fmt.Sprintf("storing %s/%s", bucket, key), func(tx *bbolt.Tx) error {
		b, err := tx.Bucket(bucketJSON).CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), data)
	})
}

// GetJSON decodes the record under key in a generic bucket into v; it reports false (and no
// error) when there is none.
func (c *Catalog) GetJSON(bucket, key string, v any) (bool, error) {
	found := false
	err := c.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketJSON).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		data := b.Get([]byte(key))
		if data == nil {
			return nil
		}
		found = true
		return json.Unmarshal(data, v)
	})
	if err != nil {
		return false, fmt.Errorf("reading %s/%s: %w", bucket, key, err)
	}
	return found, nil
}

// DeleteKey removes the record under key from a generic bucket; a missing record is not an
// error.
func (c *Catalog) DeleteKey(bucket, key string) error {
	return c.update(fmt.Sprintf("deleting %s/%s", bucket, key), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketJSON).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
}

// ListJSON calls fn for every record of a generic bucket in key order. The records are read
// in one transaction first, so fn may write to the catalogue. An error from fn stops the
// listing and is returned.
func (c *Catalog) ListJSON(bucket string, fn func(key string, raw []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	var recs []kv
	err := c.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketJSON).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			recs = append(recs, kv{string(k), bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("listing %s: %w", bucket, err)
	}
	for _, r := range recs {
		if err := fn(r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// update runs fn in one read-write transaction and wraps its error with what was being done.
func (c *Catalog) update(what string, fn func(tx *bbolt.Tx) error) error {
	if err := c.withDB(func(db *bbolt.DB) error { return db.Update(fn) }); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
