package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/metrics"
	"github.com/dhis2-life/dhis2-life/internal/notify"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui"
)

// Metric names (contract).
const (
	MetricLastSuccess    = "dhis2_life_job_last_success_timestamp_seconds"
	MetricDuration       = "dhis2_life_job_duration_seconds"
	MetricFailures       = "dhis2_life_job_failures_total"
	MetricSnapshotBytes  = "dhis2_life_snapshot_bytes"
	MetricSnapshotAdded  = "dhis2_life_snapshot_added_bytes"
	MetricDrillOK        = "dhis2_life_drill_ok"
	MetricDrillRestore   = "dhis2_life_drill_restore_seconds"
	MetricClones         = "dhis2_life_clones"
	MetricSnapshotTime   = "dhis2_life_snapshot_timestamp_seconds"
	MetricRepositoryUp   = "dhis2_life_repository_up"
	MetricRepositorySize = "dhis2_life_repository_bytes"
	MetricStatusOK       = "dhis2_life_status_ok"
	TextfileName         = "dhis2_life.prom"
	notifyStateFileName  = "notify-state.json"
	defaultCatchUpReason = "missed run (last success older than the schedule's period)"
)

// Options configure a Daemon.
type Options struct {
	// ConfigPath is (re)loaded at start and on Reload.
	ConfigPath string
	Log        *slog.Logger
	// Producer returns the dump producer argv of an instance (see snapshot.Options.Producer).
	Producer    func(cfg *config.Config, instance string) []string
	ToolVersion string
	// Jobs overrides the job implementations (tests); nil = BuiltinJobs.
	Jobs map[string]JobFunc
	// NoListen skips the metrics listener (schedule run).
	NoListen bool
	// Notifiers adjusts the notifiers built from the config (tests: trust a local TLS CA).
	Notifiers func([]notify.Notifier)
}

// Daemon schedules and runs jobs. Create it with New, then Run it.
type Daemon struct {
	o     Options
	log   *slog.Logger
	reg   *metrics.Registry
	jobs  map[string]JobFunc
	store *Store
	ln    net.Listener
	srv   *http.Server

	mu      sync.Mutex
	cfg     *config.Config
	app     *app.App
	disp    *notify.Dispatcher
	cron    *cron.Cron
	workers map[string]*worker
	stopped bool

	jobCtx     context.Context
	cancelJobs context.CancelFunc
	wg         sync.WaitGroup
	textMu     sync.Mutex
}

type worker struct {
	name    string
	ch      chan string
	mu      sync.Mutex
	queued  map[string]bool
	running string
	closed  bool
}

// stop closes the worker's queue; queued jobs that have not started are dropped.
func (w *worker) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
}

// New loads the configuration, checks the schedules and notifiers and binds the metrics
// listener: every configuration mistake is reported here, before anything runs.
func New(o Options) (*Daemon, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d := &Daemon{o: o, log: o.Log, reg: metrics.NewRegistry(), jobs: o.Jobs, workers: map[string]*worker{}}
	if d.jobs == nil {
		d.jobs = BuiltinJobs()
	}
	defineMetrics(d.reg)
	cfg, a, disp, c, err := d.build()
	if err != nil {
		return nil, err
	}
	d.cfg, d.app, d.disp, d.cron = cfg, a, disp, c
	d.store = &Store{Path: catalog.Path(cfg.StateDir)}
	d.jobCtx, d.cancelJobs = context.WithCancel(context.Background())
	if cfg.Daemon.TextfileDir != "" {
		if st, err := os.Stat(cfg.Daemon.TextfileDir); err != nil || !st.IsDir() {
			disp.Close(context.Background())
			return nil, &config.Error{File: cfg.Path, Line: cfg.LineOf("daemon.textfile_dir"), Key: "daemon.textfile_dir",
				Msg: fmt.Sprintf("%s is not a directory", cfg.Daemon.TextfileDir), Fix: "create it or point it at node_exporter's --collector.textfile.directory"}
		}
	}
	if cfg.Daemon.MetricsListen != "" && !o.NoListen {
		ln, err := net.Listen("tcp", cfg.Daemon.MetricsListen)
		if err != nil {
			disp.Close(context.Background())
			return nil, fmt.Errorf("daemon.metrics_listen %s: cannot listen: %w (is another dhis2-life daemon or exporter using the port? change daemon.metrics_listen)",
				cfg.Daemon.MetricsListen, errors.Unwrap(err))
		}
		d.ln = ln
	}
	return d, nil
}

// build loads the configuration and everything derived from it, without side effects.
func (d *Daemon) build() (*config.Config, *app.App, *notify.Dispatcher, *cron.Cron, error) {
	cfg, err := config.Load(d.o.ConfigPath)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	a, err := app.New(cfg, d.log)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ns, secrets, err := notify.FromConfig(cfg.Notify)
	if err != nil {
		return nil, nil, nil, nil, &config.Error{File: cfg.Path, Key: "notify", Msg: err.Error(), Fix: "fix the notifier's secret file"}
	}
	if d.o.Notifiers != nil {
		d.o.Notifiers(ns)
	}
	c := cron.New(cron.WithLocation(time.Local), cron.WithLogger(cron.DiscardLogger))
	for _, job := range Jobs {
		spec := ScheduleOf(cfg, job)
		if spec == "" {
			continue
		}
		if _, ok := d.jobs[job]; !ok {
			d.log.Warn("job is scheduled but not available in this build; not scheduled", "job", job, "schedule", spec)
			continue
		}
		job := job
		if _, err := c.AddFunc(spec, func() {
			for _, name := range cfg.InstanceNames() {
				d.Trigger(name, job, "schedule "+spec)
			}
		}); err != nil {
			return nil, nil, nil, nil, &config.Error{File: cfg.Path, Line: cfg.LineOf("schedule." + job), Key: "schedule." + job,
				Msg: fmt.Sprintf("invalid schedule %q: %v", spec, err), Fix: `use 5 cron fields ("0 2 * * *") or a descriptor ("@daily", "@every 6h")`}
		}
	}
	secrets = append(secrets, envSecrets(a.Env)...)
	if b, err := os.ReadFile(cfg.Repository.PasswordFile); err == nil {
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	host, _ := os.Hostname()
	disp := notify.New(notify.Options{Notifiers: ns, Log: d.log, Interval: cfg.Notify.Interval.Duration,
		Retries: cfg.Notify.Retries, Backoff: cfg.Notify.RetryBackoff.Duration, Timeout: cfg.Notify.Timeout.Duration,
		Secrets: secrets, StatePath: filepath.Join(cfg.StateDir, notifyStateFileName), Host: host})
	return cfg, a, disp, c, nil
}

func envSecrets(env []string) []string {
	var out []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		k = strings.ToUpper(k)
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || strings.Contains(k, "TOKEN") || strings.Contains(k, "KEY") {
			out = append(out, v)
		}
	}
	return out
}

func defineMetrics(r *metrics.Registry) {
	r.Define(MetricLastSuccess, metrics.Gauge, "Unix time of the last successful run of a job.", "instance", "job")
	r.Define(MetricDuration, metrics.Gauge, "Duration of the last run of a job in seconds.", "instance", "job")
	r.Define(MetricFailures, metrics.Counter, "Failed runs of a job since the daemon started.", "instance", "job")
	r.Define(MetricSnapshotBytes, metrics.Gauge, "Bytes read by the newest snapshot set (database stream and files).", "instance")
	r.Define(MetricSnapshotAdded, metrics.Gauge, "Bytes the newest snapshot set added to the repository (after deduplication).", "instance")
	r.Define(MetricDrillOK, metrics.Gauge, "1 when the newest restore drill passed every check, 0 when it failed.", "instance")
	r.Define(MetricDrillRestore, metrics.Gauge, "Restore time of the newest drill in seconds (measured RTO).", "instance")
	r.Define(MetricClones, metrics.Gauge, "Clones of the instance recorded in the catalogue.", "instance")
	r.Define(MetricSnapshotTime, metrics.Gauge, "Unix time of the newest snapshot set.", "instance")
	r.Define(MetricRepositoryUp, metrics.Gauge, "1 when the last job reached the repository, 0 when it could not.", "instance")
	r.Define(MetricRepositorySize, metrics.Gauge, "Stored size of the repository in bytes, as measured after the last snapshot.", "instance")
	r.Define(MetricStatusOK, metrics.Gauge, "1 when the instance is within its rpo and drill_max_age limits.", "instance")
	defineWALMetrics(r)
}

// Metrics returns the daemon's registry.
func (d *Daemon) Metrics() *metrics.Registry { return d.reg }

// Addr returns the metrics listener's address ("" when none).
func (d *Daemon) Addr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

// Config returns the configuration in effect.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Run serves metrics, catches up missed runs, runs the schedules and reloads on hup until
// ctx ends; then it stops scheduling, lets the running jobs finish for daemon.stop_timeout,
// cancels them if they do not, and records their outcome.
func (d *Daemon) Run(ctx context.Context, hup <-chan os.Signal) error {
	d.log.Info("daemon starting", "config", d.o.ConfigPath, "metrics", d.Addr(), "instances", d.cfg.InstanceNames())
	if d.ln != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.reg.Handler())
		mux.HandleFunc("/status", d.serveStatus)
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := d.srv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	d.refreshAll(ctx)
	d.mu.Lock()
	for _, name := range d.cfg.InstanceNames() {
		d.workerLocked(name)
	}
	d.mu.Unlock()
	d.catchUp(ctx)
	d.mu.Lock()
	d.cron.Start()
	d.mu.Unlock()
	check := time.NewTicker(d.cfg.Daemon.CheckInterval.Duration)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-hup:
			if err := d.Reload(); err != nil {
				d.log.Error("configuration reload failed; keeping the previous configuration", "err", err)
			}
		case <-check.C:
			d.checkLimits(ctx)
		}
	}
}

// Reload re-reads the configuration; on any error the running configuration stays.
func (d *Daemon) Reload() error {
	cfg, a, disp, c, err := d.build()
	if err != nil {
		return err
	}
	d.mu.Lock()
	old := d.cfg
	oldCron, oldDisp := d.cron, d.disp
	d.cfg, d.app, d.disp, d.cron = cfg, a, disp, c
	for _, name := range cfg.InstanceNames() {
		d.workerLocked(name)
	}
	for name, w := range d.workers {
		if _, ok := cfg.Instances[name]; !ok {
			w.stop()
			delete(d.workers, name)
			d.reg.Delete(metrics.Labels{"instance": name})
		}
	}
	d.cron.Start()
	d.mu.Unlock()
	oldCron.Stop()
	go oldDisp.Close(context.Background())
	if old.Daemon.MetricsListen != cfg.Daemon.MetricsListen {
		d.log.Warn("daemon.metrics_listen changed: restart the daemon to use the new address", "listening", d.Addr())
	}
	d.log.Info("configuration reloaded", "config", cfg.Path, "instances", cfg.InstanceNames())
	d.refreshAll(context.Background())
	return nil
}

func (d *Daemon) workerLocked(name string) *worker {
	if w, ok := d.workers[name]; ok {
		return w
	}
	w := &worker{name: name, ch: make(chan string, 32), queued: map[string]bool{}}
	d.workers[name] = w
	d.wg.Add(1)
	go d.work(w)
	return w
}

func (d *Daemon) work(w *worker) {
	defer d.wg.Done()
	for job := range w.ch {
		w.mu.Lock()
		delete(w.queued, job)
		if w.closed {
			w.mu.Unlock()
			d.log.Info("queued job dropped: daemon stopping or instance removed", "instance", w.name, "job", job)
			continue
		}
		w.running = job
		w.mu.Unlock()
		d.RunJob(d.jobCtx, w.name, job)
		w.mu.Lock()
		w.running = ""
		w.mu.Unlock()
	}
}

// Trigger queues a job of an instance. A job already queued or running for the instance is
// not queued twice; with schedule.overlap = "skip" a job is skipped while the instance is busy.
// Both are logged and recorded as skipped runs.
func (d *Daemon) Trigger(instance, job, reason string) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	w, ok := d.workers[instance]
	overlap := d.cfg.Schedule.Overlap
	d.mu.Unlock()
	if !ok {
		d.log.Warn("trigger for an instance that is not configured", "instance", instance, "job", job)
		return
	}
	w.mu.Lock()
	var skip string
	switch {
	case w.closed:
		w.mu.Unlock()
		return
	case w.running == job || w.queued[job]:
		skip = "the previous " + job + " run of this instance is still running or queued"
	case overlap == "skip" && (w.running != "" || len(w.queued) > 0):
		busy := w.running
		if busy == "" {
			busy = "queued jobs"
		}
		skip = "instance busy with " + busy + " and schedule.overlap = \"skip\""
	}
	if skip == "" {
		select {
		case w.ch <- job:
			w.queued[job] = true
		default:
			skip = "job queue full"
		}
	}
	w.mu.Unlock()
	if skip != "" {
		d.log.Warn("job skipped", "instance", instance, "job", job, "reason", skip)
		now := time.Now().UTC()
		_ = d.store.With(context.Background(), func(c *catalog.Catalog) error {
			return c.PutRun(catalog.RunRecord{ID: runID(now, job, instance), Instance: instance, Job: job, Start: now, End: now,
				Outcome: catalog.OutcomeSkipped, Error: skip})
		})
		return
	}
	d.log.Info("job queued", "instance", instance, "job", job, "reason", reason)
}

func runID(t time.Time, job, instance string) string {
	return t.UTC().Format("20060102T150405.000Z") + "-" + job + "-" + instance
}

// RunJob runs one job of one instance now (in the caller's goroutine): it records the run,
// updates the metrics and notifies.
func (d *Daemon) RunJob(ctx context.Context, instance, job string) error {
	d.mu.Lock()
	cfg, a := d.cfg, d.app
	d.mu.Unlock()
	in, ok := cfg.Instances[instance]
	if !ok {
		return fmt.Errorf("unknown instance %q", instance)
	}
	fn, ok := d.jobs[job]
	if !ok {
		if _, err := ParseJob(job); err != nil {
			return err
		}
		return fmt.Errorf("job %s is not available in this build", job)
	}
	start := time.Now().UTC()
	run := catalog.RunRecord{ID: runID(start, job, instance), Instance: instance, Job: job, Start: start, Outcome: catalog.OutcomeRunning}
	if err := d.store.With(ctx, func(c *catalog.Catalog) error { return c.PutRun(run) }); err != nil {
		d.log.Warn("could not record the run start", "instance", instance, "job", job, "err", err)
	}
	d.log.Info("job started", "instance", instance, "job", job)
	var producer []string
	if d.o.Producer != nil {
		producer = d.o.Producer(cfg, instance)
	}
	res, err := fn(ctx, Env{App: a, Instance: in, Store: d.store, Producer: producer, ToolVersion: d.o.ToolVersion})
	if errors.Is(err, restic.ErrUnreachable) {
		// The repository went away after the job's preflight had reached it.
		down := false
		res.RepoReachable = &down
	}
	// A reload during the job closed the dispatcher it started with: report to the current one.
	d.mu.Lock()
	disp := d.disp
	d.mu.Unlock()
	run.End = time.Now().UTC()
	dur := run.End.Sub(start)
	l := metrics.Labels{"instance": instance, "job": job}
	d.reg.Set(MetricDuration, l, dur.Seconds())
	if res.RepoReachable != nil {
		d.reg.Set(MetricRepositoryUp, metrics.Labels{"instance": instance}, b2f(*res.RepoReachable))
	}
	if res.Drill != nil {
		il := metrics.Labels{"instance": instance}
		d.reg.Set(MetricDrillOK, il, b2f(res.Drill.OK))
		d.reg.Set(MetricDrillRestore, il, res.Drill.RestoreSeconds)
	}
	if res.Manifest != nil {
		d.setSnapshotMetrics(instance, res.Manifest)
	}
	run.Bytes = res.Bytes
	switch {
	case err == nil:
		run.Outcome = catalog.OutcomeOK
		d.reg.Set(MetricLastSuccess, l, float64(run.End.Unix()))
		d.reg.Add(MetricFailures, l, 0)
		d.log.Info("job finished", "instance", instance, "job", job, "took", dur.Round(time.Millisecond), "added", ui.Bytes(res.Bytes))
		disp.Success(instance, job)
	case errors.Is(err, ErrSkip):
		run.Outcome, run.Error = catalog.OutcomeSkipped, err.Error()
		d.log.Info("job skipped", "instance", instance, "job", job, "reason", err.Error())
	case ctx.Err() != nil:
		run.Outcome, run.Error = catalog.OutcomeFailed, "interrupted by daemon shutdown: "+err.Error()
		d.reg.Add(MetricFailures, l, 1)
		d.log.Warn("job interrupted by shutdown", "instance", instance, "job", job, "err", err)
	default:
		run.Outcome, run.Error = catalog.OutcomeFailed, disp.Redact(err.Error())
		d.reg.Add(MetricFailures, l, 1)
		d.log.Error("job failed", "instance", instance, "job", job, "took", dur.Round(time.Millisecond), "err", run.Error)
		disp.Failure(instance, job, fmt.Sprintf("%s of instance %s failed after %s: %s", job, instance, dur.Round(time.Second), err))
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if rerr := d.store.With(rctx, func(c *catalog.Catalog) error { return c.PutRun(run) }); rerr != nil {
		d.log.Error("could not record the run", "instance", instance, "job", job, "err", rerr)
	}
	d.refresh(rctx, instance)
	d.writeTextfile()
	return err
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (d *Daemon) setSnapshotMetrics(instance string, m *manifest.Manifest) {
	il := metrics.Labels{"instance": instance}
	d.reg.Set(MetricSnapshotBytes, il, float64(m.TotalBytes()))
	d.reg.Set(MetricSnapshotAdded, il, float64(m.AddedBytes()))
	d.reg.Set(MetricSnapshotTime, il, float64(m.Time.Unix()))
}

// refresh sets the catalogue-derived metrics of an instance (after restarts too).
func (d *Daemon) refresh(ctx context.Context, instance string) *Report {
	cfg := d.Config()
	var rep *Report
	err := d.store.With(ctx, func(c *catalog.Catalog) error {
		r, err := Status(cfg, c, time.Now())
		rep = r
		if err != nil {
			return err
		}
		// Last successes survive restarts through the run records.
		runs, err := c.Runs(instance, "", time.Time{})
		if err != nil {
			return err
		}
		last := map[string]time.Time{} // newest successful end per job
		for _, r := range runs {
			if r.Outcome == catalog.OutcomeOK && r.End.After(last[r.Job]) {
				last[r.Job] = r.End
			}
		}
		for job, end := range last {
			l := metrics.Labels{"instance": instance, "job": job}
			if v, ok := d.reg.Get(MetricLastSuccess, l); !ok || v < float64(end.Unix()) {
				d.reg.Set(MetricLastSuccess, l, float64(end.Unix()))
			}
		}
		return nil
	})
	if err != nil {
		d.log.Warn("could not read the catalogue for metrics", "instance", instance, "err", err)
		return nil
	}
	d.refreshWAL(ctx, instance)
	st := rep.Instances[instance]
	if st == nil {
		return rep
	}
	il := metrics.Labels{"instance": instance}
	if s := st.LastSnapshot; s != nil {
		d.reg.Set(MetricSnapshotBytes, il, float64(s.Bytes))
		d.reg.Set(MetricSnapshotAdded, il, float64(s.AddedBytes))
		d.reg.Set(MetricSnapshotTime, il, float64(s.Time.Unix()))
		l := metrics.Labels{"instance": instance, "job": JobSnapshot}
		if v, ok := d.reg.Get(MetricLastSuccess, l); !ok || v < float64(s.Time.Unix()) {
			d.reg.Set(MetricLastSuccess, l, float64(s.Time.Unix()))
		}
	}
	if dr := st.LastDrill; dr != nil {
		d.reg.Set(MetricDrillOK, il, b2f(dr.OK))
		d.reg.Set(MetricDrillRestore, il, dr.RestoreSeconds)
	}
	d.reg.Set(MetricClones, il, float64(len(st.Clones)))
	if st.Repository != nil {
		d.reg.Set(MetricRepositorySize, il, float64(st.Repository.Bytes))
	}
	d.reg.Set(MetricStatusOK, il, b2f(st.OK))
	for _, job := range Jobs {
		if _, ok := d.jobs[job]; ok && ScheduleOf(cfg, job) != "" {
			d.reg.Add(MetricFailures, metrics.Labels{"instance": instance, "job": job}, 0)
		}
	}
	return rep
}

func (d *Daemon) refreshAll(ctx context.Context) {
	for _, name := range d.Config().InstanceNames() {
		d.refresh(ctx, name)
	}
	d.writeTextfile()
}

func (d *Daemon) writeTextfile() {
	dir := d.Config().Daemon.TextfileDir
	if dir == "" {
		return
	}
	d.textMu.Lock()
	defer d.textMu.Unlock()
	if err := d.reg.WriteTextfile(dir, TextfileName); err != nil {
		d.log.Error("could not write the metrics textfile", "err", err)
	}
}

// catchUp queues, once, every scheduled job whose last success is older than its period.
func (d *Daemon) catchUp(ctx context.Context) {
	cfg := d.Config()
	now := time.Now()
	last := map[string]time.Time{} // instance/job -> last success
	err := d.store.With(ctx, func(c *catalog.Catalog) error {
		runs, err := c.Runs("", "", time.Time{})
		if err != nil {
			return err
		}
		for _, r := range runs {
			if r.Outcome == catalog.OutcomeOK && r.End.After(last[r.Instance+"/"+r.Job]) {
				last[r.Instance+"/"+r.Job] = r.End
			}
		}
		snaps, err := c.Snapshots("")
		if err != nil {
			return err
		}
		for _, s := range snaps {
			if k := s.Instance + "/" + JobSnapshot; s.Time.After(last[k]) {
				last[k] = s.Time
			}
		}
		drills, err := c.Drills("")
		for _, dr := range drills {
			if k := dr.Instance + "/" + JobVerify; dr.OK && dr.End.After(last[k]) {
				last[k] = dr.End
			}
		}
		return err
	})
	if err != nil {
		d.log.Error("missed-run catch-up: cannot read the catalogue", "err", err)
		return
	}
	for _, name := range cfg.InstanceNames() {
		for _, job := range Jobs {
			spec := ScheduleOf(cfg, job)
			if _, ok := d.jobs[job]; spec == "" || !ok {
				continue
			}
			s, err := cron.ParseStandard(spec)
			if err != nil {
				continue
			}
			period := Period(s, now)
			l, ok := last[name+"/"+job]
			if !ok || now.Sub(l) > period {
				reason := defaultCatchUpReason
				if !ok {
					reason = "never succeeded"
				}
				d.Trigger(name, job, "catch-up: "+reason)
			}
		}
	}
}

// checkLimits alerts on exceeded RPO and drill age limits.
func (d *Daemon) checkLimits(ctx context.Context) {
	d.mu.Lock()
	disp := d.disp
	d.mu.Unlock()
	for _, name := range d.Config().InstanceNames() {
		rep := d.refresh(ctx, name)
		if rep == nil || rep.Instances[name] == nil {
			continue
		}
		st := rep.Instances[name]
		if len(st.Problems) > 0 {
			disp.Stale(name, "status", strings.Join(st.Problems, "; "))
		} else {
			disp.Fresh(name, "status")
		}
	}
	d.writeTextfile()
}

func (d *Daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	var rep *Report
	cfg := d.Config()
	err := d.store.With(r.Context(), func(c *catalog.Catalog) error {
		var err error
		rep, err = Status(cfg, c, time.Now())
		return err
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

func (d *Daemon) shutdown() error {
	d.mu.Lock()
	d.stopped = true
	cfg := d.cfg
	cctx := d.cron.Stop()
	for _, w := range d.workers {
		w.stop()
	}
	d.workers = map[string]*worker{}
	d.mu.Unlock()
	<-cctx.Done()
	d.log.Info("daemon stopping: waiting for running jobs", "stop_timeout", cfg.Daemon.StopTimeout.Duration)
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.Daemon.StopTimeout.Duration):
		d.log.Warn("running jobs did not finish within daemon.stop_timeout; cancelling them")
		d.cancelJobs()
		<-done
	}
	d.cancelJobs()
	if d.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.srv.Shutdown(sctx)
		cancel()
	}
	d.mu.Lock()
	disp := d.disp
	d.mu.Unlock()
	nctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := disp.Close(nctx); err != nil {
		d.log.Warn("some notifications were not delivered before exit", "err", err)
	}
	d.writeTextfile()
	d.log.Info("daemon stopped")
	return nil
}

// Close releases what New acquired when Run is not called.
func (d *Daemon) Close() {
	if d.ln != nil && d.srv == nil {
		d.ln.Close()
	}
	d.mu.Lock()
	disp := d.disp
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = disp.Close(ctx)
	d.cancelJobs()
}
