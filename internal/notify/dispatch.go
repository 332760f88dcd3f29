package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Dispatcher.
type Options struct {
	Notifiers []Notifier
	Log       *slog.Logger
	// Interval is the minimum time between two alerts about the same problem.
	Interval time.Duration
	// Retries is how often a failed delivery is retried; the first retry waits Backoff, each
	// next one twice as long.
	Retries int
	Backoff time.Duration
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Secrets are replaced by "[redacted]" in every message and logged error.
	Secrets []string
	// StatePath keeps the open problems across restarts (JSON; "" = memory only).
	StatePath string
	// Host names this machine in messages.
	Host string
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// Problem is an open problem: alerted, not yet recovered.
type Problem struct {
	Event     string    `json:"event"`
	Instance  string    `json:"instance"`
	Job       string    `json:"job"`
	Since     time.Time `json:"since"`
	LastAlert time.Time `json:"last_alert"`
	Message   string    `json:"message"`
}

// Dispatcher decides what to send (deduplication, recoveries) and delivers it in the
// background: its methods never block on a notifier.
type Dispatcher struct {
	o        Options
	mu       sync.Mutex
	problems map[string]*Problem
	queues   []*queue
	wg       sync.WaitGroup
	closed   bool
}

type queue struct {
	n  Notifier
	ch chan Event
}

// New starts a dispatcher; Close stops it.
func New(o Options) *Dispatcher {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	if o.Backoff == 0 {
		o.Backoff = 5 * time.Second
	}
	d := &Dispatcher{o: o, problems: map[string]*Problem{}}
	d.load()
	for _, n := range o.Notifiers {
		q := &queue{n: n, ch: make(chan Event, 256)}
		d.queues = append(d.queues, q)
		d.wg.Add(1)
		go d.deliverLoop(q)
	}
	return d
}

// Notifiers returns the channels this dispatcher sends to.
func (d *Dispatcher) Notifiers() []Notifier { return d.o.Notifiers }

func key(instance, job, event string) string { return instance + "\x00" + job + "\x00" + event }

// Failure reports a failed job run. An alert is sent unless the same instance+job failure was
// alerted less than Interval ago. It reports whether an alert was queued.
func (d *Dispatcher) Failure(instance, job, msg string) bool {
	return d.raise(EventFailure, instance, job, msg)
}

// Success reports a successful job run; after a failure it sends one recovery message.
func (d *Dispatcher) Success(instance, job string) bool {
	d.mu.Lock()
	k := key(instance, job, EventFailure)
	p, ok := d.problems[k]
	if ok {
		delete(d.problems, k)
		d.saveLocked()
	}
	d.mu.Unlock()
	if !ok {
		return false
	}
	d.enqueue(Event{Event: EventRecovery, Instance: instance, Job: job,
		Message: "succeeded again after failing since " + p.Since.Format(time.RFC3339) + "; last error: " + p.Message})
	return true
}

// Stale reports a limit exceeded (RPO, drill age), alerted at most once per Interval.
func (d *Dispatcher) Stale(instance, job, msg string) bool {
	return d.raise(EventStale, instance, job, msg)
}

// Fresh clears a stale problem (no message: the job's recovery already says it).
func (d *Dispatcher) Fresh(instance, job string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.problems[key(instance, job, EventStale)]; ok {
		delete(d.problems, key(instance, job, EventStale))
		d.saveLocked()
	}
}

func (d *Dispatcher) raise(event, instance, job, msg string) bool {
	now := d.o.Now()
	d.mu.Lock()
	k := key(instance, job, event)
	p, ok := d.problems[k]
	if ok && now.Sub(p.LastAlert) < d.o.Interval {
		p.Message = d.Redact(msg)
		d.mu.Unlock()
		d.o.Log.Info("alert suppressed: same problem alerted recently", "event", event, "instance", instance, "job", job,
			"last_alert", p.LastAlert.Format(time.RFC3339), "interval", d.o.Interval)
		return false
	}
	if !ok {
		p = &Problem{Event: event, Instance: instance, Job: job, Since: now}
		d.problems[k] = p
	}
	p.LastAlert, p.Message = now, d.Redact(msg)
	d.saveLocked()
	d.mu.Unlock()
	m := msg
	if ok {
		m += "\n(still failing since " + p.Since.Format(time.RFC3339) + ")"
	}
	d.enqueue(Event{Event: event, Instance: instance, Job: job, Message: m})
	return true
}

// Send queues an event for every notifier, without deduplication.
func (d *Dispatcher) Send(e Event) { d.enqueue(e) }

func (d *Dispatcher) fill(e Event) Event {
	if e.Time.IsZero() {
		e.Time = d.o.Now().UTC()
	}
	if e.Host == "" {
		e.Host = d.o.Host
	}
	e.Message = d.Redact(e.Message)
	return e
}

func (d *Dispatcher) enqueue(e Event) {
	e = d.fill(e)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.o.Log.Warn("notification dropped: dispatcher closed", "event", e.Event, "instance", e.Instance, "job", e.Job)
		return
	}
	if len(d.queues) == 0 {
		d.o.Log.Info("no notifier configured", "event", e.Event, "instance", e.Instance, "job", e.Job, "message", e.Message)
	}
	for _, q := range d.queues {
		select {
		case q.ch <- e:
		default:
			d.o.Log.Error("notification dropped: queue full", "notifier", q.n.Name(), "event", e.Event)
		}
	}
}

func (d *Dispatcher) deliverLoop(q *queue) {
	defer d.wg.Done()
	for e := range q.ch {
		d.deliver(context.Background(), q.n, e)
	}
}

// deliver sends with retries; it returns the last error (nil on success).
func (d *Dispatcher) deliver(ctx context.Context, n Notifier, e Event) error {
	wait := d.o.Backoff
	var err error
	for attempt := 0; attempt <= d.o.Retries; attempt++ {
		if attempt > 0 {
			d.o.Log.Warn("notification failed; retrying", "notifier", n.Name(), "event", e.Event, "attempt", attempt, "retry_in", wait, "err", d.Redact(err.Error()))
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			wait *= 2
		}
		actx, cancel := context.WithTimeout(ctx, d.o.Timeout)
		err = n.Send(actx, e)
		cancel()
		if err == nil {
			d.o.Log.Info("notification sent", "notifier", n.Name(), "event", e.Event, "instance", e.Instance, "job", e.Job)
			return nil
		}
	}
	d.o.Log.Error("notification failed, giving up", "notifier", n.Name(), "event", e.Event, "instance", e.Instance, "job", e.Job,
		"attempts", d.o.Retries+1, "err", d.Redact(err.Error()))
	return &redactedError{msg: d.Redact(err.Error())}
}

type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }

// SendNow delivers an event to every notifier and waits (with retries), returning each
// notifier's error by name: `notify test` uses it.
func (d *Dispatcher) SendNow(ctx context.Context, e Event) map[string]error {
	e = d.fill(e)
	out := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range d.o.Notifiers {
		wg.Add(1)
		go func(n Notifier) {
			defer wg.Done()
			err := d.deliver(ctx, n, e)
			mu.Lock()
			out[n.Name()] = err
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	return out
}

// Close stops accepting events and waits until the queued ones are delivered or ctx ends.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		for _, q := range d.queues {
			close(q.ch)
		}
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OpenProblems returns the problems alerted and not yet recovered, sorted.
func (d *Dispatcher) OpenProblems() []Problem {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Problem, 0, len(d.problems))
	for _, p := range d.problems {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		return key(out[i].Instance, out[i].Job, out[i].Event) < key(out[j].Instance, out[j].Job, out[j].Event)
	})
	return out
}

var userinfo = regexp.MustCompile(`://[^/@\s:]+:[^/@\s]+@`)

// Redact removes the configured secrets and URL passwords from s.
func (d *Dispatcher) Redact(s string) string {
	for _, sec := range d.o.Secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return userinfo.ReplaceAllString(s, "://[redacted]@")
}

func (d *Dispatcher) load() {
	if d.o.StatePath == "" {
		return
	}
	b, err := os.ReadFile(d.o.StatePath)
	if err != nil {
		return
	}
	var ps []*Problem
	if err := json.Unmarshal(b, &ps); err != nil {
		d.o.Log.Warn("ignoring unreadable notification state", "path", d.o.StatePath, "err", err)
		return
	}
	for _, p := range ps {
		d.problems[key(p.Instance, p.Job, p.Event)] = p
	}
}

func (d *Dispatcher) saveLocked() {
	if d.o.StatePath == "" {
		return
	}
	ps := make([]*Problem, 0, len(d.problems))
	for _, p := range d.problems {
		ps = append(ps, p)
	}
	b, _ := json.MarshalIndent(ps, "", "  ")
	tmp := d.o.StatePath + ".tmp"
	if err := os.MkdirAll(filepath.Dir(d.o.StatePath), 0o700); err == nil {
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, d.o.StatePath)
		}
		if err != nil {
			d.o.Log.Warn("could not save notification state", "err", err)
		}
	}
}
