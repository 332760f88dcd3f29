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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// Methods are pg_upgrade's transfer modes.
var Methods = []string{"copy", "clone", "link"}

// KillEnv names the test-only hook that makes dhis2-life SIGKILL itself at a step: "STEP"
// (the step is recorded as started, nothing done), "STEP:done" (its work is done, not yet
// recorded) or "pg_upgrade:mid" (while pg_upgrade runs).
const KillEnv = "DHIS2_LIFE_TEST_KILL_AT"

// Options is what every upgrade call needs.
type Options struct {
	Catalog  *catalog.Catalog
	Log      *slog.Logger
	Instance *config.Instance
	// To is the target major version and Method pg_upgrade's transfer mode (plan and run).
	To     int
	Method string
	// CreatePoint takes the rollback point and returns its ID and snapshot set ID.
	CreatePoint func(ctx context.Context, reason string) (id, set string, err error)
	// RestoreSet restores a snapshot set into the instance's (fresh, empty) database: the
	// rollback of a link-mode upgrade whose green has started. It returns the tables
	// (schema.name) whose data the set leaves out.
	RestoreSet func(ctx context.Context, setID string) (excluded []string, err error)
	// HealthTimeout bounds the wait for the app's health URL (default 2m).
	HealthTimeout time.Duration
	// Out receives one line per step as it runs (nil = discard).
	Out io.Writer
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

func (o *Options) say(format string, args ...any) {
	if o.Out != nil {
		fmt.Fprintf(o.Out, format+"\n", args...)
	}
	o.Log.Info(fmt.Sprintf(format, args...))
}

// killAt SIGKILLs the process when the test hook names point.
func killAt(point string) {
	if v := os.Getenv(KillEnv); v != "" && v == point {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is delivered before this returns
	}
}

// Run preflights, records and runs a new upgrade. A failed step before done rolls back by
// itself; the returned record says what happened.
func Run(ctx context.Context, o Options) (*Record, error) {
	recs, err := List(o.Catalog, o.Instance.Name)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Open() {
			return nil, fmt.Errorf("upgrade %s of %s is still %s at step %s: finish it with `dhis2-life upgrade resume` or undo it with `dhis2-life upgrade rollback`", r.ID, r.Instance, r.State, r.Step)
		}
	}
	if err := refuseOpenDHIS2(o.Catalog, o.Instance.Name); err != nil {
		return nil, err
	}
	p, err := Plan(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	now := o.now()
	r := &Record{ID: now.Format("20060102T150405Z") + "-pg" + strconv.Itoa(p.To) + "-" + o.Instance.Name, Kind: "postgres", Instance: o.Instance.Name,
		From: p.From, To: p.To, Method: p.Method, State: StateRunning, Blue: p.Blue, Green: p.Green, Init: p.Init, Created: now}
	if err := put(o.Catalog, r); err != nil {
		return nil, err
	}
	o.say("upgrade %s: PostgreSQL %d -> %d of %s (%s)", r.ID, r.From, r.To, r.Instance, r.Method)
	return r, drive(ctx, o, r)
}

// Resume continues the instance's open upgrade from its current step.
func Resume(ctx context.Context, o Options) (*Record, error) {
	r, err := Latest(o.Catalog, o.Instance.Name)
	if err != nil {
		return nil, err
	}
	if !r.Open() {
		return r, fmt.Errorf("upgrade %s is %s, nothing to resume: start one with `dhis2-life upgrade postgres run`", r.ID, r.State)
	}
	if r.State == StateFailed {
		return r, fmt.Errorf("upgrade %s failed and its automatic rollback did not finish (%s): run `dhis2-life upgrade rollback`", r.ID, r.Error)
	}
	o.say("resuming upgrade %s at step %s", r.ID, r.Step)
	return r, drive(ctx, o, r)
}

// drive runs the remaining steps; on a failure it rolls back.
func drive(ctx context.Context, o Options, r *Record) error {
	for _, name := range Steps {
		if r.Finished(name) {
			continue
		}
		if err := runStep(ctx, o, r, name); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("upgrade %s interrupted at step %s: run `dhis2-life upgrade resume` or `dhis2-life upgrade rollback`: %w", r.ID, name, ctx.Err())
			}
			r.Error = fmt.Sprintf("step %s: %v", name, err)
			if perr := put(o.Catalog, r); perr != nil {
				err = errors.Join(err, perr)
			}
			o.say("step %s failed: %v; rolling back", name, err)
			if rerr := rollback(ctx, o, r); rerr != nil {
				return fmt.Errorf("upgrade %s failed at step %s (%v) and the rollback failed too (%v): fix the cause and run `dhis2-life upgrade rollback`", r.ID, name, err, rerr)
			}
			return fmt.Errorf("upgrade %s failed at step %s and was rolled back (PostgreSQL %d serves the app again): %v", r.ID, name, r.From, err)
		}
	}
	t := o.now()
	r.State, r.Done, r.Error = StateDone, &t, ""
	if err := put(o.Catalog, r); err != nil {
		return err
	}
	o.say("upgrade %s done: PostgreSQL %d serves %s on port %d; app downtime %s; blue (%s) is kept until `dhis2-life upgrade finalize`",
		r.ID, r.To, r.Instance, r.Green.Port, r.Downtime().Round(time.Millisecond), r.Blue.DataDir)
	return nil
}

// runStep records the start, does the work and records the end, each in its own transaction.
func runStep(ctx context.Context, o Options, r *Record, name string) error {
	s := r.step(name)
	t := o.now()
	s.Started, s.Finished, s.Error = &t, nil, ""
	r.Step = name
	if name == StepStartGreen {
		r.GreenStarted = true // before the attempt: a link-mode blue is unusable from here
	}
	if err := put(o.Catalog, r); err != nil {
		return err
	}
	killAt(name)
	o.say("step %s ...", name)
	err := doStep(ctx, o, r, name)
	s = r.step(name)
	t2 := o.now()
	s.Finished = &t2
	if err != nil {
		s.Error = err.Error()
		return errors.Join(err, put(o.Catalog, r))
	}
	killAt(name + ":done")
	s.OK = true
	if err := put(o.Catalog, r); err != nil {
		return err
	}
	o.say("step %s ok (%s)", name, t2.Sub(*s.Started).Round(time.Millisecond))
	return nil
}

func doStep(ctx context.Context, o Options, r *Record, name string) error {
	in := o.Instance
	switch name {
	case StepPoint:
		if r.Point != "" {
			return nil
		}
		reason := fmt.Sprintf("before upgrade %s (PostgreSQL %d -> %d)", r.ID, r.From, r.To)
		// A run killed after the point was stored but before it was recorded here left one:
		// use it rather than take a second.
		if id, set := findPoint(o.Catalog, reason); id != "" {
			r.Point, r.PointSet = id, set
			return nil
		}
		id, set, err := o.CreatePoint(ctx, reason)
		if err != nil {
			return fmt.Errorf("taking the rollback point: %w", err)
		}
		r.Point, r.PointSet = id, set
		return nil
	case StepAppStop:
		if err := hook(ctx, in.App.Stop, "stop"); err != nil {
			return err
		}
		t := o.now()
		r.AppStop = &t
		return nil
	case StepCountBlue:
		rows, err := countRows(ctx, in)
		if err != nil {
			return fmt.Errorf("counting blue's rows: %w", err)
		}
		r.BlueRows = map[string]map[string]int64{dbName(in): rows}
		return nil
	case StepStopBlue:
		return r.Blue.Stop(ctx)
	case StepPGUpgrade:
		return runPGUpgrade(ctx, o, r)
	case StepSwitchPort:
		return switchPort(r)
	case StepStartGreen:
		if err := r.Green.Start(ctx); err != nil {
			return err
		}
		return r.Green.WaitReady(ctx, 2*time.Minute)
	case StepExtensions:
		return updateExtensions(ctx, o, r)
	case StepAnalyze:
		return analyze(ctx, in, r)
	case StepCountGreen:
		rows, err := countRows(ctx, in)
		if err != nil {
			return fmt.Errorf("counting green's rows: %w", err)
		}
		return compareRows(r.BlueRows[dbName(in)], rows)
	case StepAppStart:
		if err := hook(ctx, in.App.Start, "start"); err != nil {
			return err
		}
		t := o.now()
		r.AppStart = &t
		return nil
	case StepHealth:
		return health(ctx, in.App.URL, o.healthTimeout())
	}
	return fmt.Errorf("unknown step %q", name)
}

func (o *Options) healthTimeout() time.Duration {
	if o.HealthTimeout > 0 {
		return o.HealthTimeout
	}
	return 2 * time.Minute
}

func dbName(in *config.Instance) string {
	return pg.Conn{DSN: in.Database}.Database()
}

// hook runs an app hook with sh -c.
func hook(ctx context.Context, command, what string) error {
	if strings.TrimSpace(command) == "" {
		return fmt.Errorf("no app %s hook: set [instances.NAME.app] %s", what, what)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(hctx, "sh", "-c", command).CombinedOutput()
	if err != nil {
		return fmt.Errorf("app %s hook %q: %w: %s", what, command, err, strings.TrimSpace(lastN(string(out), 300)))
	}
	return nil
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// health waits until URL/api/system/ping answers 2xx.
func health(ctx context.Context, base string, timeout time.Duration) error {
	if base == "" {
		return nil
	}
	u := strings.TrimRight(base, "/") + "/api/system/ping"
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 5 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("health URL %s: %w", u, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("app health %s not ok after %s: %s", u, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// countRows returns the exact row count of every table of the instance's database.
func countRows(ctx context.Context, in *config.Instance) (map[string]int64, error) {
	conn, err := adminConn(in).WithDatabase(dbName(in)).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	tables, err := pg.Tables(ctx, conn)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, t := range tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t.Qualified()).Scan(&n); err != nil {
			return nil, fmt.Errorf("counting %s: %w", t.Key(), err)
		}
		out[t.Key()] = n
	}
	return out, nil
}

func compareRows(blue, green map[string]int64) error {
	var diff []string
	for k, n := range blue {
		if g, ok := green[k]; !ok {
			diff = append(diff, k+" missing")
		} else if g != n {
			diff = append(diff, fmt.Sprintf("%s %d != %d", k, g, n))
		}
	}
	for k := range green {
		if _, ok := blue[k]; !ok {
			diff = append(diff, k+" is new")
		}
	}
	if len(diff) > 0 {
		if len(diff) > 5 {
			diff = append(diff[:5], fmt.Sprintf("and %d more", len(diff)-5))
		}
		return fmt.Errorf("row counts differ from blue's: %s", strings.Join(diff, "; "))
	}
	return nil
}

func adminConn(in *config.Instance) pg.Conn {
	if in.AdminDatabase != "" {
		return pg.Conn{DSN: in.AdminDatabase, PasswordFile: in.AdminPasswordFile}
	}
	return pg.Conn{DSN: in.Database, PasswordFile: in.DatabasePasswordFile}
}

// databases lists the cluster's connectable databases.
func databases(ctx context.Context, in *config.Instance) ([]string, error) {
	conn, err := adminConn(in).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// updateExtensions runs ALTER EXTENSION … UPDATE where the new major ships a newer version.
func updateExtensions(ctx context.Context, o Options, r *Record) error {
	dbs, err := databases(ctx, o.Instance)
	if err != nil {
		return err
	}
	for _, db := range dbs {
		conn, err := adminConn(o.Instance).WithDatabase(db).Connect(ctx)
		if err != nil {
			return err
		}
		rows, err := conn.Query(ctx, `SELECT e.extname, e.extversion, a.default_version FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname WHERE a.default_version IS DISTINCT FROM e.extversion ORDER BY 1`)
		if err != nil {
			conn.Close(ctx)
			return fmt.Errorf("listing extensions of %s: %w", db, err)
		}
		type ext struct{ name, have, want string }
		var todo []ext
		for rows.Next() {
			var e ext
			if err := rows.Scan(&e.name, &e.have, &e.want); err != nil {
				rows.Close()
				conn.Close(ctx)
				return err
			}
			todo = append(todo, e)
		}
		rows.Close()
		for _, e := range todo {
			if _, err := conn.Exec(ctx, "ALTER EXTENSION "+pg.QuoteIdent(e.name)+" UPDATE"); err != nil {
				conn.Close(ctx)
				return fmt.Errorf("ALTER EXTENSION %s UPDATE in %s: %w", e.name, db, err)
			}
			o.say("  %s: extension %s %s -> %s", db, e.name, e.have, e.want)
		}
		conn.Close(ctx)
	}
	return nil
}

// analyze runs the new major's vacuumdb --all --analyze-in-stages.
func analyze(ctx context.Context, in *config.Instance, r *Record) error {
	c := adminConn(in)
	tool, cleanup, err := pg.ToolIn(r.Green.BinDir, "vacuumdb", r.To, c, os.TempDir())
	defer cleanup()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, tool.Path, "--all", "--analyze-in-stages", "--maintenance-db="+c.DSN, "--quiet")
	cmd.Env = append(os.Environ(), tool.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vacuumdb --analyze-in-stages: %w: %s", err, lastN(strings.TrimSpace(string(out)), 400))
	}
	return nil
}

// errLinkRollback is returned when a link-mode blue can no longer be started.
var errLinkRollback = errors.New("blue was upgraded with --link and green has started, so blue's data directory is no longer usable")

// PointsBucket is the catalogue bucket of rollback points (owned by lifecycle/point).
const PointsBucket = "points"

// findPoint returns the rollback point taken with reason, if any.
func findPoint(cat *catalog.Catalog, reason string) (id, set string) {
	_ = cat.ListJSON(PointsBucket, func(key string, raw []byte) error {
		var p struct {
			ID     string `json:"id"`
			Set    string `json:"set"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(raw, &p) == nil && p.Reason == reason && p.Set != "" {
			id, set = key, p.Set
		}
		return nil
	})
	return id, set
}
