package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/lifecycle/point"
)

// OSBucket is the catalogue bucket of OS upgrade records (key: ID).
const OSBucket = "upgrades_os"

// CaptureFile is the host capture's file name inside its restic snapshot (tags dhis2-life,
// oscapture:ID, point:POINT, instance:NAME, part:oscapture).
const CaptureFile = "oscapture.json"

// HostCapture is what `upgrade os prepare` records of the host, stored in the repository.
type HostCapture struct {
	Time       time.Time         `json:"time"`
	OSRelease  string            `json:"os_release"`
	Selections string            `json:"package_selections"`
	Packages   map[string]string `json:"packages"`
	// Files maps a configuration file's path to its content (dhis.conf, PostgreSQL, nginx,
	// crontabs, [instances.NAME.os] files); Units a service to its unit definition.
	Files    map[string]string `json:"files"`
	Units    map[string]string `json:"units,omitempty"`
	Services map[string]bool   `json:"services,omitempty"`
}

// FileDiff is one configuration file that differs from the capture.
type FileDiff struct {
	Path   string   `json:"path"`
	Change string   `json:"change"` // changed | missing | new
	Lines  []string `json:"lines,omitempty"`
}

// OSState is one side of the report.
type OSState struct {
	OSRelease string            `json:"os_release"`
	Packages  map[string]string `json:"packages,omitempty"`
	Postgres  string            `json:"postgres,omitempty"`
}

// OSRecord is one OS upgrade (`upgrades --json` entries of kind "os").
type OSRecord struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"` // "os"
	Instance string `json:"instance"`
	From     string `json:"from"`
	To       string `json:"to"`
	State    string `json:"state"` // running (prepared), done (verified), failed (problems)
	Step     string `json:"step"`  // prepare | verify
	Point    string `json:"point"`
	PointSet string `json:"point_set,omitempty"`
	Capture  string `json:"capture"` // restic snapshot of the capture
	// Steps are prepare and verify, with their times.
	Steps    []StepRecord `json:"steps"`
	Before   OSState      `json:"before"`
	After    *OSState     `json:"after,omitempty"`
	Checks   []Check      `json:"checks,omitempty"`
	Diffs    []FileDiff   `json:"diffs,omitempty"`
	Created  time.Time    `json:"created"`
	Updated  time.Time    `json:"updated"`
	Verified *time.Time   `json:"verified,omitempty"`
}

// OSOptions is what `upgrade os` needs.
type OSOptions struct {
	Catalog  *catalog.Catalog
	Repo     *restic.Repo
	Log      *slog.Logger
	Instance *config.Instance
	// CreatePoint takes the rollback point.
	CreatePoint func(ctx context.Context, reason string) (*point.Point, error)
	// SetManifest returns a snapshot set's manifest (row counts).
	SetManifest func(ctx context.Context, set string) (*manifest.Manifest, error)
	Out         io.Writer
}

// ErrOSProblem is returned (wrapped) when verify finds a problem (exit 3).
var ErrOSProblem = fmt.Errorf("OS upgrade verification found a problem")

func (o *OSOptions) say(format string, args ...any) {
	if o.Out != nil {
		fmt.Fprintf(o.Out, format+"\n", args...)
	}
	o.Log.Info(fmt.Sprintf(format, args...))
}

func prettyName(osRelease string) string {
	for _, l := range strings.Split(osRelease, "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// configPaths lists the configuration files to capture (files that exist; directories are
// expanded one level).
func configPaths(in *config.Instance, p *point.Point) []string {
	var cands []string
	cands = append(cands, filepath.Join(in.DHIS2Home, "dhis.conf"))
	if in.App != nil && in.App.DHIS2Home != "" {
		cands = append(cands, filepath.Join(in.App.DHIS2Home, "dhis.conf"))
	}
	if p != nil {
		cands = append(cands, p.Cluster.ConfigFile, p.Cluster.HBAFile)
	}
	if in.App != nil && in.App.Proxy == "nginx" {
		f := strings.Fields(in.App.Nginx)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "-c" {
				cands = append(cands, f[i+1])
			}
		}
	}
	cands = append(cands, "/etc/nginx/nginx.conf", "/etc/nginx/sites-enabled", "/etc/nginx/conf.d",
		"/etc/crontab", "/etc/cron.d", "/var/spool/cron/crontabs")
	if in.OS != nil {
		cands = append(cands, in.OS.Files...)
	}
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, c := range cands {
		fi, err := os.Stat(c)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			ents, _ := os.ReadDir(c)
			for _, e := range ents {
				if !e.IsDir() {
					add(filepath.Join(c, e.Name()))
				}
			}
			add(c + "/") // the directory itself: new files in it are reported
			continue
		}
		add(c)
	}
	return out
}

func serviceCmd(in *config.Instance, status bool) string {
	if in.OS != nil {
		if status && in.OS.ServiceStatus != "" {
			return in.OS.ServiceStatus
		}
		if !status && in.OS.ServiceUnit != "" {
			return in.OS.ServiceUnit
		}
	}
	if status {
		return `systemctl is-active --quiet "$DHIS2_LIFE_SERVICE"`
	}
	return `systemctl cat "$DHIS2_LIFE_SERVICE"`
}

func runService(ctx context.Context, command, service string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), "DHIS2_LIFE_SERVICE="+service)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func services(in *config.Instance) []string {
	if in.OS == nil {
		return nil
	}
	return in.OS.Services
}

// capture reads the host's state.
func capture(ctx context.Context, in *config.Instance, p *point.Point) *HostCapture {
	c := &HostCapture{Time: time.Now().UTC(), Files: map[string]string{}, Units: map[string]string{}, Services: map[string]bool{}}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		c.OSRelease = string(b)
	}
	if out, err := exec.CommandContext(ctx, "dpkg", "--get-selections").Output(); err == nil {
		c.Selections = string(out)
	}
	c.Packages, _ = point.Packages(ctx)
	for _, path := range configPaths(in, p) {
		if strings.HasSuffix(path, "/") {
			c.Files[path] = dirListing(path)
			continue
		}
		if b, err := os.ReadFile(path); err == nil {
			c.Files[path] = string(b)
		}
	}
	for _, s := range services(in) {
		if out, err := runService(ctx, serviceCmd(in, false), s); err == nil {
			c.Units[s] = out
		}
		_, err := runService(ctx, serviceCmd(in, true), s)
		c.Services[s] = err == nil
	}
	return c
}

func dirListing(dir string) string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return strings.Join(names, "\n")
}

// PrepareOS takes a rollback point and a capture of the host, stores the capture in the
// repository with the point and records the OS upgrade.
func PrepareOS(ctx context.Context, o OSOptions) (*OSRecord, error) {
	in := o.Instance
	p, err := o.CreatePoint(ctx, "before an OS upgrade")
	if err != nil {
		return nil, fmt.Errorf("taking the rollback point: %w", err)
	}
	c := capture(ctx, in, p)
	data, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	r := &OSRecord{ID: now.Format("20060102T150405Z") + "-os-" + in.Name, Kind: "os", Instance: in.Name, From: prettyName(c.OSRelease),
		State: StateRunning, Step: "prepare", Point: p.ID, PointSet: p.Set, Created: now,
		Before: OSState{OSRelease: prettyName(c.OSRelease), Packages: c.Packages, Postgres: p.PostgresVersion}}
	done := time.Now().UTC()
	r.Steps = []StepRecord{{Name: "prepare", Started: &now, Finished: &done, OK: true}}
	sum, err := o.Repo.BackupReader(ctx, CaptureFile, bytes.NewReader(data), restic.BackupOptions{
		Tags: []string{manifest.TagApp, "oscapture:" + r.ID, "point:" + p.ID, "instance:" + in.Name, "part:oscapture"}})
	if err != nil {
		return nil, fmt.Errorf("storing the host capture in the repository: %w", err)
	}
	r.Capture = sum.SnapshotID
	if err := putOS(o.Catalog, r); err != nil {
		return nil, err
	}
	o.say("OS upgrade %s prepared: rollback point %s (set %s); captured %s, %d packages, %d configuration files, %d services (restic snapshot %s)",
		r.ID, p.ID, p.Set, r.From, strings.Count(c.Selections, "\n"), len(c.Files), len(c.Units), shortID(r.Capture))
	o.say("upgrade the OS and reboot, then run `dhis2-life upgrade os verify`")
	return r, nil
}

func shortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func putOS(cat *catalog.Catalog, r *OSRecord) error {
	r.Updated = time.Now().UTC()
	if err := cat.PutJSON(OSBucket, r.ID, r); err != nil {
		return fmt.Errorf("recording OS upgrade %s: %w", r.ID, err)
	}
	return nil
}

// ListOS returns every OS upgrade record, oldest first ("" = all instances).
func ListOS(cat *catalog.Catalog, instance string) ([]*OSRecord, error) {
	var out []*OSRecord
	err := cat.ListJSON(OSBucket, func(key string, raw []byte) error {
		var r OSRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decoding OS upgrade %s: %w", key, err)
		}
		if instance == "" || r.Instance == instance {
			out = append(out, &r)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// LatestOS returns the instance's newest OS upgrade.
func LatestOS(cat *catalog.Catalog, instance string) (*OSRecord, error) {
	recs, err := ListOS(cat, instance)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, &UsageError{Msg: fmt.Sprintf("instance %s has no OS upgrade: run `dhis2-life upgrade os prepare` before upgrading the OS", instance)}
	}
	return recs[len(recs)-1], nil
}

// VerifyOS checks the host after the OS upgrade against the capture and the rollback point;
// the error wraps ErrOSProblem when a check fails.
func VerifyOS(ctx context.Context, o OSOptions) (*OSRecord, error) {
	in := o.Instance
	r, err := LatestOS(o.Catalog, in.Name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := o.Repo.Dump(ctx, r.Capture, "/"+CaptureFile, &buf); err != nil {
		return r, fmt.Errorf("reading the host capture %s from the repository: %w", shortID(r.Capture), err)
	}
	var c HostCapture
	if err := json.Unmarshal(buf.Bytes(), &c); err != nil {
		return r, fmt.Errorf("decoding the host capture: %w", err)
	}
	var p point.Point
	if ok, err := o.Catalog.GetJSON(point.Bucket, r.Point, &p); err != nil || !ok {
		return r, fmt.Errorf("rollback point %s of %s is not in the catalogue (run `dhis2-life catalog rebuild`): %v", r.Point, r.ID, err)
	}
	r.Checks, r.Diffs = nil, nil
	started := time.Now().UTC()
	add := func(name string, ok bool, detail, fix string) {
		r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: detail, Fix: fix})
	}
	for _, s := range services(in) {
		if out, err := runService(ctx, serviceCmd(in, true), s); err != nil {
			add("service "+s, false, fmt.Sprintf("not up (%v) %s", err, strings.TrimSpace(lastN(out, 200))), "start it and look at its log (journalctl -u "+s+")")
		} else {
			add("service "+s, true, "up", "")
		}
	}
	after := &OSState{}
	conn, err := instConn(in).Connect(ctx)
	if err != nil {
		add("postgres", false, fmt.Sprintf("cannot connect: %v", err), fmt.Sprintf("start the cluster on port %d", p.Cluster.Port))
	} else {
		num, full, _ := pg.ServerVersion(ctx, conn)
		after.Postgres = full
		var port int
		_ = conn.QueryRow(ctx, `SELECT current_setting('port')::int`).Scan(&port)
		switch {
		case num/10000 != p.PostgresMajor:
			add("postgres", false, fmt.Sprintf("PostgreSQL %s answers, the point has %d", full, p.PostgresMajor), "start the cluster of the point's major (pg_lsclusters)")
		case p.Cluster.Port != 0 && port != p.Cluster.Port:
			add("postgres", false, fmt.Sprintf("the cluster listens on %d, the point on %d", port, p.Cluster.Port), "fix port in postgresql.conf")
		default:
			add("postgres", true, fmt.Sprintf("PostgreSQL %s on port %d", full, port), "")
		}
		add(rowCheck(ctx, o, conn, p.Set))
		conn.Close(ctx)
	}
	if in.App != nil && in.App.URL != "" {
		if answers(ctx, in.App.URL) {
			add("dhis2", true, in.App.URL+"/api/system/ping answers", "")
		} else {
			add("dhis2", false, in.App.URL+"/api/system/ping does not answer", "start DHIS2 and look at its log")
		}
	}
	now := capture(ctx, in, &p)
	after.OSRelease, after.Packages = prettyName(now.OSRelease), now.Packages
	r.Diffs = diffCaptures(&c, now)
	if len(r.Diffs) > 0 {
		var names []string
		for _, d := range r.Diffs {
			names = append(names, d.Path+" "+d.Change)
		}
		add("config", false, strings.Join(names, "; "), "review each change (the captured version is in the repository with the point)")
	} else {
		add("config", true, fmt.Sprintf("%d files and %d units as captured", len(c.Files), len(c.Units)), "")
	}
	t := time.Now().UTC()
	r.After, r.To, r.Verified, r.Step = after, after.OSRelease, &t, "verify"
	r.State = StateDone
	var failed []string
	for _, ch := range r.Checks {
		if !ch.OK {
			failed = append(failed, ch.Name)
		}
	}
	if len(failed) > 0 {
		r.State = StateFailed
	}
	r.Steps = append(r.Steps, StepRecord{Name: "verify", Started: &started, Finished: &t, OK: len(failed) == 0})
	if err := putOS(o.Catalog, r); err != nil {
		return r, err
	}
	if len(failed) > 0 {
		return r, fmt.Errorf("%w: %s (see `dhis2-life upgrade os report`)", ErrOSProblem, strings.Join(failed, ", "))
	}
	return r, nil
}

func rowCheck(ctx context.Context, o OSOptions, conn interface {
	pg.Querier
}, set string) (string, bool, string, string) {
	m, err := o.SetManifest(ctx, set)
	if err != nil {
		return "rows", false, fmt.Sprintf("reading the point's set %s: %v", set, err), "run `dhis2-life catalog rebuild`"
	}
	excluded := map[string]bool{}
	for _, x := range m.Excluded {
		excluded[x.Schema+"."+x.Name] = true
	}
	var short []string
	n := 0
	for _, t := range m.Tables {
		key := t.Schema + "." + t.Name
		if excluded[key] {
			continue
		}
		var rows int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pg.QualifiedName(t.Schema, t.Name)).Scan(&rows); err != nil {
			short = append(short, key+" missing")
			continue
		}
		n++
		if rows < t.Rows {
			short = append(short, fmt.Sprintf("%s %d < %d", key, rows, t.Rows))
		}
	}
	if len(short) > 0 {
		if len(short) > 5 {
			short = append(short[:5], fmt.Sprintf("and %d more", len(short)-5))
		}
		return "rows", false, "fewer rows than at the point: " + strings.Join(short, "; "), "compare with the rollback point's set (dhis2-life restore … --to-db) before going on"
	}
	return "rows", true, fmt.Sprintf("%d tables hold at least the point's rows", n), ""
}

// diffCaptures compares configuration files and units of two captures.
func diffCaptures(before, now *HostCapture) []FileDiff {
	var out []FileDiff
	cmp := func(prefix string, a, b map[string]string) {
		for _, k := range sortedKeys(a) {
			nv, ok := b[k]
			switch {
			case !ok:
				out = append(out, FileDiff{Path: prefix + k, Change: "missing"})
			case nv != a[k]:
				out = append(out, FileDiff{Path: prefix + k, Change: "changed", Lines: lineDiff(a[k], nv)})
			}
		}
		for _, k := range sortedKeys(b) {
			if _, ok := a[k]; !ok && !strings.HasSuffix(k, "/") {
				out = append(out, FileDiff{Path: prefix + k, Change: "new"})
			}
		}
	}
	cmp("", before.Files, now.Files)
	cmp("unit ", before.Units, now.Units)
	return out
}

// lineDiff lists removed (-) and added (+) lines, secrets redacted, at most 20.
func lineDiff(a, b string) []string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if cb[l] > 0 {
			cb[l]--
			continue
		}
		out = append(out, "- "+redactLine(l))
	}
	for _, l := range strings.Split(b, "\n") {
		if ca[l] > 0 {
			ca[l]--
			continue
		}
		out = append(out, "+ "+redactLine(l))
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("… %d more lines", len(out)-20))
	}
	return out
}

func redactLine(l string) string {
	k, _, ok := strings.Cut(l, "=")
	if ok && (strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "secret")) {
		return strings.TrimSpace(k) + " = <redacted>"
	}
	return l
}
