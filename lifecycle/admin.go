package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/notify"
	"github.com/dhis2-life/dhis2-life/internal/s3"
	"github.com/dhis2-life/dhis2-life/retention"
	"github.com/dhis2-life/dhis2-life/snapshot"
)

// Initialized is what Init did.
type Initialized struct {
	Created bool
	// Escrow is the escrow bundle's object ("" = no [archive]).
	Escrow string
}

// Init creates the repository (and its S3 bucket) when absent, checks that it opens, creates
// the catalogue, and stores the escrow bundle when [archive] is configured.
func Init(ctx context.Context, a *app.App) (*Initialized, error) {
	loc, isS3, err := s3.ParseResticURL(a.Config.Repository.URL)
	if err != nil {
		return nil, usage("%v", err)
	}
	if isS3 {
		creds := s3.CredentialsFromEnv(append(os.Environ(), a.Env...))
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := s3.EnsureBucket(pctx, loc, creds, false)
		cancel()
		if err != nil {
			if perr := s3.Probe(ctx, loc, creds, 10*time.Second); perr != nil {
				return nil, perr
			}
			return nil, err
		}
	}
	if err := a.Preflight(ctx); err != nil {
		return nil, err
	}
	if !isS3 {
		if err := os.MkdirAll(filepath.Dir(a.Config.Repository.URL), 0o700); err != nil {
			return nil, fmt.Errorf("creating repository parent directory: %w", err)
		}
	}
	out := &Initialized{}
	if out.Created, err = a.Repo.Init(ctx); err != nil {
		return nil, err
	}
	cat, err := a.Catalog()
	if err != nil {
		return nil, err
	}
	if out.Created {
		if err := snapshot.ForgetChunker(cat, a.Config.Repository.URL); err != nil {
			return nil, err
		}
	}
	// The first snapshot's cut markers need the repository's chunker polynomial: read it now.
	if _, err := snapshot.LearnChunker(ctx, cat, a.Repo); err != nil {
		a.Log.Warn("could not read the repository's chunker polynomial; the first snapshot asks again", "err", err)
	}
	if a.Config.Archive != nil {
		if out.Escrow, err = EscrowRefresh(ctx, a); err != nil {
			return nil, fmt.Errorf("escrow bundle: %w", err)
		}
	}
	return out, nil
}

// Unlock removes stale restic locks.
func Unlock(ctx context.Context, a *app.App) error {
	if err := a.Preflight(ctx); err != nil {
		return err
	}
	return a.Repo.Unlock(ctx)
}

// LoadStatus builds the status report from the catalogue or, while a running daemon holds
// it, from the daemon's /status endpoint, with the WAL archiving state of instances that
// have it.
func LoadStatus(ctx context.Context, a *app.App) (*Report, error) {
	cat, err := a.Catalog()
	var rep *Report
	if err == nil {
		if rep, err = Status(a.Config, cat, time.Now()); err == nil {
			AddWALStatus(ctx, a.Config, cat, rep)
			return rep, nil
		}
	}
	if !errors.Is(err, catalog.ErrLocked) || a.Config.Daemon.MetricsListen == "" {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Config.Daemon.MetricsListen+"/status", nil)
	if rerr != nil {
		return nil, err
	}
	resp, herr := http.DefaultClient.Do(req)
	if herr != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, err
	}
	rep = &Report{}
	if derr := json.NewDecoder(resp.Body).Decode(rep); derr != nil {
		return nil, fmt.Errorf("reading the daemon's status: %w", derr)
	}
	AddWALStatus(ctx, a.Config, nil, rep)
	return rep, nil
}

// Snapshots lists the snapshot sets of an instance ("" = all), oldest first.
func (r *Runner) Snapshots(instance string) ([]catalog.SnapshotRecord, error) {
	if instance != "" {
		if _, err := r.instance(instance); err != nil {
			return nil, err
		}
	}
	return r.Catalog.Snapshots(instance)
}

// Keep pins set m so that retention never forgets it.
func (r *Runner) Keep(m *manifest.Manifest, note string) error {
	return r.Catalog.PutJSON(retention.KeepBucket, m.ID, retention.KeepMark{SetID: m.ID, Created: time.Now().UTC(), Note: note})
}

// Unkeep removes a set's keep mark; ref is a set ID (or a reference ResolveSet understands).
// It returns the set ID.
func (r *Runner) Unkeep(ref, instance string) (string, error) {
	id := ref
	if m, err := r.ResolveSet(ref, instance); err == nil {
		id = m.ID
	}
	var k retention.KeepMark
	ok, err := r.Catalog.GetJSON(retention.KeepBucket, id, &k)
	if err != nil {
		return id, err
	}
	if !ok {
		return id, fmt.Errorf("set %s has no keep mark (see `dhis2-life retention plan`)", id)
	}
	return id, r.Catalog.DeleteKey(retention.KeepBucket, id)
}

// DumpStream writes an instance's database stream to w (the producer restic runs). The
// trailer, or the error, goes to resultPath as JSON ("" = nowhere): restic reports only
// "command failed", the snapshot reads the cause there.
func DumpStream(ctx context.Context, a *app.App, instance string, w io.Writer, resultPath string) error {
	tr, err := dump(ctx, a, instance, w, resultPath)
	if werr := writeDumpResult(resultPath, tr, err); err == nil {
		err = werr
	}
	return err
}

// DumpStreamFIFO is DumpStream into the named pipe fifo (snapshot.Take starts the producer
// before restic, which reads the pipe through `internal relay`): the stream is buffered until
// the relay opens the pipe, and the result file is written before the pipe is closed, so the
// relay finds it when the stream ends.
func DumpStreamFIFO(ctx context.Context, a *app.App, instance, fifo, resultPath string) error {
	w := snapshot.NewFIFOWriter(fifo)
	tr, err := dump(ctx, a, instance, w, resultPath)
	if err == nil {
		if err = w.Flush(); err != nil {
			err = fmt.Errorf("dump of %s failed: %w", instance, err)
		}
	}
	werr := writeDumpResult(resultPath, tr, err)
	if cerr := w.Close(); err == nil && werr == nil && cerr != nil {
		werr = fmt.Errorf("closing the pipe to restic: %w", cerr)
	}
	if err == nil {
		err = werr
	}
	return err
}

// dump writes the instance's database stream to w.
func dump(ctx context.Context, a *app.App, instance string, w io.Writer, resultPath string) (*manifest.Trailer, error) {
	in, err := a.Config.Instance(instance)
	if err != nil {
		return nil, usage("%v", err)
	}
	cuts, err := snapshot.CutsFromEnv()
	if err != nil {
		a.Log.Warn("the stream is written without cut markers", "err", err)
		cuts = nil
	}
	tr, err := snapshot.Dump(ctx, snapshot.DumpOptions{
		Conn: app.InstanceConn(in), ExcludeAudit: in.ExcludeAudit, ExcludeExtra: in.ExcludeTableData,
		OrderedTables: a.Config.Tuning.OrderedTables, TempDir: a.Config.Tuning.TempDir, PGBinDir: in.PGBinDir,
		Cuts: cuts,
	}, w)
	if err != nil {
		return nil, fmt.Errorf("dump of %s failed: %w", in.Name, err)
	}
	return tr, nil
}

// writeDumpResult writes the trailer, or the error, to the result file ("" = none).
func writeDumpResult(resultPath string, tr *manifest.Trailer, err error) error {
	if resultPath == "" {
		return nil
	}
	var result any = tr
	if err != nil {
		result = map[string]string{"error": err.Error()}
	}
	b, merr := json.Marshal(result)
	if merr == nil {
		// Whole or not at all: the relay reads it as soon as it exists.
		tmp := resultPath + ".tmp"
		if merr = os.WriteFile(tmp, b, 0o600); merr == nil {
			merr = os.Rename(tmp, resultPath)
		}
	}
	if merr != nil {
		return fmt.Errorf("writing dump result: %w", merr)
	}
	return nil
}

// TestAlerts sends a test event to every configured notifier (short retries) and returns each
// one's result by name.
func TestAlerts(ctx context.Context, a *app.App) (map[string]error, error) {
	ns, secrets, err := notify.FromConfig(a.Config.Notify)
	if err != nil {
		return nil, usage("%v", err)
	}
	if len(ns) == 0 {
		return nil, usage("no notifier is configured: add [notify.webhook], [notify.slack], [notify.telegram] or [notify.smtp]")
	}
	host, _ := os.Hostname()
	n := a.Config.Notify
	d := notify.New(notify.Options{Notifiers: ns, Log: a.Log, Retries: min(n.Retries, 2), Backoff: min(n.RetryBackoff.Duration, 2*time.Second),
		Timeout: n.Timeout.Duration, Secrets: secrets, Host: host})
	defer d.Close(context.Background())
	return d.SendNow(ctx, notify.Event{Event: notify.EventTest,
		Message: "Test message from dhis2-life: this channel receives failure, recovery and stale-backup alerts."}), nil
}

// SortedKeys returns a map's keys in order.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ConfigProbes are the environment checks of `config check`: each instance's database
// answers; restic works and the repository is reachable and exists.
func ConfigProbes(a *app.App) config.Probes {
	p := config.Probes{
		Database: func(ctx context.Context, in *config.Instance) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			conn, err := app.InstanceConn(in).Connect(ctx)
			if err != nil {
				return err
			}
			return conn.Close(ctx)
		},
		UIDs: func(ctx context.Context, in *config.Instance, uids []string) ([]string, error) {
			return clone.MissingUIDs(ctx, app.InstanceConn(in), uids)
		},
	}
	if a == nil {
		return p
	}
	p.Repository = func(ctx context.Context) error {
		notYet := &config.Error{Msg: "the repository does not exist yet", Severity: config.SeverityWarning,
			Fix: "run `dhis2-life init`: it creates the bucket and the repository"}
		if err := a.Preflight(ctx); err != nil {
			if errors.Is(err, s3.ErrNoBucket) {
				return notYet
			}
			return err
		}
		ok, err := a.Repo.Exists(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return notYet
		}
		return nil
	}
	return p
}
