package pitr

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/wal"
)

// Names of the parts of a base backup set.
const (
	PartBase         = "base"
	PartBaseManifest = "base-manifest"
	BaseFile         = "base.tar"
	BaseManifestFile = "base-manifest.json"
)

// BaseManifest describes one base backup: a set of two restic snapshots (the tar stream of
// pg_basebackup and this manifest), tagged dhis2-life, set:ID, instance:NAME, part:base|base-manifest.
type BaseManifest struct {
	Format      int             `json:"format"`
	Kind        string          `json:"kind"` // "base"
	ID          string          `json:"id"`
	Instance    string          `json:"instance"`
	Host        string          `json:"host"`
	Started     time.Time       `json:"started"`
	Finished    time.Time       `json:"finished"` // after the stop point: a restore target must be later
	StartLSN    string          `json:"start_lsn"`
	StopLSN     string          `json:"stop_lsn"` // WAL position when pg_basebackup had finished (at or after its end point)
	Timeline    uint32          `json:"timeline"`
	StartWAL    string          `json:"start_wal"` // first segment a restore needs
	StopWAL     string          `json:"stop_wal"`  // last segment needed for consistency
	SegmentSize int64           `json:"segment_size"`
	Server      manifest.Server `json:"server"`
	ToolVersion string          `json:"tool_version"`
	Restic      string          `json:"restic_version"`
	Part        manifest.Part   `json:"part"` // the tar stream

	manifestSnapshot string // restic snapshot holding this manifest (set by ListBase)
}

// StreamResult is what the base-backup producer (BaseStream) leaves in its result file.
type StreamResult struct {
	StartLSN    string          `json:"start_lsn"`
	StopLSN     string          `json:"stop_lsn"` // WAL position when pg_basebackup had finished (at or after its end point)
	Timeline    uint32          `json:"timeline"`
	SegmentSize int64           `json:"segment_size"`
	Server      manifest.Server `json:"server"`
	Bytes       int64           `json:"bytes"`
	Error       string          `json:"error,omitempty"`
}

var labelRe = regexp.MustCompile(`(?s)START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) .*START TIMELINE: (\d+)`)

// findBackupLabel returns the content of backup_label from a tar stream ("" when absent).
func findBackupLabel(r io.Reader) string {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return ""
		}
		if h.Name == "backup_label" || h.Name == "./backup_label" {
			b, _ := io.ReadAll(io.LimitReader(tr, 64<<10))
			return string(b)
		}
	}
}

// BaseStream runs pg_basebackup (tar format, no WAL in the tar, no backup manifest) over the
// instance's admin connection and copies the tar to out; it writes a StreamResult (or the error)
// to resultPath. It is the producer restic runs with --stdin-from-command.
func BaseStream(ctx context.Context, in *config.Instance, tmpDir string, out io.Writer, resultPath string) (err error) {
	res := &StreamResult{}
	defer func() {
		if err != nil {
			res.Error = err.Error()
		}
		b, _ := json.Marshal(res)
		if werr := os.WriteFile(resultPath, b, 0o600); werr != nil && err == nil {
			err = fmt.Errorf("writing the base backup result: %w", werr)
		}
	}()
	admin := adminConn(in)
	conn, err := admin.Connect(ctx)
	if err != nil {
		return err
	}
	num, ver, err := pg.ServerVersion(ctx, conn)
	if err == nil {
		err = conn.QueryRow(ctx, `SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'`).Scan(&res.SegmentSize)
	}
	conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("reading server settings: %w", err)
	}
	res.Server = manifest.Server{Version: ver, VersionNum: num}
	tool, cleanup, err := pg.ToolIn(in.PGBinDir, "pg_basebackup", num/10000, admin, tmpDir)
	defer cleanup()
	if err != nil {
		return err
	}
	cmd := tool.Command(ctx, "--pgdata=-", "--format=tar", "--wal-method=none", "--no-manifest",
		"--checkpoint=fast", "--verbose", "--label=dhis2-life base backup")
	cw := &countWriter{w: out}
	// backup_label inside the tar says where the backup starts (pg_basebackup only prints its
	// start and end points when it streams WAL itself).
	pr, pw := io.Pipe()
	labelc := make(chan string, 1)
	go func() {
		labelc <- findBackupLabel(pr)
		_, _ = io.Copy(io.Discard, pr)
	}()
	cmd.Stdout = io.MultiWriter(cw, pw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	werr := cmd.Run()
	pw.Close()
	label := <-labelc
	res.Bytes = cw.n.Load()
	if werr != nil {
		return fmt.Errorf("pg_basebackup failed (%v): %s", werr, strings.Join(strings.Fields(stderr.String()), " "))
	}
	m := labelRe.FindStringSubmatch(label)
	if m == nil {
		return fmt.Errorf("pg_basebackup's tar holds no readable backup_label")
	}
	tli, _ := strconv.ParseUint(m[2], 10, 32)
	res.StartLSN, res.Timeline = m[1], uint32(tli)
	// The position after the backup finished: at or after its end point, which is what a
	// restore must replay to before it is consistent.
	conn, err = admin.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&res.StopLSN); err != nil {
		return fmt.Errorf("reading the WAL position after the base backup: %w", err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// adminConn is the connection base backups and set-up use: admin_database, else database.
func adminConn(in *config.Instance) pg.Conn {
	if in.AdminDatabase != "" {
		return pg.Conn{DSN: in.AdminDatabase, PasswordFile: in.AdminPasswordFile}
	}
	return pg.Conn{DSN: in.Database, PasswordFile: in.DatabasePasswordFile}
}

// BaseOptions configure BaseBackup.
type BaseOptions struct {
	Config   *config.Config
	Instance *config.Instance
	Repo     *restic.Repo
	Log      *slog.Logger
	// Producer is the argv of the base-stream producer; "--result FILE" is appended.
	Producer    []string
	ToolVersion string
	Progress    restic.ProgressFunc
}

// BaseBackup takes a base backup of the instance into the repository: pg_basebackup's tar
// stream through restic --stdin-from-command, then the manifest. It refuses when WAL
// archiving is off (a base backup cannot be restored without the WAL written during it).
func BaseBackup(ctx context.Context, o BaseOptions) (*BaseManifest, error) {
	in := o.Instance
	if in.WAL == nil {
		return nil, fmt.Errorf("instance %s has no [instances.%s.wal] table: add one and run `dhis2-life wal setup --instance %s --apply`", in.Name, in.Name, in.Name)
	}
	lk, err := lock.Acquire(filepath.Join(o.Config.StateDir, "locks"), in.Name, "base-backup")
	if err != nil {
		if errors.Is(err, lock.ErrHeld) {
			return nil, fmt.Errorf("instance %s is busy: %w; wait for it to finish", in.Name, err)
		}
		return nil, err
	}
	defer lk.Release()
	st, err := ReadArchiver(ctx, in)
	if err != nil {
		return nil, err
	}
	if st.ArchiveMode == "off" || !strings.Contains(st.ArchiveCommand, "wal push") {
		return nil, fmt.Errorf("WAL archiving is not active on instance %s (archive_mode = %s, archive_command = %q): run `dhis2-life wal setup --instance %s --apply` and restart PostgreSQL",
			in.Name, st.ArchiveMode, st.ArchiveCommand, in.Name)
	}
	host, _ := os.Hostname()
	started := time.Now().UTC()
	m := &BaseManifest{Format: 1, Kind: "base", ID: manifest.NewID(started), Instance: in.Name, Host: host,
		Started: started, ToolVersion: o.ToolVersion}
	if v, err := o.Repo.Version(ctx); err == nil {
		m.Restic = v
	}
	tmp := o.Config.Tuning.TempDir
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("creating temp dir %s: %w", tmp, err)
	}
	rf, err := os.CreateTemp(tmp, "base-result-*.json")
	if err != nil {
		return nil, err
	}
	rf.Close()
	defer os.Remove(rf.Name())
	argv := append(append([]string{}, o.Producer...), "--result", rf.Name())
	o.Log.Info("base backup", "instance", in.Name, "set", m.ID)
	t0 := time.Now()
	sum, err := o.Repo.BackupCommand(ctx, BaseFile, argv, nil, restic.BackupOptions{
		Tags: manifest.Tags(m.ID, in.Name, PartBase), Host: host, Progress: o.Progress,
	})
	var res StreamResult
	if b, rerr := os.ReadFile(rf.Name()); rerr == nil {
		_ = json.Unmarshal(b, &res)
	}
	forget := func() {
		if sum != nil && sum.SnapshotID != "" {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			_ = o.Repo.Forget(cctx, sum.SnapshotID)
		}
	}
	if err != nil {
		forget()
		if res.Error != "" {
			return nil, fmt.Errorf("base backup: %s", res.Error)
		}
		return nil, fmt.Errorf("base backup: %w", err)
	}
	if res.StartLSN == "" || res.Bytes != sum.TotalBytesProcessed {
		forget()
		return nil, fmt.Errorf("base backup: restic stored %d bytes but the producer wrote %d (%s)", sum.TotalBytesProcessed, res.Bytes, res.Error)
	}
	m.Finished = time.Now().UTC()
	m.StartLSN, m.StopLSN, m.Timeline, m.SegmentSize, m.Server = res.StartLSN, res.StopLSN, res.Timeline, res.SegmentSize, res.Server
	start, _ := wal.ParseLSN(res.StartLSN)
	stop, _ := wal.ParseLSN(res.StopLSN)
	m.StartWAL = wal.SegmentName(m.Timeline, start, uint64(m.SegmentSize))
	m.StopWAL = wal.SegmentName(m.Timeline, stop, uint64(m.SegmentSize))
	m.Part = manifest.Part{Snapshot: sum.SnapshotID, Bytes: sum.TotalBytesProcessed, Added: sum.DataAdded,
		AddedPacked: sum.DataAddedPacked, Seconds: time.Since(t0).Seconds()}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		forget()
		return nil, err
	}
	if _, err := o.Repo.BackupReader(ctx, BaseManifestFile, bytes.NewReader(mb), restic.BackupOptions{
		Tags: manifest.Tags(m.ID, in.Name, PartBaseManifest), Host: host,
	}); err != nil {
		forget()
		return nil, fmt.Errorf("base backup manifest: %w", err)
	}
	o.Log.Info("base backup stored", "set", m.ID, "start", m.StartLSN, "stop", m.StopLSN, "timeline", m.Timeline, "bytes", m.Part.Bytes)
	return m, nil
}

// ListBase returns the instance's base backups in the repository, oldest first.
func ListBase(ctx context.Context, repo *restic.Repo, instance string) ([]*BaseManifest, error) {
	snaps, err := repo.Snapshots(ctx, manifest.TagApp, "instance:"+instance, "part:"+PartBaseManifest)
	if err != nil {
		return nil, fmt.Errorf("listing base backups: %w", err)
	}
	var out []*BaseManifest
	for _, s := range snaps {
		var buf bytes.Buffer
		if err := repo.Dump(ctx, s.ID, "/"+BaseManifestFile, &buf); err != nil {
			return nil, fmt.Errorf("reading base backup manifest %s: %w", s.ShortID, err)
		}
		var m BaseManifest
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m.Kind != "base" || m.Part.Snapshot == "" {
			return nil, fmt.Errorf("base backup manifest %s is not valid (%v)", s.ShortID, err)
		}
		m.manifestSnapshot = s.ID
		out = append(out, &m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Finished.Before(out[j].Finished) })
	return out, nil
}
