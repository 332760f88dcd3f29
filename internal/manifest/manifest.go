package manifest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// FormatVersion is the manifest format written by this version.
const FormatVersion = 1

// Names of the files inside the restic snapshots of each part.
const (
	DBFile       = "dhis2-db.stream"
	ManifestFile = "manifest.json"
)

// Tag builders for restic snapshots (DESIGN.md).
const (
	TagApp = "dhis2-life"
)

// Tags returns the restic tags of one part of a set.
func Tags(setID, instance, part string) []string {
	return []string{TagApp, "set:" + setID, "instance:" + instance, "part:" + part}
}

// NewID returns a time-sortable set ID like "20261127T020000Z-3fa1".
func NewID(t time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Manifest describes one snapshot set.
type Manifest struct {
	Format      int       `json:"format"`
	ID          string    `json:"id"`
	Instance    string    `json:"instance"`
	Host        string    `json:"host"`
	Time        time.Time `json:"time"` // when the database snapshot was taken (data as of)
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	ToolVersion string    `json:"tool_version"`
	Restic      string    `json:"restic_version"`

	Database   string            `json:"database"`
	Server     Server            `json:"server"`
	DHIS2      DHIS2             `json:"dhis2"`
	Extensions []pg.Extension    `json:"extensions"`
	Excluded   []dhis2.Exclusion `json:"excluded"`
	Tables     []Table           `json:"tables"`
	Sequences  []pg.Sequence     `json:"sequences"`
	Parts      map[string]Part   `json:"parts"`
	Files      *Files            `json:"files,omitempty"`
	Warnings   []string          `json:"warnings,omitempty"`
}

// Server is the PostgreSQL server the dump came from.
type Server struct {
	Version    string `json:"version"`
	VersionNum int    `json:"version_num"`
}

// DHIS2 is what the database says about DHIS2.
type DHIS2 struct {
	Flyway     string `json:"flyway_version"`
	Generation string `json:"generation,omitempty"` // e.g. "2.42"
}

// Table is a dumped table with its exact row count as of the dump's snapshot.
type Table struct {
	Schema      string   `json:"schema"`
	Name        string   `json:"name"`
	Rows        int64    `json:"rows"`
	StreamBytes int64    `json:"stream_bytes"`
	OrderBy     []string `json:"order_by,omitempty"`
}

// Part is one restic snapshot of the set.
type Part struct {
	Snapshot       string  `json:"snapshot"`
	Bytes          int64   `json:"bytes"`             // bytes read
	Added          int64   `json:"added"`             // new data before compression
	AddedPacked    int64   `json:"added_packed"`      // new data stored
	Seconds        float64 `json:"seconds"`           // wall time
	FilesProcessed int64   `json:"files,omitempty"`   // files part
	Skipped        string  `json:"skipped,omitempty"` // why a part is absent
	// Compression is restic's --compression of the part ("" = the repository's setting).
	Compression string `json:"compression,omitempty"`
}

// Files describes the file store part.
type Files struct {
	Home     string   `json:"home"`
	Paths    []string `json:"paths"`
	Provider string   `json:"provider"`
	// Container is the file store directory under Home (filestore.container, default files).
	Container string `json:"container,omitempty"`
}

// TotalRows sums the row counts.
func (m *Manifest) TotalRows() int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

// TotalBytes sums the bytes read of all parts.
func (m *Manifest) TotalBytes() int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.Bytes
	}
	return n
}

// AddedBytes sums the stored new data of all parts.
func (m *Manifest) AddedBytes() int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.AddedPacked
	}
	return n
}

// Parse decodes a manifest and checks its format.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	if m.Format < 1 || m.Format > FormatVersion {
		return nil, fmt.Errorf("manifest format %d is not supported by this dhis2-life (knows 1..%d): upgrade dhis2-life", m.Format, FormatVersion)
	}
	if m.ID == "" || m.Instance == "" {
		return nil, fmt.Errorf("manifest has no id or instance")
	}
	if err := m.checkNames(); err != nil {
		return nil, fmt.Errorf("manifest of set %q is not one dhis2-life wrote (edited in the bucket?): %w", m.ID, err)
	}
	return &m, nil
}

// safeName is what set IDs, instance names and restic snapshot IDs look like: they become
// path components, restic arguments and tags, so no path separators, no leading '-' or '.'.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidName reports whether s may be used as a set ID, instance name or restic snapshot ID:
// letters, digits, '_', '.', '-', starting with a letter or digit, at most 200 bytes.
func ValidName(s string) bool { return len(s) <= 200 && safeName.MatchString(s) }

// checkNames refuses values that would reach file paths or restic's command line unsafely.
func (m *Manifest) checkNames() error {
	if !ValidName(m.ID) {
		return fmt.Errorf("invalid set id %q", m.ID)
	}
	if !ValidName(m.Instance) {
		return fmt.Errorf("invalid instance name %q", m.Instance)
	}
	for name, p := range m.Parts {
		if p.Snapshot != "" && !ValidName(p.Snapshot) {
			return fmt.Errorf("part %q: invalid restic snapshot id %q", name, p.Snapshot)
		}
	}
	if f := m.Files; f != nil {
		if f.Container != "" && !localPath(f.Container) {
			return fmt.Errorf("file store container %q is not inside the file store", f.Container)
		}
		for _, p := range f.Paths {
			if !localPath(p) {
				return fmt.Errorf("file store path %q is not inside the file store", p)
			}
		}
	}
	return nil
}

// localPath reports whether p is a relative path that stays below its base (no "..", no
// absolute path, no NUL).
func localPath(p string) bool {
	return p != "" && !strings.ContainsRune(p, 0) && filepath.IsLocal(p)
}

// Trailer is written at the end of the database stream and to the producer's result file.
type Trailer struct {
	Snapshot   string            `json:"pg_snapshot"`
	Time       time.Time         `json:"time"`
	Database   string            `json:"database"`
	Server     Server            `json:"server"`
	DHIS2      DHIS2             `json:"dhis2"`
	Extensions []pg.Extension    `json:"extensions"`
	Excluded   []dhis2.Exclusion `json:"excluded"`
	Tables     []Table           `json:"tables"`
	Sequences  []pg.Sequence     `json:"sequences"`
	Warnings   []string          `json:"warnings,omitempty"`
	Bytes      int64             `json:"bytes"`
}
