package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
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
	"github.com/dhis2-life/dhis2-life/lifecycle"
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
	// MetricWALLastArchived is the Unix time PostgreSQL last archived a WAL file
	// (pg_stat_archiver) of instances with [instances.NAME.wal].
	MetricWALLastArchived = "dhis2_life_wal_last_archived_timestamp_seconds"
	TextfileName          = "dhis2_life.prom"
	defaultCatchUpReason  = "missed run (last success older than the schedule's period)"
)

// Options configure a Daemon.
type Options struct {
	// ConfigPath is (re)loaded at start and on Reload.
	ConfigPath string
	Log        *slog.Logger
	// ToolVersion goes into the manifests of the snapshot sets.
	ToolVersion string
	// Jobs overrides the job implementations (tests); nil = BuiltinJobs.
	Jobs map[string]JobFunc
	// NoListen skips the metrics listener (schedule run).
	NoListen bool
}

// JobFunc runs one job of one instance; the runner records it, alerts and observes it.
type JobFunc func(r *lifecycle.Runner, ctx context.Context, instance string) (lifecycle.Result, error)

// BuiltinJobs are the jobs this build can run: lifecycle's use cases, as the CLI runs them.
func BuiltinJobs() map[string]JobFunc {
	return map[string]JobFunc{
		lifecycle.JobSnapshot: func(r *lifecycle.Runner, ctx context.Context, in string) (lifecycle.Result, error) {
			return r.SnapshotJob(ctx, in, nil)
		},
		lifecycle.JobVerify:       (*lifecycle.Runner).VerifyLatest,
		lifecycle.JobRetention:    (*lifecycle.Runner).RetentionJob,
		lifecycle.JobCloneTTL:     (*lifecycle.Runner).CloneTTLJob,
		lifecycle.JobCloneRefresh: (*lifecycle.Runner).CloneRefreshJob,
		lifecycle.JobBaseBackup:   (*lifecycle.Runner).BaseBackupJob,
	}
}

// Daemon schedules and runs jobs. Create it with New, then Run it.
type Daemon struct {
	o    Options
	log  *slog.Logger
	reg  *metrics.Registry
	jobs map[string]JobFunc
	self string
	ln   net.Listener
	srv  *http.Server

	mu      sync.Mutex
	cfg     *config.Config
	runner  *lifecycle.Runner
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
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable for the dump producer: %w", err)
	}
	d.self = self
	cfg, runner, disp, c, err := d.build()
	if err != nil {
		return nil, err
	}
	d.cfg, d.runner, d.disp, d.cron = cfg, runner, disp, c
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
func (d *Daemon) build() (*config.Config, *lifecycle.Runner, *notify.Dispatcher, *cron.Cron, error) {
	cfg, err := config.Load(d.o.ConfigPath)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	a, err := app.New(cfg, d.log)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	// Each transaction waits up to 2 minutes for a CLI command holding the catalogue.
	cat, err := catalog.OpenWait(catalog.Path(cfg.StateDir), 2*time.Minute)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	disp, err := lifecycle.NewDispatcher(a, nil)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c := cron.New(cron.WithLocation(time.Local), cron.WithLogger(cron.DiscardLogger))
	for _, job := range lifecycle.Jobs {
		spec := lifecycle.ScheduleOf(cfg, job)
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
			disp.Close(context.Background())
			return nil, nil, nil, nil, &config.Error{File: cfg.Path, Line: cfg.LineOf("schedule." + job), Key: "schedule." + job,
				Msg: fmt.Sprintf("invalid schedule %q: %v", spec, err), Fix: `use 5 cron fields ("0 2 * * *") or a descriptor ("@daily", "@every 6h")`}
		}
	}
	r := &lifecycle.Runner{App: a, Catalog: cat, Alerts: d.dispatcher, Observe: d.observe, Self: d.self,
		ToolVersion: d.o.ToolVersion, Interrupted: "daemon shutdown"}
	return cfg, r, disp, c, nil
}

// dispatcher is the current alert dispatcher: a reload during a job closes the one it
// started with, so runs report to the current one.
func (d *Daemon) dispatcher() *notify.Dispatcher {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.disp
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
	r.Define(MetricRepositorySize, metrics.Gauge, "Stored size of the repository in bytes, as measured when the last snapshot began plus what it added.", "instance")
	r.Define(MetricStatusOK, metrics.Gauge, "1 when the instance is within its rpo and drill_max_age limits.", "instance")
	r.Define(MetricWALLastArchived, metrics.Gauge, "Unix time of the last WAL file archived by PostgreSQL (pg_stat_archiver), for instances with WAL archiving.", "instance")
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

// catalog is the catalogue of the configuration in effect.
func (d *Daemon) catalog() *catalog.Catalog {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runner.Catalog
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
	cfg, runner, disp, c, err := d.build()
	if err != nil {
		return err
	}
	d.mu.Lock()
	old := d.cfg
	oldCron, oldDisp := d.cron, d.disp
	d.cfg, d.runner, d.disp, d.cron = cfg, runner, disp, c
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
		d.mu.Lock()
		r := d.runner
		d.mu.Unlock()
		if err := r.Record(context.Background(), catalog.RunRecord{ID: lifecycle.RunID(now, job, instance), Instance: instance, Job: job,
			Start: now, End: now, Outcome: catalog.OutcomeSkipped, Error: skip}); err != nil {
			d.log.Warn("skipped run not recorded", "instance", instance, "job", job, "err", err)
		}
		return
	}
	d.log.Info("job queued", "instance", instance, "job", job, "reason", reason)
}

// RunJob runs one job of one instance now (in the caller's goroutine) through the same
// lifecycle.Runner as the CLI: it records the run and alerts; observe sets the metrics.
func (d *Daemon) RunJob(ctx context.Context, instance, job string) error {
	d.mu.Lock()
	cfg, r := d.cfg, d.runner
	d.mu.Unlock()
	if _, ok := cfg.Instances[instance]; !ok {
		return fmt.Errorf("unknown instance %q", instance)
	}
	fn, ok := d.jobs[job]
	if !ok {
		if _, err := lifecycle.ParseJob(job); err != nil {
			return err
		}
		return fmt.Errorf("job %s is not available in this build", job)
	}
	_, err := r.Run(ctx, instance, job, func(ctx context.Context) (lifecycle.Result, error) { return fn(r, ctx, instance) })
	return err
}

// observe sets the metrics of a finished run and rewrites the textfile.
func (d *Daemon) observe(instance, job string, res lifecycle.Result, err error, took time.Duration) {
	l := metrics.Labels{"instance": instance, "job": job}
	il := metrics.Labels{"instance": instance}
	d.reg.Set(MetricDuration, l, took.Seconds())
	if res.RepoReachable != nil {
		d.reg.Set(MetricRepositoryUp, il, b2f(*res.RepoReachable))
	}
	if res.Drill != nil {
		d.reg.Set(MetricDrillOK, il, b2f(res.Drill.OK))
		d.reg.Set(MetricDrillRestore, il, res.Drill.RestoreSeconds)
	}
	if res.Manifest != nil {
		d.setSnapshotMetrics(instance, res.Manifest)
	}
	switch {
	case err == nil:
		d.reg.Set(MetricLastSuccess, l, float64(time.Now().Unix()))
		d.reg.Add(MetricFailures, l, 0)
	case errors.Is(err, lifecycle.ErrSkip):
	default:
		d.reg.Add(MetricFailures, l, 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d.refresh(ctx, instance)
	d.writeTextfile()
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
func (d *Daemon) refresh(ctx context.Context, instance string) *lifecycle.Report {
	cfg := d.Config()
	var rep *lifecycle.Report
	err := func(c *catalog.Catalog) error {
		r, err := lifecycle.Status(cfg, c, time.Now())
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
	}(d.catalog())
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
		l := metrics.Labels{"instance": instance, "job": lifecycle.JobSnapshot}
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
	for _, job := range lifecycle.Jobs {
		if _, ok := d.jobs[job]; ok && lifecycle.ScheduleOf(cfg, job) != "" {
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
	err := func(c *catalog.Catalog) error {
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
			if k := s.Instance + "/" + lifecycle.JobSnapshot; s.Time.After(last[k]) {
				last[k] = s.Time
			}
		}
		drills, err := c.Drills("")
		for _, dr := range drills {
			if k := dr.Instance + "/" + lifecycle.JobVerify; dr.OK && dr.End.After(last[k]) {
				last[k] = dr.End
			}
		}
		return err
	}(d.catalog())
	if err != nil {
		d.log.Error("missed-run catch-up: cannot read the catalogue", "err", err)
		return
	}
	for _, name := range cfg.InstanceNames() {
		for _, job := range lifecycle.Jobs {
			spec := lifecycle.ScheduleOf(cfg, job)
			if _, ok := d.jobs[job]; spec == "" || !ok {
				continue
			}
			s, err := cron.ParseStandard(spec)
			if err != nil {
				continue
			}
			period := lifecycle.Period(s, now)
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
	var rep *lifecycle.Report
	cfg := d.Config()
	err := func(c *catalog.Catalog) error {
		var err error
		rep, err = lifecycle.Status(cfg, c, time.Now())
		return err
	}(d.catalog())
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
