package retention

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/s3"
	"github.com/dhis2-life/dhis2-life/internal/ui"
)

// ArchivesBucket is the catalogue bucket of archive records (key: set ID).
const ArchivesBucket = "archives"

// Names of the entries of an archive object's tar, in this order.
const (
	EntryManifest = manifest.ManifestFile // manifest.json
	EntryDB       = manifest.DBFile       // dhis2-db.stream
	EntryFiles    = "files.tar"           // the files part as restic dumps it (tar)
)

// ObjectSuffix ends every archive object's name: <prefix><set ID><suffix>.
const ObjectSuffix = ".tar.age"

// Store is the archive bucket (implemented by *s3.ArchiveBucket).
type Store interface {
	Put(ctx context.Context, name string, r io.Reader, meta map[string]string) (s3.Object, error)
	Stat(ctx context.Context, name, versionID string) (s3.Object, error)
	Get(ctx context.Context, name, versionID string) (io.ReadCloser, error)
}

// Repository is what retention needs of restic (implemented by *restic.Repo).
type Repository interface {
	Snapshots(ctx context.Context, tags ...string) ([]restic.Snapshot, error)
	Forget(ctx context.Context, ids ...string) error
	Prune(ctx context.Context) error
	Dump(ctx context.Context, id, path string, w io.Writer) error
}

// ArchiveRecord is a confirmed archive (contract for `archives --json`: id, object, size,
// sha256, retain_until).
type ArchiveRecord struct {
	ID           string     `json:"id"`
	Instance     string     `json:"instance"`
	Time         time.Time  `json:"time"` // the set's time
	Object       string     `json:"object"`
	Bucket       string     `json:"bucket"`
	VersionID    string     `json:"version_id,omitempty"`
	Size         int64      `json:"size"`
	SHA256       string     `json:"sha256"`
	RetainUntil  *time.Time `json:"retain_until"`
	LockMode     string     `json:"lock_mode,omitempty"`
	StorageClass string     `json:"storage_class,omitempty"`
	Created      time.Time  `json:"created"`
	Contents     []string   `json:"contents"`
	Classes      []string   `json:"archive_classes,omitempty"`
	Seconds      float64    `json:"seconds"`
}

// Archiver writes archive objects: an age-encrypted tar of the set's manifest, database stream
// and files tarball, streamed from restic into a multipart upload (bounded memory), read back
// and checksummed, and only then recorded in the catalogue.
type Archiver struct {
	Store        Store
	Repo         Repository
	Catalog      *catalog.Catalog
	Recipients   []age.Recipient
	Bucket       string
	Prefix       string
	LockMode     string
	StorageClass string
	Log          *slog.Logger
	Now          func() time.Time
}

func (a *Archiver) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Archiver) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// ObjectName returns the archive object's name for a set.
func ObjectName(prefix, setID string) string { return prefix + setID + ObjectSuffix }

// Record returns the recorded archive of a set, if any.
func Record(cat *catalog.Catalog, setID string) (*ArchiveRecord, error) {
	var r ArchiveRecord
	ok, err := cat.GetJSON(ArchivesBucket, setID, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// Records lists every recorded archive, oldest set first (key order: set IDs sort by time).
func Records(cat *catalog.Catalog) ([]ArchiveRecord, error) {
	var out []ArchiveRecord
	err := cat.ListJSON(ArchivesBucket, func(key string, raw []byte) error {
		var r ArchiveRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decoding archive record %s: %w", key, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// ErrChecksum means the object read back differs from what was written.
var ErrChecksum = errors.New("archive read-back does not match what was written")

// Archive writes, confirms and records the archive of a set. A set already archived returns
// its record. rawManifest is the manifest JSON as stored with the set.
func (a *Archiver) Archive(ctx context.Context, m *manifest.Manifest, rawManifest []byte, classes []string) (*ArchiveRecord, error) {
	if rec, err := Record(a.Catalog, m.ID); err != nil || rec != nil {
		return rec, err
	}
	db, ok := m.Parts["db"]
	if !ok || db.Snapshot == "" {
		return nil, fmt.Errorf("set %s has no database part to archive", m.ID)
	}
	start := a.now()
	contents := []string{EntryManifest, EntryDB}
	files, hasFiles := m.Parts["files"]
	hasFiles = hasFiles && files.Snapshot != ""
	var filesSize int64
	if hasFiles {
		// A tar header needs the entry's size first: measure restic's tar of the files part
		// in a first streaming pass (no temporary disk, no memory).
		cw := &countWriter{}
		if err := a.Repo.Dump(ctx, files.Snapshot, "/", cw); err != nil {
			return nil, fmt.Errorf("archiving %s: reading the files part: %w", m.ID, err)
		}
		filesSize = cw.n
		contents = append(contents, EntryFiles)
	}
	name := ObjectName(a.Prefix, m.ID)
	pr, pw := io.Pipe()
	h := sha256.New()
	cnt := &countWriter{}
	prodErr := make(chan error, 1)
	go func() {
		err := a.produce(ctx, io.MultiWriter(pw, h, cnt), m, rawManifest, db, files, hasFiles, filesSize)
		pw.CloseWithError(err)
		prodErr <- err
	}()
	a.log().Info("archiving set", "set", m.ID, "object", name, "db", ui.Bytes(db.Bytes), "files", ui.Bytes(filesSize))
	obj, err := a.Store.Put(ctx, name, pr, map[string]string{"dhis2-life-set": m.ID, "dhis2-life-instance": m.Instance})
	pr.CloseWithError(errors.New("upload ended"))
	proc.KillAt("archive:uploaded")
	perr := <-prodErr
	// The upload's error first: when the upload fails, the producer only sees "upload ended";
	// when the producer fails, the upload's error carries the producer's.
	if err != nil {
		return nil, fmt.Errorf("archiving %s: %w (nothing recorded)", m.ID, err)
	}
	if perr != nil {
		return nil, fmt.Errorf("archiving %s: %w (nothing recorded)", m.ID, perr)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// Confirm: size and checksum of what the store now holds.
	st, err := a.Store.Stat(ctx, name, obj.VersionID)
	if err != nil {
		return nil, fmt.Errorf("archiving %s: confirming the upload: %w (nothing recorded)", m.ID, err)
	}
	if st.Size != cnt.n {
		return nil, fmt.Errorf("archiving %s: %w: object %s holds %d bytes, %d were written (nothing recorded)", m.ID, ErrChecksum, name, st.Size, cnt.n)
	}
	got, err := a.readSum(ctx, name, obj.VersionID)
	if err != nil {
		return nil, fmt.Errorf("archiving %s: reading the object back: %w (nothing recorded)", m.ID, err)
	}
	if got != sum {
		return nil, fmt.Errorf("archiving %s: %w: object %s reads back with sha256 %s, wrote %s (nothing recorded; the store corrupted or replaced it)", m.ID, ErrChecksum, name, got, sum)
	}
	rec := &ArchiveRecord{ID: m.ID, Instance: m.Instance, Time: m.Time, Object: name, Bucket: a.Bucket,
		VersionID: st.VersionID, Size: st.Size, SHA256: sum, LockMode: a.LockMode, StorageClass: a.StorageClass,
		Created: a.now().UTC(), Contents: contents, Classes: classes, Seconds: a.now().Sub(start).Seconds()}
	if rec.VersionID == "" {
		rec.VersionID = obj.VersionID
	}
	until := st.RetainUntil
	if until.IsZero() {
		until = obj.RetainUntil
	}
	if !until.IsZero() {
		u := until.UTC()
		rec.RetainUntil = &u
	}
	if err := a.Catalog.PutJSON(ArchivesBucket, m.ID, rec); err != nil {
		return nil, fmt.Errorf("archive of %s is stored and confirmed as %s but could not be recorded: %w", m.ID, name, err)
	}
	a.log().Info("archive confirmed", "set", m.ID, "object", name, "size", ui.Bytes(rec.Size), "sha256", sum)
	return rec, nil
}

func (a *Archiver) produce(ctx context.Context, w io.Writer, m *manifest.Manifest, raw []byte, db, files manifest.Part, hasFiles bool, filesSize int64) error {
	enc, err := crypt.Encrypt(w, a.Recipients)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(enc)
	mt := m.Time
	if mt.IsZero() {
		mt = a.now()
	}
	hdr := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: mt, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	}
	if err := hdr(EntryManifest, int64(len(raw))); err != nil {
		return err
	}
	if _, err := tw.Write(raw); err != nil {
		return err
	}
	if err := hdr(EntryDB, db.Bytes); err != nil {
		return err
	}
	if err := a.Repo.Dump(ctx, db.Snapshot, "/"+manifest.DBFile, tw); err != nil {
		return fmt.Errorf("reading the database part: %w", err)
	}
	if hasFiles {
		if err := hdr(EntryFiles, filesSize); err != nil {
			return err
		}
		if err := a.Repo.Dump(ctx, files.Snapshot, "/", tw); err != nil {
			return fmt.Errorf("reading the files part: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("the repository returned a part of another size than the manifest says: %w", err)
	}
	return enc.Close()
}

func (a *Archiver) readSum(ctx context.Context, name, version string) (string, error) {
	rc, err := a.Store.Get(ctx, name, version)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// ArchiveReader reads an archive object's entries. Each Open decrypts the object from its
// start (streaming), so the database and the files part can be restored one after the other
// without temporary disk.
type ArchiveReader struct {
	Store      Store
	Object     string
	VersionID  string
	Identities []age.Identity
}

// Manifest reads and parses the archive's manifest (its first entry).
func (r *ArchiveReader) Manifest(ctx context.Context) (*manifest.Manifest, []byte, error) {
	rc, err := r.Open(ctx, EntryManifest)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("archive %s: reading the manifest: %w", r.Object, err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("archive %s: %w", r.Object, err)
	}
	return m, raw, nil
}

// ErrNoEntry means the archive has no such entry (e.g. a set without files part).
var ErrNoEntry = errors.New("archive has no such entry")

// Open returns a reader of one entry.
func (r *ArchiveReader) Open(ctx context.Context, entry string) (io.ReadCloser, error) {
	obj, err := r.Store.Get(ctx, r.Object, r.VersionID)
	if err != nil {
		return nil, err
	}
	plain, err := crypt.Decrypt(obj, r.Identities)
	if err != nil {
		obj.Close()
		return nil, fmt.Errorf("archive %s: %w", r.Object, err)
	}
	tr := tar.NewReader(plain)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			obj.Close()
			return nil, fmt.Errorf("%w: %s in %s", ErrNoEntry, entry, r.Object)
		}
		if err != nil {
			obj.Close()
			return nil, fmt.Errorf("archive %s is corrupted: %w", r.Object, err)
		}
		if h.Name == entry {
			return &entryReader{r: tr, c: obj, name: r.Object}, nil
		}
	}
}

type entryReader struct {
	r    io.Reader
	c    io.Closer
	name string
}

func (e *entryReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("archive %s is corrupted or unreadable: %w", e.name, err)
	}
	return n, err
}

func (e *entryReader) Close() error { return e.c.Close() }

// FindObject resolves a set ID or unique ID prefix to an archive object: from the catalogue's
// records first, then by listing the bucket (a fresh host has no records).
func FindObject(ctx context.Context, cat *catalog.Catalog, b *s3.ArchiveBucket, ref string) (name, version string, err error) {
	if cat != nil {
		recs, err := Records(cat)
		if err != nil {
			return "", "", err
		}
		var hits []ArchiveRecord
		for _, r := range recs {
			if r.ID == ref {
				return r.Object, r.VersionID, nil
			}
			if strings.HasPrefix(r.ID, ref) {
				hits = append(hits, r)
			}
		}
		if len(hits) == 1 {
			return hits[0].Object, hits[0].VersionID, nil
		}
		if len(hits) > 1 {
			return "", "", fmt.Errorf("archive prefix %q matches %d archives: give more characters", ref, len(hits))
		}
	}
	names, err := b.List(ctx, b.Prefix+ref)
	if err != nil {
		return "", "", err
	}
	var hits []string
	for _, n := range names {
		if strings.HasSuffix(n, ObjectSuffix) {
			hits = append(hits, n)
		}
	}
	switch len(hits) {
	case 0:
		return "", "", fmt.Errorf("no archive of set %q in bucket %q under prefix %q (list them with `dhis2-life archives`)", ref, b.Bucket, b.Prefix)
	case 1:
		return hits[0], "", nil
	}
	return "", "", fmt.Errorf("archive prefix %q matches %d objects: give more characters", ref, len(hits))
}
