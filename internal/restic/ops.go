package restic

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/proc"
)

// Snapshot is one restic snapshot as listed by `restic snapshots --json`.
type Snapshot struct {
	ID       string    `json:"id"`
	ShortID  string    `json:"short_id"`
	Time     time.Time `json:"time"`
	Hostname string    `json:"hostname"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags"`
	Summary  *Summary  `json:"summary,omitempty"`
}

// Tag returns the value of a "key:value" tag, or "".
func (s Snapshot) Tag(key string) string {
	for _, t := range s.Tags {
		if v, ok := strings.CutPrefix(t, key+":"); ok {
			return v
		}
	}
	return ""
}

// Summary is the summary line of `restic backup --json`.
type Summary struct {
	FilesNew            int64   `json:"files_new"`
	FilesChanged        int64   `json:"files_changed"`
	FilesUnmodified     int64   `json:"files_unmodified"`
	DataAdded           int64   `json:"data_added"`
	DataAddedPacked     int64   `json:"data_added_packed"`
	TotalFilesProcessed int64   `json:"total_files_processed"`
	TotalBytesProcessed int64   `json:"total_bytes_processed"`
	TotalDuration       float64 `json:"total_duration"`
	SnapshotID          string  `json:"snapshot_id"`
}

// Exists reports whether the repository exists and the password opens it.
// It returns (false, nil) only when restic says there is no repository.
func (r *Repo) Exists(ctx context.Context) (bool, error) {
	_, err := r.run(ctx, call{op: "cat config", args: []string{"cat", "config", "--no-lock"}, timeout: true})
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrNoRepository) {
		return false, nil
	}
	return false, err
}

// Config is the repository's configuration (`restic cat config`).
type Config struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	// ChunkerPolynomial is the polynomial of the repository's content-defined chunker, in hex.
	ChunkerPolynomial string `json:"chunker_polynomial"`
}

// Polynomial returns the chunker polynomial as a number.
func (c *Config) Polynomial() (uint64, error) {
	p, err := strconv.ParseUint(c.ChunkerPolynomial, 16, 64)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("repository config: chunker polynomial %q is not a hex number", c.ChunkerPolynomial)
	}
	return p, nil
}

// Config reads the repository's configuration (its ID and chunker polynomial).
func (r *Repo) Config(ctx context.Context) (*Config, error) {
	out, err := r.run(ctx, call{op: "cat config", args: []string{"cat", "config", "--no-lock"}, timeout: true})
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(bytes.TrimSpace(out), &c); err != nil {
		return nil, fmt.Errorf("parsing restic cat config output: %w", err)
	}
	if c.ID == "" {
		return nil, errors.New("parsing restic cat config output: no repository id")
	}
	return &c, nil
}

// Init creates the repository when it does not exist; it reports whether it created it.
func (r *Repo) Init(ctx context.Context) (bool, error) {
	ok, err := r.Exists(ctx)
	if err != nil {
		return false, err
	}
	if ok {
		return false, nil
	}
	if _, err := r.run(ctx, call{op: "init", args: []string{"init"}, timeout: true}); err != nil {
		return false, err
	}
	return true, nil
}

// Snapshots lists snapshots carrying all of the given tags.
func (r *Repo) Snapshots(ctx context.Context, tags ...string) ([]Snapshot, error) {
	args := []string{"snapshots", "--no-lock"}
	if len(tags) > 0 {
		args = append(args, "--tag", strings.Join(tags, ","))
	}
	out, err := r.run(ctx, call{op: "snapshots", args: args, timeout: true})
	if err != nil {
		return nil, err
	}
	var snaps []Snapshot
	if err := json.Unmarshal(bytes.TrimSpace(out), &snaps); err != nil {
		return nil, fmt.Errorf("parsing restic snapshots output: %w", err)
	}
	return snaps, nil
}

// BackupOptions are common to every backup.
type BackupOptions struct {
	Tags     []string
	Host     string
	Time     time.Time // zero = now (restic --time, used for back-dated test histories)
	Progress ProgressFunc
	// Compression overrides the repository's --compression for this backup ("" = the Repo's).
	Compression string
}

func (r *Repo) backupArgs(o BackupOptions) []string {
	args := []string{"backup"}
	for _, t := range o.Tags {
		args = append(args, "--tag", t)
	}
	if o.Host != "" {
		args = append(args, "--host", o.Host)
	}
	if !o.Time.IsZero() {
		args = append(args, "--time", o.Time.Local().Format("2006-01-02 15:04:05"))
	}
	if c := cmp.Or(o.Compression, r.Compression); c != "" {
		args = append(args, "--compression", c)
	}
	if r.PackSizeMB > 0 {
		args = append(args, "--pack-size", strconv.Itoa(r.PackSizeMB))
	}
	return args
}

func (r *Repo) backup(ctx context.Context, c call, o BackupOptions) (*Summary, error) {
	var sum *Summary
	c.op = "backup"
	c.progress = o.Progress
	c.onLine = func(line []byte) {
		if bytes.Contains(line, []byte(`"message_type":"summary"`)) {
			var s Summary
			if json.Unmarshal(line, &s) == nil {
				sum = &s
			}
		}
	}
	if _, err := r.run(ctx, c); err != nil {
		// sum is not nil when restic stored a snapshot and still failed (exit 3, incomplete
		// source): the caller forgets it.
		return sum, err
	}
	if sum == nil || sum.SnapshotID == "" {
		return nil, &Error{Op: "backup", ExitCode: 0, Message: "restic reported no snapshot ID in its summary"}
	}
	return sum, nil
}

// The backup functions return a non-nil Summary with an error when restic stored a snapshot
// but failed anyway (exit 3: some source data could not be read).

// BackupCommand runs `restic backup --stdin-from-command` with argv as the producer; restic
// stores its stdout as filename and creates no snapshot when the producer exits non-zero.
func (r *Repo) BackupCommand(ctx context.Context, filename string, argv []string, extraEnv []string, o BackupOptions) (*Summary, error) {
	args := append(r.backupArgs(o), "--stdin-filename", filename, "--stdin-from-command", "--")
	args = append(args, r.withoutSecrets(argv, extraEnv)...)
	return r.backup(ctx, call{args: args, extraEnv: extraEnv}, o)
}

// withoutSecrets wraps the producer argv in `env -u NAME…` for every credential restic's
// environment holds (S3 keys, RESTIC_*): restic hands its own environment to the producer,
// which needs none of them. Only names appear in argv, never values.
func (r *Repo) withoutSecrets(argv, extraEnv []string) []string {
	var names []string
	seen := map[string]bool{}
	for _, kv := range append(r.env(), extraEnv...) {
		k, _, _ := strings.Cut(kv, "=")
		if proc.IsSecretEnv(k) && !seen[k] {
			seen[k] = true
			names = append(names, "-u", k)
		}
	}
	envBin, err := exec.LookPath("env")
	if len(names) == 0 || err != nil {
		return argv
	}
	return append(append(append([]string{envBin}, names...), "--"), argv...)
}

// BackupReader stores the data read from in as filename.
func (r *Repo) BackupReader(ctx context.Context, filename string, in io.Reader, o BackupOptions) (*Summary, error) {
	args := append(r.backupArgs(o), "--stdin", "--stdin-filename", filename)
	return r.backup(ctx, call{args: args, stdin: in}, o)
}

// BackupPaths backs up paths (relative to dir, or absolute).
func (r *Repo) BackupPaths(ctx context.Context, dir string, paths []string, o BackupOptions) (*Summary, error) {
	args := append(r.backupArgs(o), "--")
	args = append(args, paths...)
	return r.backup(ctx, call{args: args, dir: dir}, o)
}

// checkID refuses a snapshot ID that restic would read as an option (a manifest or catalogue
// edited to say "--password-command=...") or that is not one argument.
func checkID(id string) error {
	if id == "" || strings.HasPrefix(id, "-") || strings.ContainsAny(id, "\x00\n\r\t ") {
		return fmt.Errorf("restic snapshot id %q is invalid (the manifest or catalogue was edited?): run `dhis2-life catalog rebuild`", id)
	}
	return nil
}

// Dump streams the file at path inside snapshot id to w.
func (r *Repo) Dump(ctx context.Context, id, path string, w io.Writer) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := r.run(ctx, call{op: "dump", args: []string{"dump", "--no-lock", id, path}, stdout: w})
	return err
}

// Restore restores snapshot id (optionally "id:subfolder") into target.
func (r *Repo) Restore(ctx context.Context, id, target string, progress ProgressFunc) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := r.run(ctx, call{op: "restore", args: []string{"restore", "--no-lock", id, "--target", target}, progress: progress})
	return err
}

// CheckLockWait is how long `restic check` waits for the exclusive lock it needs while
// another job (a snapshot) holds the repository.
const CheckLockWait = 10 * time.Minute

// Check runs `restic check`, reading the given subset of data ("" = none, e.g. "5%" or "1/10").
// It waits up to CheckLockWait for jobs holding the repository; an error matching ErrLocked
// means the repository stayed busy, not that it is damaged.
func (r *Repo) Check(ctx context.Context, readDataSubset string) error {
	// --retry-lock waits for live locks and stale ones alike: remove the stale ones first
	// (a restic stopped by repository.outage_timeout or kill -9 leaves its lock).
	if err := r.Unlock(ctx); err != nil {
		r.log().Warn("removing stale repository locks before the check failed", "err", err)
	}
	args := []string{"check", "--retry-lock", CheckLockWait.String()}
	if readDataSubset != "" {
		args = append(args, "--read-data-subset", readDataSubset)
	}
	_, err := r.run(ctx, call{op: "check", args: args})
	return err
}

// Forget removes the given snapshots (no prune).
func (r *Repo) Forget(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
	}
	_, err := r.run(ctx, call{op: "forget", args: append([]string{"forget"}, ids...), timeout: true})
	return err
}

// Prune removes unreferenced data.
func (r *Repo) Prune(ctx context.Context) error {
	_, err := r.run(ctx, call{op: "prune", args: []string{"prune"}})
	return err
}

// Unlock removes stale locks (those of dead processes or older than 30 minutes).
func (r *Repo) Unlock(ctx context.Context) error {
	_, err := r.run(ctx, call{op: "unlock", args: []string{"unlock"}, timeout: true})
	return err
}

// Stats is the output of `restic stats --mode raw-data`.
type Stats struct {
	TotalSize             int64   `json:"total_size"`
	TotalUncompressedSize int64   `json:"total_uncompressed_size"`
	CompressionRatio      float64 `json:"compression_ratio"`
	TotalBlobCount        int64   `json:"total_blob_count"`
	SnapshotsCount        int64   `json:"snapshots_count"`
}

// RawStats returns the repository's stored size. It runs at a lower CPU priority: it is a
// measurement beside other work.
func (r *Repo) RawStats(ctx context.Context) (*Stats, error) {
	out, err := r.run(ctx, call{op: "stats", args: []string{"stats", "--no-lock", "--mode", "raw-data"}, timeout: true, background: true})
	if err != nil {
		return nil, err
	}
	var s Stats
	if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
		return nil, fmt.Errorf("parsing restic stats output: %w", err)
	}
	return &s, nil
}
