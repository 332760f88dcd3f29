package upgrade

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// Check is one preflight check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// PlanReport is what `upgrade postgres plan` prints: every check and every step.
type PlanReport struct {
	Instance string       `json:"instance"`
	From     int          `json:"from"`
	To       int          `json:"to"`
	Method   string       `json:"method"`
	Blue     pg.Cluster   `json:"blue"`
	Green    pg.Cluster   `json:"green"`
	Init     InitSettings `json:"init"`
	Checks   []Check      `json:"checks"`
	Steps    []string     `json:"steps"`
	Rollback string       `json:"rollback"`
}

// Err returns the first failed check as a one-line error naming the fix, or nil.
func (p *PlanReport) Err() error {
	for _, c := range p.Checks {
		if !c.OK {
			return &CheckError{Check: c}
		}
	}
	return nil
}

// CheckError is a failed preflight check.
type CheckError struct{ Check Check }

func (e *CheckError) Error() string {
	return fmt.Sprintf("preflight %s failed: %s: %s (nothing was changed)", e.Check.Name, e.Check.Detail, e.Check.Fix)
}

// UsageError is bad input (unsupported target, unknown method, no cluster configured).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// MinTarget and MaxTarget bound the supported target majors.
const (
	MinTarget = 13
	MaxTarget = 17
)

// blueCluster returns the instance's current cluster: the green of its last finished
// upgrade, else the one in [instances.NAME.cluster].
func blueCluster(o Options) (pg.Cluster, error) {
	in := o.Instance
	recs, err := List(o.Catalog, in.Name)
	if err != nil {
		return pg.Cluster{}, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if s := recs[i].State; s == StateDone || s == StateFinalized {
			return recs[i].Green, nil
		}
	}
	cl := in.Cluster
	if cl == nil {
		return pg.Cluster{}, &UsageError{Msg: fmt.Sprintf("instance %s has no [instances.%s.cluster]: add kind, data_dir, bin_dir and run_as (see `dhis2-life config example`)", in.Name, in.Name)}
	}
	cfg, err := pg.Conn{DSN: in.Database}.Config()
	if err != nil {
		return pg.Cluster{}, err
	}
	port := int(cfg.Port)
	if cl.Kind == pg.KindDebian {
		return pg.DebianCluster(cl.Version, cl.Name, cl.RunAs, port)
	}
	return pg.PGCtlCluster(cl.DataDir, cl.BinDir, cl.RunAs, port)
}

// greenCluster derives the new major's cluster from blue.
func greenCluster(blue pg.Cluster, to int) pg.Cluster {
	g := blue
	g.Major = to
	g.BinDir = blue.BinDirFor(to)
	if blue.Kind == pg.KindDebian {
		v := strconv.Itoa(to)
		g.ConfDir = filepath.Join(pg.DebianConfRoot, v, blue.Name)
		g.DataDir = filepath.Join(pg.DebianDataRoot, v, blue.Name)
		return g
	}
	from := strconv.Itoa(blue.Major)
	parts := strings.Split(blue.DataDir, string(filepath.Separator))
	g.DataDir = ""
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] == from {
			parts[i] = strconv.Itoa(to)
			g.DataDir = strings.Join(parts, string(filepath.Separator))
			break
		}
	}
	if g.DataDir == "" {
		g.DataDir = blue.DataDir + "-" + strconv.Itoa(to)
	}
	g.ConfDir = g.DataDir
	return g
}

// Plan runs every preflight check without changing anything.
func Plan(ctx context.Context, o Options) (*PlanReport, error) {
	in := o.Instance
	if !slices.Contains(Methods, o.Method) {
		return nil, &UsageError{Msg: fmt.Sprintf("unknown method %q: use --method copy, clone or link", o.Method)}
	}
	blue, err := blueCluster(o)
	if err != nil {
		return nil, err
	}
	if o.To <= blue.Major {
		return nil, &UsageError{Msg: fmt.Sprintf("--to %d is not newer than the cluster's PostgreSQL %d: name a newer major, e.g. --to %d", o.To, blue.Major, max(blue.Major+2, MinTarget))}
	}
	if o.To < MinTarget || o.To > MaxTarget {
		return nil, &UsageError{Msg: fmt.Sprintf("--to %d is not supported: choose a PostgreSQL major from %d to %d", o.To, MinTarget, MaxTarget)}
	}
	p := &PlanReport{Instance: in.Name, From: blue.Major, To: o.To, Method: o.Method, Blue: blue, Green: greenCluster(blue, o.To), Steps: Steps}
	add := func(name string, ok bool, detail, fix string) bool {
		p.Checks = append(p.Checks, Check{Name: name, OK: ok, Detail: detail, Fix: fix})
		return ok
	}
	switch o.Method {
	case "link":
		p.Rollback = "before green first starts: blue's pg_control is restored and blue starts again; after that (including after done) blue's data directory is unusable (pg_upgrade --link), so rollback restores the rollback point's snapshot set into a new PostgreSQL " + strconv.Itoa(blue.Major) + " cluster"
	default:
		p.Rollback = "blue's data directory is not touched: rollback (automatic on a failed check, or `upgrade rollback` after done) stops green and starts blue on its port again"
	}

	// app hooks
	if in.App == nil || in.App.Stop == "" || in.App.Start == "" {
		add("app hooks", false, "no app stop/start hooks", fmt.Sprintf("set stop and start (and url) in [instances.%s.app]", in.Name))
	} else {
		d := "stop, start"
		if in.App.URL != "" {
			d += ", health " + strings.TrimRight(in.App.URL, "/") + "/api/system/ping"
		}
		add("app hooks", true, d, "")
	}
	if in.AdminDatabase == "" {
		add("superuser connection", false, "no admin_database", fmt.Sprintf("set admin_database in [instances.%s] (ALTER EXTENSION and vacuumdb need a superuser)", in.Name))
	}

	// binaries
	var missing []string
	for _, b := range []string{"postgres", "initdb", "pg_ctl", "pg_upgrade", "vacuumdb", "pg_isready"} {
		if _, err := os.Stat(filepath.Join(p.Green.BinDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if blue.Kind == pg.KindDebian {
		for _, b := range []string{"pg_createcluster", "pg_ctlcluster", "pg_dropcluster"} {
			if _, err := exec.LookPath(b); err != nil {
				missing = append(missing, b)
			}
		}
	}
	if len(missing) > 0 {
		add("binaries", false, fmt.Sprintf("PostgreSQL %d programs missing in %s: %s", o.To, p.Green.BinDir, strings.Join(missing, ", ")),
			fmt.Sprintf("install postgresql-%d (apt-get install postgresql-%d)", o.To, o.To))
	} else {
		add("binaries", true, "PostgreSQL "+strconv.Itoa(o.To)+" programs in "+p.Green.BinDir, "")
	}

	// blue
	up, err := blue.Running(ctx)
	if err != nil || !up {
		add("blue", false, fmt.Sprintf("%s is not running (%v)", blue, err), "start it: upgrades begin from a running cluster")
		return p, nil
	}
	add("blue", true, fmt.Sprintf("%s running on port %d", blue, blue.Port), "")
	if err := initSettings(ctx, in, &p.Init); err != nil {
		add("blue settings", false, err.Error(), "check admin_database reaches the cluster as a superuser")
		return p, nil
	}

	// extensions
	if len(missing) == 0 {
		share := shareDir(p.Green.BinDir, o.To)
		exts, err := extensionsByDB(ctx, in)
		if err != nil {
			add("extensions", false, err.Error(), "check admin_database")
		} else {
			var lack []string
			var have []string
			for _, db := range sortedKeys(exts) {
				for _, e := range exts[db] {
					if _, err := os.Stat(filepath.Join(share, "extension", e+".control")); err != nil {
						lack = append(lack, e+" (database "+db+")")
					} else if !slices.Contains(have, e) {
						have = append(have, e)
					}
				}
			}
			if len(lack) > 0 {
				first := strings.Fields(lack[0])[0]
				add("extensions", false, fmt.Sprintf("not available for PostgreSQL %d (%s): %s", o.To, share, strings.Join(lack, ", ")),
					fmt.Sprintf("install the extension's package for %d (e.g. apt-get install postgresql-%d-%s) or drop it", o.To, o.To, extPackage(first)))
			} else {
				add("extensions", true, fmt.Sprintf("%s available for PostgreSQL %d", strings.Join(have, ", "), o.To), "")
			}
		}
	}

	// green's place
	if blue.Kind == pg.KindDebian {
		if _, err := os.Stat(p.Green.ConfDir); err == nil {
			add("green", false, fmt.Sprintf("postgresql-common cluster %d/%s already exists", o.To, blue.Name), fmt.Sprintf("drop it (pg_dropcluster %d %s) if it is unused", o.To, blue.Name))
		}
	}
	if _, err := os.Stat(p.Green.DataDir); err == nil {
		add("green", false, "green's data directory "+p.Green.DataDir+" already exists", "move or remove it if it is unused")
	} else {
		add("green", true, "green's data directory will be "+p.Green.DataDir, "")
	}

	// disk
	size, err := dirSize(blue.DataDir)
	if err != nil {
		add("disk", false, err.Error(), "run dhis2-life as a user that can read blue's data directory")
	} else {
		need := diskNeed(o.Method, size)
		free, where, err := freeBytes(p.Green.DataDir)
		switch {
		case err != nil:
			add("disk", false, err.Error(), "check green's parent directory")
		case free < need:
			add("disk", false, fmt.Sprintf("%s has %s free; --method %s needs %s (blue's data directory is %s)", where, human(free), o.Method, human(need), human(size)),
				"free space there or use --method link (which needs little space but makes rollback after start a restore)")
		default:
			add("disk", true, fmt.Sprintf("%s free at %s, %s needed for --method %s", human(free), where, human(need), o.Method), "")
		}
	}

	if p.Err() == nil {
		if err := checkUpgrade(ctx, p); err != nil {
			fix := "fix what pg_upgrade reports (its log names it)"
			if strings.Contains(err.Error(), "could not clone") {
				fix = "the file system has no reflinks (clone needs XFS with reflink, Btrfs or similar): use --method copy or link"
			}
			add("pg_upgrade --check", false, err.Error(), fix)
		} else {
			add("pg_upgrade --check", true, "clusters are compatible", "")
		}
	}
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func extPackage(ext string) string {
	if strings.HasPrefix(ext, "postgis") || ext == "address_standardizer" {
		return "postgis-3"
	}
	return strings.ReplaceAll(ext, "_", "-")
}

// diskNeed is the free space pg_upgrade needs on green's file system.
func diskNeed(method string, blueSize int64) int64 {
	const slack = 64 << 20
	switch method {
	case "link", "clone":
		return blueSize/20 + slack
	}
	return blueSize + blueSize/10 + slack
}

func human(b int64) string {
	const u = 1024
	if b < u {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(u), 0
	for n := b / u; n >= u; n /= u {
		div *= u
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	return n, nil
}

// freeBytes returns the free bytes on the file system that will hold path (its nearest
// existing ancestor).
func freeBytes(path string) (int64, string, error) {
	p := path
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		return 0, p, fmt.Errorf("statfs %s: %w", p, err)
	}
	return int64(st.Bavail) * st.Bsize, p, nil
}

// shareDir finds the new major's share directory (extension control files).
func shareDir(binDir string, major int) string {
	cands := []string{}
	if out, err := exec.Command(filepath.Join(binDir, "pg_config"), "--sharedir").Output(); err == nil {
		cands = append(cands, strings.TrimSpace(string(out)))
	}
	cands = append(cands, fmt.Sprintf("/usr/share/postgresql/%d", major),
		filepath.Join(binDir, "..", "share", "postgresql"), filepath.Join(binDir, "..", "share"))
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "extension", "plpgsql.control")); err == nil {
			return c
		}
	}
	return cands[0]
}

// extensionsByDB lists the extensions of every connectable database.
func extensionsByDB(ctx context.Context, in *config.Instance) (map[string][]string, error) {
	dbs, err := databases(ctx, in)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, db := range dbs {
		conn, err := adminConn(in).WithDatabase(db).Connect(ctx)
		if err != nil {
			return nil, err
		}
		exts, err := pg.Extensions(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", db, err)
		}
		for _, e := range exts {
			out[db] = append(out[db], e.Name)
		}
	}
	return out, nil
}

// initSettings reads what green's initdb must share with blue.
func initSettings(ctx context.Context, in *config.Instance, s *InitSettings) error {
	conn, err := adminConn(in).Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var sums string
	err = conn.QueryRow(ctx, `SELECT (SELECT rolname FROM pg_authid WHERE oid = 10), pg_encoding_to_char(encoding), datcollate, datctype, current_setting('data_checksums')
FROM pg_database WHERE datname = 'template0'`).Scan(&s.Superuser, &s.Encoding, &s.Collate, &s.Ctype, &sums)
	if err != nil {
		return fmt.Errorf("reading blue's bootstrap superuser and locale: %w", err)
	}
	s.Checksums = sums == "on"
	return nil
}
