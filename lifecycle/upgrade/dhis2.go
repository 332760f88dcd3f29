package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/proxy"
)

// DHIS2Options is what every DHIS2 upgrade call needs.
type DHIS2Options struct {
	Catalog  *catalog.Catalog
	Log      *slog.Logger
	Instance *config.Instance
	// StateDir holds the proxy hook's state file.
	StateDir string
	// WAR is the new DHIS2 WAR (plan, run, rehearse).
	WAR string
	// CreatePoint takes the rollback point and returns its ID and snapshot set ID.
	CreatePoint func(ctx context.Context, reason string) (id, set string, err error)
	// Snapshot takes the final snapshot set of blue in maintenance and returns its ID.
	Snapshot func(ctx context.Context) (set string, err error)
	// RestoreTo restores a set into a fresh database (created, replaced when present) with
	// no scrub; dsn names it (the instance's role and password file).
	RestoreTo func(ctx context.Context, set, dsn string) error
	// ExportDir receives the rows entered on green since the switch as CSV (rollback).
	ExportDir string
	// Out receives one line per step as it runs (nil = discard).
	Out io.Writer
}

func (o *DHIS2Options) say(format string, args ...any) {
	if o.Out != nil {
		fmt.Fprintf(o.Out, format+"\n", args...)
	}
	o.Log.Info(fmt.Sprintf(format, args...))
}

// DHIS2Plan is what `upgrade dhis2 plan` prints.
type DHIS2Plan struct {
	Instance      string   `json:"instance"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	WAR           string   `json:"war"`
	BlueDB        string   `json:"blue_database"`
	GreenDB       string   `json:"green_database"`
	BlueUpstream  string   `json:"blue_upstream"`
	GreenUpstream string   `json:"green_upstream"`
	Checks        []Check  `json:"checks"`
	Steps         []string `json:"steps"`
	Rollback      string   `json:"rollback"`
}

// Err returns the first failed check as a *CheckError.
func (p *DHIS2Plan) Err() error {
	for _, c := range p.Checks {
		if !c.OK {
			return &CheckError{Check: c}
		}
	}
	return nil
}

// greenDSN is the green slot's database: app.green.database, else the instance's database
// name + "_green" on the same server.
func greenDSN(in *config.Instance) string {
	if in.App.Green.Database != "" {
		return in.App.Green.Database
	}
	c := pg.Conn{DSN: in.Database}
	return c.WithDatabase(c.Database() + "_green").DSN
}

func blueHome(in *config.Instance) string {
	if in.App != nil && in.App.DHIS2Home != "" {
		return in.App.DHIS2Home
	}
	return in.DHIS2Home
}

// switcher builds the configured proxy switch.
func switcher(o DHIS2Options) (proxy.Switcher, error) {
	a := o.Instance.App
	switch a.Proxy {
	case "nginx":
		return &proxy.Nginx{UpstreamFile: a.UpstreamFile, Command: a.Nginx}, nil
	case "hook":
		return &proxy.Hook{Command: a.ProxyHook, StateFile: filepath.Join(o.StateDir, "proxy-"+o.Instance.Name+".upstream")}, nil
	}
	return nil, &UsageError{Msg: fmt.Sprintf("instance %s has no proxy: set [instances.%s.app] proxy = \"nginx\" (upstream_file) or \"hook\" (proxy_hook)", o.Instance.Name, o.Instance.Name)}
}

// checkSlots refuses an instance without blue-green app configuration.
func checkSlots(in *config.Instance) error {
	if in.App == nil || in.App.Green == nil {
		return &UsageError{Msg: fmt.Sprintf("instance %s has no green app slot: add [instances.%s.app] (stop, start, url, proxy) and [instances.%s.app.green] (stop, start, url, dhis2_home)", in.Name, in.Name, in.Name)}
	}
	if in.App.Start == "" || in.App.Stop == "" || in.App.URL == "" {
		return &UsageError{Msg: fmt.Sprintf("instance %s: [instances.%s.app] needs stop, start and url (the blue slot)", in.Name, in.Name)}
	}
	return nil
}

// PlanDHIS2 runs every preflight check of a DHIS2 upgrade; it changes nothing.
func PlanDHIS2(ctx context.Context, o DHIS2Options) (*DHIS2Plan, error) {
	in := o.Instance
	if err := checkSlots(in); err != nil {
		return nil, err
	}
	sw, err := switcher(o)
	if err != nil {
		return nil, err
	}
	p := &DHIS2Plan{Instance: in.Name, WAR: o.WAR, BlueDB: pg.Redact(in.Database), GreenDB: pg.Redact(greenDSN(in))}
	add := func(name string, ok bool, detail, fix string) {
		p.Checks = append(p.Checks, Check{Name: name, OK: ok, Detail: detail, Fix: fix})
	}
	if abs, err := filepath.Abs(o.WAR); err == nil {
		p.WAR = abs
	}
	if v, err := WARVersion(p.WAR); err != nil {
		add("war", false, err.Error(), "pass the DHIS2 WAR file with --war")
	} else {
		p.To = v
		add("war", true, fmt.Sprintf("%s is DHIS2 %s", p.WAR, v), "")
	}
	conn, err := instConn(in).Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to blue's database: %w", err)
	}
	defer conn.Close(ctx)
	p.From, err = dhis2.FlywayVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	switch {
	case p.From == "":
		add("version", false, "blue's database has no flyway_schema_history", "point [instances.NAME] database at the DHIS2 database")
	case p.To != "" && versionLess(majorLine(p.To), majorLine(p.From)):
		add("version", false, fmt.Sprintf("blue is at %s, the WAR is %s: DHIS2 cannot be downgraded", p.From, p.To), "use a WAR of the same or a newer version")
	case p.To != "":
		add("version", true, fmt.Sprintf("blue's database is at flyway %s -> %s", p.From, p.To), "")
	}
	var failed int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM flyway_schema_history WHERE NOT success`).Scan(&failed); err == nil && failed > 0 {
		add("flyway", false, fmt.Sprintf("blue has %d failed flyway migrations", failed), "repair blue's database first (DHIS2 refuses to start on it)")
	}
	javaNeed, pgNeed := needs(p.To)
	num, ver, err := pg.ServerVersion(ctx, conn)
	if err == nil {
		major := num / 10000
		if pgNeed > 0 && major < pgNeed {
			add("postgres", false, fmt.Sprintf("PostgreSQL %s; DHIS2 %s needs %d or newer", ver, p.To, pgNeed), "upgrade PostgreSQL first: dhis2-life upgrade postgres run --to 15")
		} else {
			add("postgres", true, fmt.Sprintf("PostgreSQL %s (DHIS2 %s needs >= %d)", ver, p.To, pgNeed), "")
		}
	}
	if javaNeed > 0 {
		if jv, err := javaMajor(ctx); err != nil {
			add("java", true, fmt.Sprintf("not checked (%v); DHIS2 %s needs JDK %d in the green slot", err, p.To, javaNeed), "")
		} else if jv < javaNeed {
			add("java", false, fmt.Sprintf("java on PATH is %d; DHIS2 %s needs JDK %d", jv, p.To, javaNeed), fmt.Sprintf("install openjdk-%d-jre-headless for the green slot", javaNeed))
		} else {
			add("java", true, fmt.Sprintf("java %d (DHIS2 %s needs %d)", jv, p.To, javaNeed), "")
		}
	}
	// Disk: green is a second copy of the database on the same server.
	var size int64
	if err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&size); err == nil {
		if in.Cluster != nil && in.Cluster.DataDir != "" {
			free, where, ferr := freeBytes(in.Cluster.DataDir)
			switch {
			case ferr != nil:
				add("disk", true, fmt.Sprintf("green needs ~%s; free space not readable (%v)", human(size), ferr), "")
			case free < size*12/10:
				add("disk", false, fmt.Sprintf("green needs ~%s, %s has %s free", human(size*12/10), where, human(free)), "free disk space on the database server")
			default:
				add("disk", true, fmt.Sprintf("green needs ~%s, %s has %s free", human(size*12/10), where, human(free)), "")
			}
		} else {
			add("disk", true, fmt.Sprintf("green needs ~%s on the database server (not checked: no [instances.%s.cluster] data_dir)", human(size*12/10), in.Name), "")
		}
	}
	gc := adminConn(in)
	gname := pg.Conn{DSN: greenDSN(in)}.Database()
	if gname == dbName(in) {
		add("green_database", false, "the green database is blue's own", "set [instances.NAME.app.green] database to another database")
	} else if exists, err := dbExists(ctx, gc, gname); err != nil {
		return nil, err
	} else if exists {
		add("green_database", false, fmt.Sprintf("database %s already exists", gname), fmt.Sprintf("drop it (DROP DATABASE %s) once nothing needs it, or name another in [instances.NAME.app.green] database", gname))
	} else {
		add("green_database", true, fmt.Sprintf("%s will be restored from the final snapshot set (no scrub)", gname), "")
	}
	if p.BlueUpstream, err = proxy.Upstream(in.App.URL); err != nil {
		add("blue_slot", false, err.Error(), "fix [instances.NAME.app] url")
	}
	if p.GreenUpstream, err = proxy.Upstream(in.App.Green.URL); err != nil {
		add("green_slot", false, err.Error(), "fix [instances.NAME.app.green] url")
	}
	if p.GreenUpstream == p.BlueUpstream {
		add("green_slot", false, "blue and green slots share "+p.BlueUpstream, "give the green slot its own port")
	}
	if answers(ctx, in.App.Green.URL) {
		add("green_slot", false, "something already answers on the green slot "+in.App.Green.URL, "stop it with the green stop hook first")
	} else {
		add("green_slot", true, fmt.Sprintf("%s free, DHIS2_HOME %s", in.App.Green.URL, in.App.Green.DHIS2Home), "")
	}
	cur, err := sw.Current()
	switch {
	case err != nil:
		add("proxy", false, err.Error(), "check [instances.NAME.app] upstream_file")
	case cur != "" && cur != p.BlueUpstream:
		add("proxy", false, fmt.Sprintf("the proxy points at %s, not at blue (%s)", cur, p.BlueUpstream), "make [instances.NAME.app] the slot the proxy serves")
	default:
		if n, ok := sw.(*proxy.Nginx); ok {
			if err := nginxTest(ctx, n); err != nil {
				add("proxy", false, err.Error(), "fix the nginx configuration first")
				break
			}
		}
		add("proxy", true, fmt.Sprintf("%s proxy serves blue (%s)", in.App.Proxy, p.BlueUpstream), "")
	}
	p.Steps = []string{
		"rollback point (snapshot set, pinned)",
		"maintenance: blue's stop hook (downtime starts)",
		"final snapshot set of blue",
		"green database " + pg.Conn{DSN: greenDSN(in)}.Database() + " restored from it (no scrub)",
		"green dhis.conf in " + in.App.Green.DHIS2Home + ", green start hook with DHIS2_LIFE_WAR=" + p.WAR,
		"green health: /api/system/ping, /api/system/info reports " + p.To + ", no failed flyway rows",
		"proxy switch to green (" + p.GreenUpstream + ")",
		"the new version answers through the proxy (downtime ends); blue's database and slot are kept",
	}
	p.Rollback = "before the switch a failure stops green, drops its database and starts blue; after it `dhis2-life upgrade rollback` sends the proxy back to blue, starts blue and reports the rows entered on green since the switch (--export-since-switch DIR writes them as CSV)"
	return p, nil
}

func nginxTest(ctx context.Context, n *proxy.Nginx) error {
	f := strings.Fields(n.Command)
	if len(f) == 0 {
		f = []string{"nginx"}
	}
	out, err := exec.CommandContext(ctx, f[0], append(f[1:], "-t")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -t: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

var javaVersion = regexp.MustCompile(`version "(\d+)(?:\.(\d+))?`)

func javaMajor(ctx context.Context) (int, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return 0, errors.New("no java on PATH")
	}
	out, err := exec.CommandContext(ctx, "java", "-version").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("java -version: %w", err)
	}
	m := javaVersion.FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("java -version says %q", strings.TrimSpace(string(out)))
	}
	v, _ := strconv.Atoi(m[1])
	if v == 1 && m[2] != "" {
		v, _ = strconv.Atoi(m[2])
	}
	return v, nil
}

func instConn(in *config.Instance) pg.Conn {
	return pg.Conn{DSN: in.Database, PasswordFile: in.DatabasePasswordFile}
}

func dbExists(ctx context.Context, c pg.Conn, name string) (bool, error) {
	conn, err := c.Connect(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var ok bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok)
	return ok, err
}

func dropDB(ctx context.Context, c pg.Conn, name string) error {
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// answers reports whether URL/api/system/ping answers 2xx right now.
func answers(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/system/ping", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// infoVersion returns /api/system/info's version; ok=false when the app wants a login.
func infoVersion(ctx context.Context, base string) (v string, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/system/info", nil)
	if err != nil {
		return "", false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return "", false, nil
	}
	if resp.StatusCode/100 != 2 {
		return "", false, fmt.Errorf("/api/system/info: %s", resp.Status)
	}
	var info struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return "", false, fmt.Errorf("/api/system/info: %w", err)
	}
	return info.Version, true, nil
}

// RunDHIS2 preflights, records and runs a blue-green DHIS2 upgrade. A failed step before the
// switch tears green down and brings blue back by itself.
func RunDHIS2(ctx context.Context, o DHIS2Options) (*DHIS2Record, error) {
	if err := checkSlots(o.Instance); err != nil {
		return nil, err
	}
	if err := refuseOpen(o.Catalog, o.Instance.Name); err != nil {
		return nil, err
	}
	p, err := PlanDHIS2(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	in := o.Instance
	now := time.Now().UTC()
	r := &DHIS2Record{ID: now.Format("20060102T150405Z") + "-dhis2-" + p.To + "-" + in.Name, Kind: "dhis2", Instance: in.Name,
		From: p.From, To: p.To, WAR: p.WAR, State: StateRunning, BlueDB: in.Database, GreenDB: greenDSN(in),
		BlueUpstream: p.BlueUpstream, GreenUpstream: p.GreenUpstream, GreenHome: in.App.Green.DHIS2Home, Created: now}
	if err := putDHIS2(o.Catalog, r); err != nil {
		return nil, err
	}
	o.say("upgrade %s: DHIS2 %s -> %s of %s (green slot %s)", r.ID, r.From, r.To, r.Instance, in.App.Green.URL)
	return r, driveDHIS2(ctx, o, r)
}

// refuseOpen refuses a new upgrade while one of either kind is open.
func refuseOpen(cat *catalog.Catalog, instance string) error {
	pgs, err := List(cat, instance)
	if err != nil {
		return err
	}
	for _, r := range pgs {
		if r.Open() {
			return fmt.Errorf("upgrade %s of %s is still %s at step %s: finish it with `dhis2-life upgrade resume` or undo it with `dhis2-life upgrade rollback`", r.ID, r.Instance, r.State, r.Step)
		}
	}
	ds, err := ListDHIS2(cat, instance)
	if err != nil {
		return err
	}
	for _, r := range ds {
		if r.Open() {
			return fmt.Errorf("upgrade %s of %s is still %s at step %s: finish it with `dhis2-life upgrade resume` or undo it with `dhis2-life upgrade rollback`", r.ID, r.Instance, r.State, r.Step)
		}
		if r.State == StateDone {
			return fmt.Errorf("upgrade %s of %s is done but not finalized: run `dhis2-life upgrade finalize` (or `upgrade rollback`) first", r.ID, r.Instance)
		}
	}
	return nil
}

// refuseOpenDHIS2 refuses a PostgreSQL upgrade while a DHIS2 upgrade is open.
func refuseOpenDHIS2(cat *catalog.Catalog, instance string) error {
	ds, err := ListDHIS2(cat, instance)
	if err != nil {
		return err
	}
	for _, r := range ds {
		if r.Open() {
			return fmt.Errorf("DHIS2 upgrade %s of %s is still %s at step %s: finish it with `dhis2-life upgrade resume` or undo it with `dhis2-life upgrade rollback`", r.ID, r.Instance, r.State, r.Step)
		}
	}
	return nil
}

// LatestDHIS2 returns the instance's newest DHIS2 upgrade.
func LatestDHIS2(cat *catalog.Catalog, instance string) (*DHIS2Record, error) {
	recs, err := ListDHIS2(cat, instance)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w of instance %s to act on: see `dhis2-life upgrades`", ErrNoUpgrade, instance)
	}
	return recs[len(recs)-1], nil
}

// ResumeDHIS2 continues the instance's open DHIS2 upgrade from its current step.
func ResumeDHIS2(ctx context.Context, o DHIS2Options) (*DHIS2Record, error) {
	if err := checkSlots(o.Instance); err != nil {
		return nil, err
	}
	r, err := LatestDHIS2(o.Catalog, o.Instance.Name)
	if err != nil {
		return nil, err
	}
	if !r.Open() {
		return r, fmt.Errorf("upgrade %s is %s, nothing to resume: start one with `dhis2-life upgrade dhis2 run`", r.ID, r.State)
	}
	if r.State == StateFailed {
		return r, fmt.Errorf("upgrade %s failed and its automatic rollback did not finish (%s): run `dhis2-life upgrade rollback`", r.ID, r.Error)
	}
	o.WAR = r.WAR
	o.say("resuming upgrade %s at step %s", r.ID, r.Step)
	return r, driveDHIS2(ctx, o, r)
}

func driveDHIS2(ctx context.Context, o DHIS2Options, r *DHIS2Record) error {
	for _, name := range DHIS2Steps {
		if r.Finished(name) {
			continue
		}
		if err := runDHIS2Step(ctx, o, r, name); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("upgrade %s interrupted at step %s: run `dhis2-life upgrade resume` or `dhis2-life upgrade rollback`: %w", r.ID, name, ctx.Err())
			}
			r.Error = fmt.Sprintf("step %s: %v", name, err)
			if r.Started(DStepGreenStart) {
				r.LogTail = tailFile(o.Instance.App.Green.LogFile, 2000)
			}
			if perr := putDHIS2(o.Catalog, r); perr != nil {
				err = errors.Join(err, perr)
			}
			o.say("step %s failed: %v; tearing green down, bringing blue back", name, err)
			if r.LogTail != "" {
				o.say("green app log (tail):\n%s", r.LogTail)
			}
			if rerr := rollbackDHIS2(ctx, o, r); rerr != nil {
				return fmt.Errorf("upgrade %s failed at step %s (%v) and bringing blue back failed too (%v): fix the cause and run `dhis2-life upgrade rollback`", r.ID, name, err, rerr)
			}
			return fmt.Errorf("upgrade %s failed at step %s; green was torn down and blue (DHIS2 %s) serves again: %v", r.ID, name, r.From, err)
		}
	}
	t := time.Now().UTC()
	r.State, r.Done, r.Error = StateDone, &t, ""
	if err := putDHIS2(o.Catalog, r); err != nil {
		return err
	}
	o.say("upgrade %s done: DHIS2 %s answers through the proxy from the green slot (database %s); downtime %s. Blue's database and slot are kept: point [instances.%s] database at %s and swap the app and app.green slots in the config, then `dhis2-life upgrade finalize` drops blue's database",
		r.ID, r.To, pg.Conn{DSN: r.GreenDB}.Database(), r.Downtime().Round(time.Millisecond), r.Instance, pg.Redact(r.GreenDB))
	return nil
}

func runDHIS2Step(ctx context.Context, o DHIS2Options, r *DHIS2Record, name string) error {
	s := r.step(name)
	t := time.Now().UTC()
	s.Started, s.Finished, s.Error = &t, nil, ""
	r.Step = name
	if err := putDHIS2(o.Catalog, r); err != nil {
		return err
	}
	killAt(name)
	o.say("step %s ...", name)
	err := doDHIS2Step(ctx, o, r, name)
	s = r.step(name)
	t2 := time.Now().UTC()
	s.Finished = &t2
	if err != nil {
		s.Error = err.Error()
		return errors.Join(err, putDHIS2(o.Catalog, r))
	}
	killAt(name + ":done")
	s.OK = true
	if err := putDHIS2(o.Catalog, r); err != nil {
		return err
	}
	o.say("step %s ok (%s)", name, t2.Sub(*s.Started).Round(time.Millisecond))
	return nil
}

func greenConn(in *config.Instance, r *DHIS2Record) pg.Conn {
	return pg.Conn{DSN: r.GreenDB, PasswordFile: in.DatabasePasswordFile}
}

func doDHIS2Step(ctx context.Context, o DHIS2Options, r *DHIS2Record, name string) error {
	in := o.Instance
	g := in.App.Green
	switch name {
	case DStepPoint:
		if r.Point != "" {
			return nil
		}
		id, set, err := o.CreatePoint(ctx, fmt.Sprintf("before upgrade %s (DHIS2 %s -> %s)", r.ID, r.From, r.To))
		if err != nil {
			return fmt.Errorf("taking the rollback point: %w", err)
		}
		r.Point, r.PointSet = id, set
		return nil
	case DStepMaintenance:
		if err := hook(ctx, in.App.Stop, "stop"); err != nil {
			return err
		}
		if r.AppStop == nil {
			t := time.Now().UTC()
			r.AppStop = &t
		}
		if up := in.App.MaintenanceUpstream; up != "" {
			sw, err := switcher(o)
			if err != nil {
				return err
			}
			if err := sw.Switch(ctx, "maintenance", up); err != nil {
				return fmt.Errorf("pointing the proxy at the maintenance page: %w", err)
			}
		}
		return nil
	case DStepFinalSet:
		set, err := o.Snapshot(ctx)
		if err != nil {
			return fmt.Errorf("final snapshot set of blue: %w", err)
		}
		r.FinalSet = set
		return nil
	case DStepGreenDB:
		if err := o.RestoreTo(ctx, r.FinalSet, r.GreenDB); err != nil {
			return fmt.Errorf("restoring set %s into green's database: %w", r.FinalSet, err)
		}
		n, err := flywayRows(ctx, greenConn(in, r))
		if err != nil {
			return err
		}
		r.FlywayBefore = n
		return nil
	case DStepGreenStart:
		if err := writeSlotConf(blueHome(in), g.DHIS2Home, greenConn(in, r)); err != nil {
			return err
		}
		return slotHook(ctx, g.Start, "green start", "green", g.DHIS2Home, r.WAR)
	case DStepGreenHealth:
		timeout := g.HealthTimeout.Duration
		if timeout <= 0 {
			timeout = 5 * time.Minute
		}
		if err := waitVersion(ctx, g.URL, r.To, greenConn(in, r), timeout); err != nil {
			return err
		}
		n, err := flywayRows(ctx, greenConn(in, r))
		if err != nil {
			return err
		}
		r.FlywayAfter = n
		return nil
	case DStepSwitch:
		sw, err := switcher(o)
		if err != nil {
			return err
		}
		if r.Switched == nil {
			// The database's own clock: DHIS2 stamps rows with it.
			conn, err := greenConn(in, r).Connect(ctx)
			if err != nil {
				return err
			}
			var ts time.Time
			err = conn.QueryRow(ctx, `SELECT localtimestamp`).Scan(&ts)
			conn.Close(ctx)
			if err != nil {
				return fmt.Errorf("reading green's clock: %w", err)
			}
			t := time.Now().UTC()
			r.Switched, r.SwitchedDB = &t, ts.Format("2006-01-02 15:04:05.999999")
			if err := putDHIS2(o.Catalog, r); err != nil {
				return err
			}
		}
		return sw.Switch(ctx, "green", r.GreenUpstream)
	case DStepProxyCheck:
		if in.App.ProxyURL == "" {
			o.say("  no [instances.%s.app] proxy_url: checked green's own URL only", in.Name)
		} else if err := waitVersion(ctx, in.App.ProxyURL, r.To, pg.Conn{}, time.Minute); err != nil {
			return fmt.Errorf("through the proxy: %w", err)
		}
		t := time.Now().UTC()
		r.AppStart = &t
		return nil
	}
	return fmt.Errorf("unknown step %q", name)
}

// slotHook runs a slot's hook with DHIS2_HOME, DHIS2_LIFE_WAR and DHIS2_LIFE_SLOT set.
func slotHook(ctx context.Context, command, what, slot, home, war string) error {
	if strings.TrimSpace(command) == "" {
		return fmt.Errorf("no %s hook configured", what)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(hctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), "DHIS2_HOME="+home, "DHIS2_LIFE_WAR="+war, "DHIS2_LIFE_SLOT="+slot)
	// The hook may start a daemon that keeps inherited pipes open: give it files.
	f, err := os.CreateTemp("", "dhis2-life-hook-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(f.Name())
		return fmt.Errorf("%s hook %q: %w: %s", what, command, err, strings.TrimSpace(lastN(string(b), 300)))
	}
	return nil
}

// writeSlotConf writes the slot's dhis.conf: blue's with the slot's connection. A
// filesystem file store without its own files/ shares blue's (a symlink).
func writeSlotConf(fromHome, toHome string, c pg.Conn) error {
	conf, err := dhisconf.Read(filepath.Join(fromHome, "dhis.conf"))
	if err != nil {
		return fmt.Errorf("blue's dhis.conf: %w", err)
	}
	cfg, err := c.Config()
	if err != nil {
		return err
	}
	host := cfg.Host
	if strings.HasPrefix(host, "/") || host == "" {
		host = "localhost"
	}
	conf.Set("connection.url", fmt.Sprintf("jdbc:postgresql://%s:%d/%s", host, cfg.Port, cfg.Database))
	conf.Set("connection.username", cfg.User)
	if err := os.MkdirAll(toHome, 0o750); err != nil {
		return fmt.Errorf("green DHIS2_HOME: %w", err)
	}
	if err := conf.Write(filepath.Join(toHome, "dhis.conf")); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(toHome, "dhis.conf"), 0o600); err != nil {
		return err
	}
	p := strings.ToLower(conf.Get("filestore.provider"))
	if p == "" || p == "filesystem" {
		container := conf.Get("filestore.container")
		if container == "" {
			container = "files"
		}
		dst := filepath.Join(toHome, container)
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join(fromHome, container), dst); err != nil {
				return fmt.Errorf("sharing blue's file store with green: %w", err)
			}
		}
	}
	return nil
}

func flywayRows(ctx context.Context, c pg.Conn) (int, error) {
	conn, err := c.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM flyway_schema_history`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting flyway rows: %w", err)
	}
	return n, nil
}

// failedFlyway lists failed flyway migrations ("" = none).
func failedFlyway(ctx context.Context, conn *pgx.Conn) (string, error) {
	rows, err := conn.Query(ctx, `SELECT coalesce(version, ''), description FROM flyway_schema_history WHERE NOT success ORDER BY installed_rank`)
	if err != nil {
		return "", err
	}
	var out []string
	for rows.Next() {
		var v, d string
		if err := rows.Scan(&v, &d); err != nil {
			return "", err
		}
		out = append(out, v+" ("+d+")")
	}
	return strings.Join(out, ", "), rows.Err()
}

// waitVersion waits until base answers ping and info reports want (or, behind a login, the
// database's flyway line matches); with db set, a failed flyway row fails at once.
func waitVersion(ctx context.Context, base, want string, db pg.Conn, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		if db.DSN != "" {
			if conn, err := db.Connect(ctx); err == nil {
				failed, ferr := failedFlyway(ctx, conn)
				fl, _ := dhis2.FlywayVersion(ctx, conn)
				conn.Close(ctx)
				if ferr == nil && failed != "" {
					return fmt.Errorf("flyway migrations failed: %s", failed)
				}
				last = "flyway at " + fl
				if answers(ctx, base) {
					v, ok, err := infoVersion(ctx, base)
					switch {
					case err != nil:
						last = err.Error()
					case ok && v == want:
						return nil
					case ok:
						return fmt.Errorf("%s/api/system/info reports version %s, not %s", base, v, want)
					case majorLine(fl) == majorLine(want):
						return nil
					default:
						last = fmt.Sprintf("/api/system/info needs a login and flyway is at %s", fl)
					}
				}
			} else {
				last = err.Error()
			}
		} else if answers(ctx, base) {
			v, ok, err := infoVersion(ctx, base)
			switch {
			case err != nil:
				last = err.Error()
			case !ok || v == want:
				return nil
			default:
				last = "version " + v
			}
		} else {
			last = "no pong from " + base + "/api/system/ping"
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("DHIS2 %s not up at %s after %s: %s", want, base, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func tailFile(path string, n int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
