package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui"
	"golang.org/x/sys/unix"
)

// Options configure Take.
type Options struct {
	Config   *config.Config
	Instance *config.Instance
	Repo     *restic.Repo
	Catalog  *catalog.Catalog
	Log      *slog.Logger
	// Producer is the argv that writes the database stream to stdout, e.g.
	// [dhis2-life --config FILE internal dump-stream --instance NAME]; "--result FILE" is appended.
	Producer    []string
	ToolVersion string
	// Progress receives restic status lines of each part ("db", "files").
	Progress func(part string, st restic.Status, estimate int64)
	// Time back-dates the restic snapshots (tests of retention); zero = now.
	Time time.Time
	// LockHeld says the caller already holds the instance lock (an upgrade taking its
	// rollback point), so Take does not take it again.
	LockHeld bool
	// RelayCommand, when set, is the argv of the relay ([dhis2-life internal relay]; "--fifo",
	// "--result" and "--producer-pid" are appended): Take then starts the producer itself
	// (with "--fifo PATH" appended too) before restic, which reads the stream through the
	// relay (relay.go). Nil: restic runs the producer.
	RelayCommand []string
}

// ErrBusy means another job of the same instance is running.
var ErrBusy = lock.ErrHeld

// Take takes one snapshot set: the database stream, then the file store, then the manifest.
// The set is recorded in the catalogue only after all three are stored. When a part fails,
// the parts already stored are forgotten again (best effort) and nothing is recorded.
func Take(ctx context.Context, o Options) (*manifest.Manifest, error) {
	in := o.Instance
	stale := false
	if !o.LockHeld {
		lk, err := lock.Acquire(filepath.Join(o.Config.StateDir, "locks"), in.Name, "snapshot")
		if err != nil {
			if errors.Is(err, lock.ErrHeld) {
				return nil, fmt.Errorf("instance %s is busy: %w; wait for it to finish", in.Name, err)
			}
			return nil, err
		}
		defer lk.Release()
		if lk.Stale {
			stale = true
			o.Log.Warn("previous job of this instance was killed; removing stale restic locks", "job", lk.Previous.Job, "pid", lk.Previous.PID)
			if err := o.Repo.Unlock(ctx); err != nil {
				o.Log.Warn("restic unlock failed", "err", err)
			}
		}
	}
	t := newTaker(ctx, o)
	m := t.m
	// Parts of sets a killed or failed run stored but never recorded: no snapshot of this
	// instance runs now (the lock says so), so any unrecorded set without a manifest is an
	// orphan. Listing the repository costs a restic run, so it is done only when a run may
	// have left some: the previous job was killed (stale lock) or a set is still marked
	// pending in the catalogue (retention sweeps them too).
	if stale || t.pendingLeft() {
		if _, err := ForgetOrphans(ctx, o.Repo, o.Catalog, in.Name, 0, o.Log); err != nil {
			o.Log.Warn("could not look for orphaned parts of killed snapshots", "err", err)
		}
	}
	t.markPending()
	// 1. Database stream.
	if err := t.dbPart(ctx); err != nil {
		return t.fail(ctx, err)
	}
	// 2. File store (after the dump: every file row in the dump then has its file, unless
	// DHIS2 deleted it in between).
	if err := t.filesPart(ctx); err != nil {
		return t.fail(ctx, err)
	}
	// 3. Manifest.
	mb, err := t.manifestPart(ctx)
	if err != nil {
		return t.fail(ctx, err)
	}
	// 4. Record (only now is the set good).
	if err := o.Catalog.PutSnapshot(catalog.SnapshotRecord{ID: m.ID, Instance: in.Name, Time: m.Time, Manifest: mb}); err != nil {
		// The set is complete in the repository; `catalog rebuild` will find it.
		return m, fmt.Errorf("set %s is stored but could not be recorded in the catalogue (run `dhis2-life catalog rebuild`): %w", m.ID, err)
	}
	t.clearPending()
	o.Log.Info("snapshot set stored", "set", m.ID, "tables", len(m.Tables), "rows", m.TotalRows(),
		"read", ui.Bytes(m.TotalBytes()), "added", ui.Bytes(m.AddedBytes()), "took", m.Finished.Sub(m.Started).Round(time.Millisecond))
	return m, nil
}

// taker is one Take in progress: the manifest it fills and the restic snapshots stored so far.
type taker struct {
	o      Options
	m      *manifest.Manifest
	host   string
	stored []string // restic snapshot IDs to forget if the set fails
	// compression is --compression of this set's parts: tuning.compression for the first
	// set of an instance, tuning.incremental_compression once the catalogue holds one.
	compression string
}

func newTaker(ctx context.Context, o Options) *taker {
	host, _ := os.Hostname()
	started := time.Now().UTC()
	setTime := o.Time
	if setTime.IsZero() {
		setTime = started
	}
	m := &manifest.Manifest{
		Format: manifest.FormatVersion, ID: manifest.NewID(setTime), Instance: o.Instance.Name, Host: host,
		Started: started, ToolVersion: o.ToolVersion, Parts: map[string]manifest.Part{},
	}
	if v, err := o.Repo.Version(ctx); err == nil {
		m.Restic = v
	}
	t := &taker{o: o, m: m, host: host}
	if prev, err := o.Catalog.Snapshots(o.Instance.Name); err == nil && len(prev) > 0 {
		// restic compresses only the blobs it adds: on a set whose data is mostly stored
		// already, the stronger level costs little time and shrinks what the day adds.
		t.compression = o.Config.Tuning.EffectiveIncrementalCompression()
	}
	return t
}

// fail forgets the parts already stored (best effort) and returns err.
func (t *taker) fail(ctx context.Context, err error) (*manifest.Manifest, error) {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("snapshot of %s interrupted: %w (%w)", t.o.Instance.Name, cerr, err)
	}
	if len(t.stored) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if ferr := t.o.Repo.Forget(cctx, t.stored...); ferr != nil {
			// The set stays marked pending: the next snapshot (or retention) forgets them.
			t.o.Log.Warn("could not forget the parts of the failed set; the next snapshot forgets them, `dhis2-life catalog rebuild` ignores them", "set", t.m.ID, "err", ferr)
			return nil, err
		}
	}
	t.clearPending()
	return nil, err
}

// BucketPending holds, per instance, the set a running snapshot is taking: written before
// its first part is stored, removed once the set is recorded or its parts are forgotten. A
// record left behind means a killed or failed run may have left unrecorded parts.
const BucketPending = "pending-sets"

// PendingRecord is the catalogue's note of a set being taken.
type PendingRecord struct {
	Set     string    `json:"set"`
	Started time.Time `json:"started"`
	PID     int       `json:"pid"`
}

// pendingLeft says whether an earlier run of the instance left its set marked pending.
func (t *taker) pendingLeft() bool {
	var rec PendingRecord
	ok, err := t.o.Catalog.GetJSON(BucketPending, t.o.Instance.Name, &rec)
	if err != nil {
		t.o.Log.Warn("could not read the catalogue's pending sets; looking for orphaned parts", "err", err)
		return true
	}
	if ok {
		t.o.Log.Info("an earlier snapshot did not finish; looking for parts it left", "set", rec.Set, "started", rec.Started)
	}
	return ok
}

func (t *taker) markPending() {
	rec := PendingRecord{Set: t.m.ID, Started: t.m.Started, PID: os.Getpid()}
	if err := t.o.Catalog.PutJSON(BucketPending, t.o.Instance.Name, rec); err != nil {
		t.o.Log.Warn("could not mark the set pending in the catalogue (retention still finds parts a failure leaves)", "err", err)
	}
}

func (t *taker) clearPending() {
	if err := t.o.Catalog.DeleteKey(BucketPending, t.o.Instance.Name); err != nil {
		t.o.Log.Warn("could not clear the set's pending mark in the catalogue (the next snapshot looks for orphaned parts)", "err", err)
	}
}

// keep adds what restic stored, also when it failed (exit 3: incomplete source), to the
// parts to forget if the set fails.
func (t *taker) keep(s *restic.Summary) {
	keepIncomplete(&t.stored, s)
}

func (t *taker) backupOptions(part string, progress restic.ProgressFunc) restic.BackupOptions {
	return restic.BackupOptions{Tags: manifest.Tags(t.m.ID, t.o.Instance.Name, part), Host: t.host, Time: t.o.Time, Progress: progress,
		Compression: t.compression}
}

// dbPart stores the database stream that the producer writes and takes the dump's trailer
// (versions, tables, row counts, sequences) into the manifest.
func (t *taker) dbPart(ctx context.Context) error {
	o, m, in := t.o, t.m, t.o.Instance
	estimate, _ := estimateBytes(ctx, in)
	tmp := o.Config.Tuning.TempDir
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("creating temp dir %s: %w", tmp, err)
	}
	if gone, err := proc.Sweep(tmp, proc.TempKinds...); err != nil {
		o.Log.Warn("could not remove leftovers of killed runs", "dir", tmp, "err", err)
	} else if len(gone) > 0 {
		o.Log.Info("removed leftovers of killed runs", "paths", gone)
	}
	resFile, err := os.CreateTemp(tmp, proc.TempName("dump-result")+".json")
	if err != nil {
		return fmt.Errorf("creating dump result file: %w", err)
	}
	resFile.Close()
	defer os.Remove(resFile.Name())
	argv := append(append([]string{}, o.Producer...), "--result", resFile.Name())
	o.Log.Info("dumping database", "instance", in.Name, "set", m.ID, "estimate", ui.Bytes(estimate))
	t0 := time.Now()
	var env []string
	if pol := t.chunkerPolynomial(ctx); pol != "" {
		env = append(env, ChunkerEnv+"="+pol)
	}
	var producer *producerRun
	if len(o.RelayCommand) > 0 {
		fifo := resFile.Name() + ".fifo"
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			return fmt.Errorf("creating the pipe to restic: %w", err)
		}
		defer os.Remove(fifo)
		if producer, err = startProducer(ctx, append(argv, "--fifo", fifo), env); err != nil {
			return err
		}
		argv = append(append([]string{}, o.RelayCommand...), "--fifo", fifo, "--result", resFile.Name(),
			"--producer-pid", strconv.Itoa(producer.cmd.Process.Pid))
		env = nil
	}
	sum, err := o.Repo.BackupCommand(ctx, manifest.DBFile, argv, env, t.backupOptions("db", progressFor(o, "db", estimate)))
	if producer != nil {
		producer.stop(err, o.Log)
	}
	if err != nil {
		t.keep(sum)
		// The producer leaves the cause of its failure in the result file; restic itself
		// only says that the command failed.
		var perr struct {
			Error string `json:"error"`
		}
		if b, rerr := os.ReadFile(resFile.Name()); rerr == nil && json.Unmarshal(b, &perr) == nil && perr.Error != "" {
			return fmt.Errorf("database part: %s", perr.Error)
		}
		return fmt.Errorf("database part: %w", err)
	}
	t.stored = append(t.stored, sum.SnapshotID)
	proc.KillAt("snapshot:db-stored")
	m.Parts["db"] = partOf(sum, time.Since(t0), t.compression)
	tr, err := readTrailer(resFile.Name())
	if err != nil {
		return err
	}
	if tr.Bytes != sum.TotalBytesProcessed {
		return fmt.Errorf("database part: restic stored %d bytes but the producer wrote %d", sum.TotalBytesProcessed, tr.Bytes)
	}
	applyTrailer(m, tr, o.Time)
	return nil
}

// readTrailer reads the trailer the dump producer left in its result file.
func readTrailer(path string) (*manifest.Trailer, error) {
	tr, done, err := readResult(path)
	if !done {
		err = errors.New("its result file is empty")
	}
	if err != nil {
		return nil, fmt.Errorf("database part: the dump producer left no result (%v)", err)
	}
	return tr, nil
}

// applyTrailer copies what the dump found into the manifest; a back-dated set (setTime not
// zero) keeps its time.
func applyTrailer(m *manifest.Manifest, tr *manifest.Trailer, setTime time.Time) {
	m.Time = tr.Time.UTC()
	if !setTime.IsZero() {
		m.Time = setTime.UTC()
	}
	m.Database, m.Server, m.DHIS2 = tr.Database, tr.Server, tr.DHIS2
	m.Extensions, m.Excluded, m.Tables, m.Sequences = tr.Extensions, tr.Excluded, tr.Tables, tr.Sequences
	m.Warnings = append(m.Warnings, tr.Warnings...)
}

// filesPart stores the file store and dhis.conf, or notes in the manifest why it could not.
func (t *taker) filesPart(ctx context.Context) error {
	o, m, in := t.o, t.m, t.o.Instance
	files, skipped := filePaths(in.DHIS2Home)
	m.Files = files
	if skipped != "" {
		m.Parts["files"] = manifest.Part{Skipped: skipped}
		m.Warnings = append(m.Warnings, "file store not backed up: "+skipped)
		return nil
	}
	o.Log.Info("backing up file store", "home", in.DHIS2Home, "paths", files.Paths)
	t1 := time.Now()
	sum, err := o.Repo.BackupPaths(ctx, in.DHIS2Home, files.Paths, t.backupOptions("files", progressFor(o, "files", 0)))
	if err != nil {
		t.keep(sum)
		return fmt.Errorf("file store part: %w", err)
	}
	t.stored = append(t.stored, sum.SnapshotID)
	proc.KillAt("snapshot:files-stored")
	p := partOf(sum, time.Since(t1), t.compression)
	p.FilesProcessed = sum.TotalFilesProcessed
	m.Parts["files"] = p
	return nil
}

// manifestPart stores the finished manifest and returns it as stored.
func (t *taker) manifestPart(ctx context.Context) ([]byte, error) {
	t.m.Finished = time.Now().UTC()
	mb, err := json.MarshalIndent(t.m, "", "  ")
	if err != nil {
		return nil, err
	}
	msum, err := t.o.Repo.BackupReader(ctx, manifest.ManifestFile, bytes.NewReader(mb), t.backupOptions("manifest", nil))
	if err != nil {
		t.keep(msum)
		return nil, fmt.Errorf("manifest part: %w", err)
	}
	t.stored = append(t.stored, msum.SnapshotID)
	proc.KillAt("snapshot:manifest-stored")
	return mb, nil
}

// keepIncomplete adds the snapshot restic stored despite failing (exit 3: incomplete source)
// to the parts to forget.
func keepIncomplete(stored *[]string, s *restic.Summary) {
	if s != nil && s.SnapshotID != "" {
		*stored = append(*stored, s.SnapshotID)
	}
}

func partOf(s *restic.Summary, d time.Duration, compression string) manifest.Part {
	return manifest.Part{Snapshot: s.SnapshotID, Bytes: s.TotalBytesProcessed, Added: s.DataAdded,
		AddedPacked: s.DataAddedPacked, Seconds: d.Seconds(), Compression: compression}
}

func progressFor(o Options, part string, estimate int64) restic.ProgressFunc {
	if o.Progress == nil {
		return nil
	}
	return func(st restic.Status) { o.Progress(part, st, estimate) }
}

// filePaths returns what of DHIS2_HOME to back up: the file store directory (when the
// provider is the file system) and dhis.conf.
func filePaths(home string) (*manifest.Files, string) {
	f := &manifest.Files{Home: home, Provider: "filesystem"}
	conf, err := dhisconf.Read(filepath.Join(home, "dhis.conf"))
	if err == nil {
		f.Paths = append(f.Paths, "dhis.conf")
		if p := conf.Get("filestore.provider"); p != "" {
			f.Provider = p
		}
	}
	container := "files"
	if conf != nil && conf.Get("filestore.container") != "" {
		container = conf.Get("filestore.container")
	}
	f.Container = container
	if f.Provider == "filesystem" {
		dir := filepath.Join(home, container)
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			if lst, err := os.Lstat(dir); err == nil && lst.Mode()&os.ModeSymlink != 0 {
				// restic stores a symlink given as a path as the link itself, but follows
				// it as a parent: back up the entries below it (files/dataValue, ...).
				ents, err := os.ReadDir(dir)
				if err != nil {
					return f, fmt.Sprintf("cannot read the file store %s: %v", dir, err)
				}
				for _, e := range ents {
					f.Paths = append(f.Paths, filepath.Join(container, e.Name()))
				}
			} else {
				f.Paths = append(f.Paths, container)
			}
		}
	}
	if len(f.Paths) == 0 {
		return f, fmt.Sprintf("%s has neither dhis.conf nor a %s/ directory", home, container)
	}
	return f, ""
}

// estimateBytes estimates the stream size from table sizes (for progress only).
func estimateBytes(ctx context.Context, in *config.Instance) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := (pg.Conn{DSN: in.Database, PasswordFile: in.DatabasePasswordFile}).Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	tables, err := pg.Tables(ctx, conn)
	if err != nil {
		return 0, err
	}
	rules := dhis2.ExclusionRules{ExcludeAudit: in.ExcludeAudit, Extra: in.ExcludeTableData}
	var n int64
	for _, t := range tables {
		if rules.Reason(t.Schema, t.Name) == "" {
			n += t.Bytes
		}
	}
	return n, nil
}
