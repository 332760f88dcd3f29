package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/notify"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/ui"
)

// NotifyStateFile keeps the open alert problems in state_dir (shared by the CLI and the daemon).
const NotifyStateFile = "notify-state.json"

// Runner runs the jobs of one configuration. The CLI makes one per command and the daemon
// one per configuration it loads, so a job records, alerts and locks the same way whoever
// starts it.
type Runner struct {
	App     *app.App
	Catalog *catalog.Catalog
	// Alerts returns the dispatcher alerts go to (nil: none). It is a function because the
	// daemon replaces its dispatcher on reload while a job runs.
	Alerts func() *notify.Dispatcher
	// Observe, when set, sees every finished run (the daemon's metrics) before its record is
	// written.
	Observe func(instance, job string, res Result, err error, took time.Duration)
	// Self is this executable: the dump producer runs it.
	Self        string
	ToolVersion string
	// Interrupted names what cancels a job, for its run record (default "interrupt").
	Interrupted string
}

// NewRunner opens a's catalogue and its [notify] dispatcher; Close flushes the alerts.
func NewRunner(a *app.App, toolVersion string) (*Runner, error) {
	cat, err := a.Catalog()
	if err != nil {
		return nil, err
	}
	// A broken [notify] stops the daemon at start; a command still runs, without alerts.
	disp, err := NewDispatcher(a, nil)
	if err != nil {
		a.Log.Warn("alerts are off for this command", "err", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable for the dump producer: %w", err)
	}
	return &Runner{App: a, Catalog: cat, Alerts: func() *notify.Dispatcher { return disp }, Self: self, ToolVersion: toolVersion}, nil
}

// Close delivers the alerts still queued (bounded by 30 seconds).
func (r *Runner) Close() error {
	disp := r.alerts()
	if disp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return disp.Close(ctx)
}

// NewDispatcher builds the alert dispatcher of a's [notify]; adjust (tests) may change the
// notifiers. Every secret the configuration names is redacted from messages.
func NewDispatcher(a *app.App, adjust func([]notify.Notifier)) (*notify.Dispatcher, error) {
	cfg := a.Config
	ns, secrets, err := notify.FromConfig(cfg.Notify)
	if err != nil {
		return nil, &config.Error{File: cfg.Path, Key: "notify", Msg: err.Error(), Fix: "fix the notifier's secret file"}
	}
	if adjust != nil {
		adjust(ns)
	}
	for _, kv := range a.Env {
		k, v, _ := strings.Cut(kv, "=")
		k = strings.ToUpper(k)
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || strings.Contains(k, "TOKEN") || strings.Contains(k, "KEY") {
			secrets = append(secrets, v)
		}
	}
	if b, err := os.ReadFile(cfg.Repository.PasswordFile); err == nil {
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	host, _ := os.Hostname()
	return notify.New(notify.Options{Notifiers: ns, Log: a.Log, Interval: cfg.Notify.Interval.Duration,
		Retries: cfg.Notify.Retries, Backoff: cfg.Notify.RetryBackoff.Duration, Timeout: cfg.Notify.Timeout.Duration,
		Secrets: secrets, StatePath: filepath.Join(cfg.StateDir, NotifyStateFile), Host: host}), nil
}

func (r *Runner) log() *slog.Logger { return r.App.Log }

func (r *Runner) alerts() *notify.Dispatcher {
	if r.Alerts == nil {
		return nil
	}
	return r.Alerts()
}

// RunID is a run record's ID.
func RunID(t time.Time, job, instance string) string {
	// Nanoseconds: two runs of one job started in the same millisecond (a job failing fast
	// twice) must not share an ID, or the second record replaces the first.
	return t.UTC().Format("20060102T150405.000000000Z") + "-" + job + "-" + instance
}

// Record stores a run record; a failure to record is logged and returned.
func (r *Runner) Record(ctx context.Context, run catalog.RunRecord) error {
	err := r.Catalog.PutRun(run)
	if err != nil {
		r.log().Error("could not record the run", "instance", run.Instance, "job", run.Job, "outcome", run.Outcome, "err", err)
	}
	return err
}

// Run runs fn as one job of an instance: it records the run (running, then its outcome),
// alerts on failure and on recovery, logs, and hands the outcome to Observe.
func (r *Runner) Run(ctx context.Context, instance, job string, fn func(context.Context) (Result, error)) (Result, error) {
	start := time.Now().UTC()
	run := catalog.RunRecord{ID: RunID(start, job, instance), Instance: instance, Job: job, Start: start, Outcome: catalog.OutcomeRunning}
	if err := r.Record(ctx, run); err != nil {
		return Result{}, fmt.Errorf("recording the start of %s: %w", job, err)
	}
	r.log().Info("job started", "instance", instance, "job", job)
	res, err := fn(ctx)
	if errors.Is(err, restic.ErrUnreachable) {
		// The repository went away after the job's preflight had reached it.
		down := false
		res.RepoReachable = &down
	}
	run.End = time.Now().UTC()
	dur := run.End.Sub(start)
	run.Bytes = res.Bytes
	disp := r.alerts()
	redact := func(s string) string { return s }
	if disp != nil {
		redact = disp.Redact
	}
	switch {
	case err == nil:
		run.Outcome = catalog.OutcomeOK
		r.log().Info("job finished", "instance", instance, "job", job, "took", dur.Round(time.Millisecond), "added", ui.Bytes(res.Bytes))
		if disp != nil {
			disp.Success(instance, job)
		}
	case errors.Is(err, ErrSkip):
		run.Outcome, run.Error = catalog.OutcomeSkipped, err.Error()
		r.log().Info("job skipped", "instance", instance, "job", job, "reason", err.Error())
	case ctx.Err() != nil:
		by := r.Interrupted
		if by == "" {
			by = "interrupt"
		}
		run.Outcome, run.Error = catalog.OutcomeFailed, "interrupted by "+by+": "+redact(err.Error())
		r.log().Warn("job interrupted", "instance", instance, "job", job, "by", by, "err", err)
	default:
		run.Outcome, run.Error = catalog.OutcomeFailed, redact(err.Error())
		r.log().Error("job failed", "instance", instance, "job", job, "took", dur.Round(time.Millisecond), "err", run.Error)
		if disp != nil {
			disp.Failure(instance, job, fmt.Sprintf("%s of instance %s failed after %s: %s", job, instance, dur.Round(time.Second), err))
		}
	}
	if r.Observe != nil {
		r.Observe(instance, job, res, err, dur)
	}
	rerr := r.Record(context.WithoutCancel(ctx), run)
	if err == nil && rerr != nil {
		err = fmt.Errorf("%s succeeded but could not be recorded: %w", job, rerr)
	}
	return res, err
}

// preflight checks the repository in bounded time and notes whether it answered.
func (r *Runner) preflight(ctx context.Context, res *Result) error {
	err := r.App.Preflight(ctx)
	ok := err == nil
	if res != nil {
		res.RepoReachable = &ok
	}
	return err
}

// lock takes an instance's job lock; a held lock is an error containing "busy".
func (r *Runner) lock(instance, job string) (*lock.Lock, error) {
	lk, err := lock.Acquire(filepath.Join(r.App.Config.StateDir, "locks"), instance, job)
	if err != nil {
		if errors.Is(err, lock.ErrHeld) {
			return nil, fmt.Errorf("instance %s is busy: %w; wait for it to finish", instance, err)
		}
		return nil, err
	}
	return lk, nil
}

// restoreJobs applies the tuning.restore_jobs default (0 = the configured value).
func (r *Runner) restoreJobs(n int) int {
	if n > 0 {
		return n
	}
	return r.App.Config.Tuning.RestoreJobs
}

// instance returns a configured instance ("" = the only one).
func (r *Runner) instance(name string) (*config.Instance, error) {
	in, err := r.App.Config.Instance(name)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	return in, nil
}
