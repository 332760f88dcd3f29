package restore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// Check is one drill check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is a drill's result (`verify --json`).
type Report struct {
	OK             bool      `json:"ok"`
	Set            string    `json:"set"`
	Instance       string    `json:"instance"`
	SetTime        time.Time `json:"set_time"`
	Started        time.Time `json:"started"`
	Finished       time.Time `json:"finished"`
	ScratchDB      string    `json:"scratch_database"`
	RestoreSeconds float64   `json:"restore_seconds"`
	DataAgeSeconds float64   `json:"data_age_seconds"`
	Restore        *Result   `json:"restore,omitempty"`
	Checks         []Check   `json:"checks"`
	// Interrupted is set when the drill was stopped (SIGINT/SIGTERM) before it finished: it
	// says nothing about the set.
	Interrupted bool `json:"interrupted,omitempty"`
}

func (r *Report) add(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	if !ok {
		r.OK = false
	}
}

// DrillOptions configure a drill. Restore.Target is ignored: the drill restores into a
// scratch database on the instance's server (via Restore.Admin) that it drops afterwards.
type DrillOptions struct {
	Restore Options
	// ScratchPrefix names scratch databases (default "dhis2life_drill_").
	ScratchPrefix string
	// ReadDataSubset is restic check's --read-data-subset ("" = structure check only).
	ReadDataSubset string
	// Catalog receives the drill record (nil = not recorded).
	Catalog *catalog.Catalog
	// KeepScratch leaves the scratch database and files for inspection.
	KeepScratch bool
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]`)

// Drill restores a set into scratch space, proves it at DHIS2 level, records the result and
// cleans up. The returned report's OK says whether every check passed; err is set only
// when the drill could not run to the end.
func Drill(ctx context.Context, o DrillOptions) (*Report, error) {
	m := o.Restore.Manifest
	rep := &Report{OK: true, Set: m.ID, Instance: m.Instance, SetTime: m.Time, Started: time.Now().UTC()}
	prefix := o.ScratchPrefix
	if prefix == "" {
		prefix = "dhis2life_drill_"
	}
	scratch := prefix + unsafeChars.ReplaceAllString(strings.ToLower(m.ID), "_")
	rep.ScratchDB = scratch
	base := o.Restore.Target
	if o.Restore.Admin != nil {
		base = *o.Restore.Admin
	}
	ro := o.Restore
	ro.Target = base.WithDatabase(scratch)
	ro.Force, ro.Terminate, ro.SkipAnalyze = true, true, true
	ro.Owner = o.Restore.Owner
	if ro.Owner == "" {
		ro.Owner = base.User()
	}
	tmp := ro.Config.Tuning.TempDir
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("creating temp dir: %w", err)
	}
	filesDir := ""
	if p, ok := m.Parts["files"]; ok && p.Snapshot != "" {
		sweepTemp(ro.Log, tmp)
		d, err := os.MkdirTemp(tmp, proc.TempName("drill-files"))
		if err != nil {
			return nil, fmt.Errorf("creating drill directory: %w", err)
		}
		filesDir = d
		ro.FilesTo = d
	}
	cleanup := func() {
		if o.KeepScratch {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := dropDatabase(cctx, &ro, scratch); err != nil {
			ro.Log.Warn("could not drop drill database", "database", scratch, "err", err)
		}
		if filesDir != "" {
			os.RemoveAll(filesDir)
		}
	}
	defer cleanup()

	// The repository check reads other data than the restore: run it meanwhile.
	checkErr := make(chan error, 1)
	go func() { checkErr <- ro.Repo.Check(ctx, o.ReadDataSubset) }()
	t0 := time.Now()
	res, err := Restore(ctx, ro)
	proc.KillAt("verify:restored")
	rep.RestoreSeconds = time.Since(t0).Seconds()
	rep.Restore = res
	if err != nil {
		rep.add("restore", false, "%v", err)
	} else {
		rep.add("restore", true, "%d tables, %d rows in %.1fs (schema %.1fs, data %.1fs, indexes %.1fs, files %.1fs)",
			res.Tables, res.Rows, res.Seconds, res.PreDataSeconds, res.DataSeconds, res.PostDataSeconds, res.FilesSeconds)
		if err := checkDatabase(ctx, ro.Target, rep, o, filesDir); err != nil {
			rep.add("database checks", false, "%v", err)
		}
	}
	cerr := <-checkErr
	// An unreachable or locked repository says nothing about the set: the run fails without
	// recording a drill, so a drill fails only for the data. (An interruption is recorded as
	// such below; a repository check that only waited out another job's lock is "not run".)
	checkLocked := cerr != nil && errors.Is(cerr, restic.ErrLocked)
	if ctx.Err() == nil {
		ignore := cerr
		if checkLocked {
			ignore = nil
		}
		if cause := notAboutData(err, ignore); cause != nil {
			return rep, fmt.Errorf("drill of set %s could not run (nothing recorded): %w", m.ID, cause)
		}
	}
	if checkLocked && ctx.Err() == nil {
		// Another job held the repository for longer than restic.CheckLockWait: that is no
		// finding about the data, so it does not fail the drill.
		rep.Checks = append(rep.Checks, Check{Name: "repository check", OK: true,
			Detail: fmt.Sprintf("not run: the repository stayed locked by another job for %s (%v)", restic.CheckLockWait, cerr)})
	} else if err := cerr; err != nil {
		rep.add("repository check", false, "%v", err)
	} else {
		subset := o.ReadDataSubset
		if subset == "" {
			subset = "none"
		}
		rep.add("repository check", true, "restic check passed (read-data-subset %s)", subset)
	}
	rep.Finished = time.Now().UTC()
	rep.DataAgeSeconds = rep.Finished.Sub(m.Time).Seconds()
	var interrupted error
	if cerr := ctx.Err(); cerr != nil {
		rep.Interrupted, rep.OK = true, false
		interrupted = fmt.Errorf("drill of set %s interrupted after %s: %w (nothing is known about the set; run verify again)", m.ID, rep.Finished.Sub(rep.Started).Round(time.Second), cerr)
	}
	if o.Catalog != nil {
		b, _ := json.Marshal(rep)
		if err := o.Catalog.PutDrill(catalog.DrillRecord{ID: rep.Started.Format("20060102T150405.000Z") + "-" + m.ID, SetID: m.ID, Instance: m.Instance,
			Start: rep.Started, End: rep.Finished, OK: rep.OK, Interrupted: rep.Interrupted, RestoreSeconds: rep.RestoreSeconds, DataAgeSeconds: rep.DataAgeSeconds, Report: b}); err != nil {
			return rep, errors.Join(interrupted, fmt.Errorf("recording drill: %w", err))
		}
	}
	if interrupted != nil {
		return rep, interrupted
	}
	return rep, nil
}

// notAboutData returns the first error that is about reaching the repository (outage, time
// limit, lock, interruption) rather than about the data read.
func notAboutData(errs ...error) error {
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, k := range []error{restic.ErrUnreachable, restic.ErrTimeout, restic.ErrLocked, restic.ErrInterrupted, context.Canceled, context.DeadlineExceeded} {
			if errors.Is(err, k) {
				return err
			}
		}
	}
	return nil
}

func checkDatabase(ctx context.Context, target pg.Conn, rep *Report, o DrillOptions, filesDir string) error {
	m := o.Restore.Manifest
	conn, err := target.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	// Row counts.
	var bad []string
	for _, t := range m.Tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ONLY "+pg.QualifiedName(t.Schema, t.Name)).Scan(&n); err != nil {
			bad = append(bad, fmt.Sprintf("%s.%s: %v", t.Schema, t.Name, err))
			continue
		}
		if n != t.Rows {
			bad = append(bad, fmt.Sprintf("%s.%s: %d rows, manifest %d", t.Schema, t.Name, n, t.Rows))
		}
	}
	rep.add("row counts", len(bad) == 0, "%s", summarize(len(m.Tables), "tables match the manifest", bad))

	// Flyway.
	fv, err := dhis2.FlywayVersion(ctx, conn)
	if err != nil {
		rep.add("flyway version", false, "%v", err)
	} else {
		rep.add("flyway version", fv == m.DHIS2.Flyway, "restored %q, manifest %q", fv, m.DHIS2.Flyway)
	}

	// Extensions.
	exts, err := pg.Extensions(ctx, conn)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, e := range exts {
		have[e.Name] = true
	}
	need := map[string]bool{}
	for _, e := range m.Extensions {
		need[e.Name] = true
	}
	if m.DHIS2.Flyway != "" {
		for _, e := range dhis2.RequiredExtensions {
			need[e] = true
		}
	}
	var missing []string
	for e := range need {
		if !have[e] {
			missing = append(missing, e)
		}
	}
	rep.add("extensions", len(missing) == 0, "%s", summarize(len(need), "required extensions present", missing))

	// Sequences.
	bad = nil
	for _, s := range m.Sequences {
		var last int64
		var called bool
		if err := conn.QueryRow(ctx, "SELECT last_value, is_called FROM "+pg.QualifiedName(s.Schema, s.Name)).Scan(&last, &called); err != nil {
			bad = append(bad, fmt.Sprintf("%s.%s: %v", s.Schema, s.Name, err))
			continue
		}
		if last != s.LastValue || called != s.IsCalled {
			bad = append(bad, fmt.Sprintf("%s.%s: %d/%v, manifest %d/%v", s.Schema, s.Name, last, called, s.LastValue, s.IsCalled))
		}
	}
	rep.add("sequences", len(bad) == 0, "%s", summarize(len(m.Sequences), "sequences as dumped", bad))

	// Excluded tables exist and are empty.
	bad = nil
	for _, x := range m.Excluded {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM ONLY "+pg.QualifiedName(x.Schema, x.Name)+" LIMIT 1) s").Scan(&n); err != nil {
			bad = append(bad, fmt.Sprintf("%s.%s: %v", x.Schema, x.Name, firstLine(err)))
			continue
		}
		if n != 0 {
			bad = append(bad, fmt.Sprintf("%s.%s has rows", x.Schema, x.Name))
		}
	}
	rep.add("excluded tables", len(bad) == 0, "%s", summarize(len(m.Excluded), "excluded tables exist and are empty", bad))

	// File resources ↔ files.
	checkFiles(ctx, conn, rep, o, filesDir)
	return nil
}

func checkFiles(ctx context.Context, conn *pgx.Conn, rep *Report, o DrillOptions, filesDir string) {
	m := o.Restore.Manifest
	frs, exists, err := dhis2.FileResources(ctx, conn)
	if !exists {
		rep.add("file resources", true, "no fileresource table")
		return
	}
	if m.Files == nil || m.Files.Provider != "filesystem" {
		rep.add("file resources", true, "file store is not on this host's file system; not checked")
		return
	}
	if filesDir == "" {
		rep.add("file resources", false, "set has no files part to check fileresource rows against")
		return
	}
	container := m.Files.Container
	if container == "" { // manifests before the field: the one path that is not dhis.conf
		container = "files"
		for _, p := range m.Files.Paths {
			if p != "dhis.conf" {
				container = p
			}
		}
	}
	if err != nil {
		rep.add("file resources", false, "%v", err)
		return
	}
	store, err := openStore(filepath.Join(filesDir, container))
	if err != nil {
		rep.add("file resources", false, "%v", err)
		return
	}
	defer store.Close()
	var bad []string
	n := len(frs)
	for _, fr := range frs {
		key := fr.StorageKey
		p := filepath.Join(filesDir, container, filepath.FromSlash(key))
		if !strings.HasPrefix(p, filepath.Join(filesDir, container)+string(filepath.Separator)) {
			bad = append(bad, key+": storage key escapes the file store")
			continue
		}
		if problem := checkFile(store, key, fr.Length, fr.MD5); problem != "" {
			bad = append(bad, key+": "+problem)
		}
	}
	rep.add("file resources", len(bad) == 0, "%s", summarize(n, "file resources have their file (size and md5)", bad))
}

// openStore opens the restored file store as an os.Root, so that no storage key and no
// symlink in the store can make the drill read a file outside it.
func openStore(dir string) (*os.Root, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("restored file store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("restored file store %s is not a directory (a symlink?); not reading through it", dir)
	}
	return os.OpenRoot(dir)
}

// checkFile compares the file of a storage key in store with its fileresource row. Keys and
// symlinks that lead outside the store are reported, never followed.
func checkFile(store *os.Root, key string, length int64, sum string) string {
	f, err := store.Open(filepath.FromSlash(key))
	if err != nil {
		if os.IsNotExist(err) {
			return "file missing (deleted by DHIS2 between dump and file backup, or lost)"
		}
		if strings.Contains(err.Error(), "escapes") {
			return "storage key or a symlink in the file store leads outside it; not read"
		}
		return err.Error()
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err.Error()
	}
	if n != length {
		return fmt.Sprintf("size %d, fileresource says %d", n, length)
	}
	if len(sum) == 32 && !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), sum) {
		return "md5 differs from fileresource.contentmd5"
	}
	return ""
}

func summarize(total int, okText string, bad []string) string {
	if len(bad) == 0 {
		return fmt.Sprintf("%d %s", total, okText)
	}
	shown := bad
	if len(shown) > 5 {
		shown = shown[:5]
	}
	more := ""
	if len(bad) > 5 {
		more = fmt.Sprintf(" (+%d more)", len(bad)-5)
	}
	return fmt.Sprintf("%d of %d wrong: %s%s", len(bad), total, strings.Join(shown, "; "), more)
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
