package point

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// Bucket is the catalogue bucket of rollback points (key: point ID). Retention reads it: the
// "set" field of every record pins that set.
const Bucket = "points"

// File is the point record's file name inside its restic snapshot (tags dhis2-life,
// point:ID, instance:NAME, part:point).
const File = "point.json"

// PackagePatterns are the dpkg-query patterns a point records the versions of.
var PackagePatterns = []string{"postgresql*", "postgis*", "openjdk*", "tomcat*", "nginx*"}

// Point is a rollback point (the `points --json` entries).
type Point struct {
	ID              string    `json:"id"`
	Instance        string    `json:"instance"`
	Set             string    `json:"set"`
	Reason          string    `json:"reason"`
	Created         time.Time `json:"created"`
	PostgresVersion string    `json:"postgres_version"`
	PostgresMajor   int       `json:"postgres_major"`
	DHIS2Version    string    `json:"dhis2_version"`
	WAR             string    `json:"war,omitempty"`
	// Cluster is where the database lived: data directory, port, config file paths.
	Cluster Cluster `json:"cluster"`
	// Files holds copies of postgresql.conf and pg_hba.conf (name -> content).
	Files     map[string]string `json:"files,omitempty"`
	OSRelease string            `json:"os_release"`
	// Packages maps installed Debian packages matching PackagePatterns to their versions.
	Packages map[string]string `json:"packages,omitempty"`
	// Verified is the result of the drill of --verify (nil = not drilled).
	Verified *bool `json:"verified,omitempty"`
	// Warnings name what could not be recorded.
	Warnings []string `json:"warnings,omitempty"`
	// RepoSnapshot is the restic snapshot holding this record.
	RepoSnapshot string `json:"repo_snapshot,omitempty"`
}

// Cluster is the cluster part of a point.
type Cluster struct {
	DataDir    string `json:"data_dir"`
	Port       int    `json:"port"`
	ConfigFile string `json:"config_file,omitempty"`
	HBAFile    string `json:"hba_file,omitempty"`
}

// Options are what Create needs.
type Options struct {
	Catalog  *catalog.Catalog
	Repo     *restic.Repo
	Log      *slog.Logger
	Instance *config.Instance
	Reason   string
	// WAR is the DHIS2 WAR file to record (optional).
	WAR string
	// Snapshot takes a fresh snapshot set and returns its manifest.
	Snapshot func(ctx context.Context) (*manifest.Manifest, error)
	// Verify drills the set (nil = no drill).
	Verify func(ctx context.Context, m *manifest.Manifest) error
}

func newID(t time.Time) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return "pt-" + t.Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Create takes a snapshot set (and a drill), records what is needed to return to it, stores
// the record in the repository and then in the catalogue, which pins the set.
func Create(ctx context.Context, o Options) (*Point, error) {
	m, err := o.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("taking the rollback point's snapshot set: %w", err)
	}
	now := time.Now().UTC()
	p := &Point{ID: newID(now), Instance: o.Instance.Name, Set: m.ID, Reason: o.Reason, Created: now, DHIS2Version: m.DHIS2.Flyway, WAR: o.WAR}
	if o.Verify != nil {
		err := o.Verify(ctx, m)
		ok := err == nil
		p.Verified = &ok
		if err != nil {
			return nil, fmt.Errorf("drill of the rollback point's set %s failed (no point recorded; the set stays until retention): %w", m.ID, err)
		}
	}
	describe(ctx, o, p)
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	sum, err := o.Repo.BackupReader(ctx, File, bytes.NewReader(data), restic.BackupOptions{
		Tags: []string{manifest.TagApp, "point:" + p.ID, "instance:" + p.Instance, "part:point"}})
	if err != nil {
		return nil, fmt.Errorf("storing rollback point %s in the repository: %w", p.ID, err)
	}
	p.RepoSnapshot = sum.SnapshotID
	if err := o.Catalog.PutJSON(Bucket, p.ID, p); err != nil {
		return nil, fmt.Errorf("recording rollback point %s (it is in the repository; `dhis2-life catalog rebuild` brings it back): %w", p.ID, err)
	}
	return p, nil
}

// describe fills in the cluster, config files, versions and packages; what cannot be read
// becomes a warning.
func describe(ctx context.Context, o Options, p *Point) {
	in := o.Instance
	warn := func(format string, args ...any) { p.Warnings = append(p.Warnings, fmt.Sprintf(format, args...)) }
	c := pg.Conn{DSN: in.Database, PasswordFile: in.DatabasePasswordFile}
	if in.AdminDatabase != "" {
		c = pg.Conn{DSN: in.AdminDatabase, PasswordFile: in.AdminPasswordFile}
	}
	if conn, err := c.Connect(ctx); err != nil {
		warn("connecting to read the cluster's settings: %v", err)
	} else {
		if num, full, err := pg.ServerVersion(ctx, conn); err == nil {
			p.PostgresMajor, p.PostgresVersion = num/10000, full
		}
		var port string
		if err := conn.QueryRow(ctx, `SELECT current_setting('data_directory'), current_setting('port'), current_setting('config_file'), current_setting('hba_file')`).
			Scan(&p.Cluster.DataDir, &port, &p.Cluster.ConfigFile, &p.Cluster.HBAFile); err != nil {
			warn("reading the cluster's paths (needs a superuser admin_database): %v", err)
		}
		fmt.Sscan(port, &p.Cluster.Port)
		conn.Close(ctx)
	}
	p.Files = map[string]string{}
	for name, path := range map[string]string{"postgresql.conf": p.Cluster.ConfigFile, "pg_hba.conf": p.Cluster.HBAFile} {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			warn("copying %s: %v", name, err)
			continue
		}
		p.Files[name] = string(b)
	}
	p.OSRelease = osRelease()
	pk, err := Packages(ctx)
	if err != nil {
		warn("%v", err)
	}
	p.Packages = pk
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// Packages lists installed packages matching PackagePatterns with dpkg-query (nil when the
// host has no dpkg).
func Packages(ctx context.Context) (map[string]string, error) {
	bin, err := exec.LookPath("dpkg-query")
	if err != nil {
		return nil, nil
	}
	args := append([]string{"-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"}, PackagePatterns...)
	out, _ := exec.CommandContext(ctx, bin, args...).Output() // exit 1 when a pattern matches nothing
	pk := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) == 3 && strings.HasPrefix(f[2], "ii") {
			pk[f[0]] = f[1]
		}
	}
	return pk, nil
}

// List returns the rollback points ("" = all instances), oldest first.
func List(cat *catalog.Catalog, instance string) ([]*Point, error) {
	var out []*Point
	err := cat.ListJSON(Bucket, func(key string, raw []byte) error {
		var p Point
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("decoding rollback point %s: %w", key, err)
		}
		if instance == "" || p.Instance == instance {
			out = append(out, &p)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// ErrNotFound is returned (wrapped) for an unknown point ID.
var ErrNotFound = errors.New("no such rollback point")

// Get returns one point.
func Get(cat *catalog.Catalog, id string) (*Point, error) {
	var p Point
	ok, err := cat.GetJSON(Bucket, id, &p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w %q: list them with `dhis2-life points` (on a new host run `dhis2-life catalog rebuild` first)", ErrNotFound, id)
	}
	return &p, nil
}

// Release forgets a point: its record leaves the catalogue and the repository, and its set
// is no longer pinned (retention decides about it again).
func Release(ctx context.Context, cat *catalog.Catalog, repo *restic.Repo, id string, inUse func(id string) string) (*Point, error) {
	p, err := Get(cat, id)
	if err != nil {
		return nil, err
	}
	if inUse != nil {
		if why := inUse(id); why != "" {
			return nil, fmt.Errorf("rollback point %s is still needed by %s: finalize or roll that back first", id, why)
		}
	}
	snaps, err := repo.Snapshots(ctx, manifest.TagApp, "point:"+id)
	if err != nil {
		return nil, fmt.Errorf("finding rollback point %s in the repository: %w", id, err)
	}
	ids := make([]string, 0, len(snaps))
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	if err := repo.Forget(ctx, ids...); err != nil {
		return nil, fmt.Errorf("forgetting rollback point %s in the repository: %w", id, err)
	}
	return p, cat.DeleteKey(Bucket, id)
}

// Rebuild reads every point record from the repository into the catalogue and returns how
// many it found; unreadable records are returned as skipped.
func Rebuild(ctx context.Context, cat *catalog.Catalog, repo *restic.Repo) (int, []string, error) {
	snaps, err := repo.Snapshots(ctx, manifest.TagApp, "part:point")
	if err != nil {
		return 0, nil, err
	}
	n := 0
	var skipped []string
	for _, s := range snaps {
		var buf bytes.Buffer
		if err := repo.Dump(ctx, s.ID, "/"+File, &buf); err != nil {
			skipped = append(skipped, fmt.Sprintf("point %s: %v", s.ShortID, err))
			continue
		}
		var p Point
		if err := json.Unmarshal(buf.Bytes(), &p); err != nil || p.ID == "" || p.Set == "" {
			skipped = append(skipped, fmt.Sprintf("point %s: unreadable record", s.ShortID))
			continue
		}
		p.RepoSnapshot = s.ID
		if err := cat.PutJSON(Bucket, p.ID, &p); err != nil {
			return n, skipped, err
		}
		n++
	}
	return n, skipped, nil
}
