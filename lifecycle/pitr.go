package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/wal"
	"github.com/dhis2-life/dhis2-life/pitr"
	"github.com/dhis2-life/dhis2-life/retention"
)

// JobBaseBackup takes a base backup of instances with WAL archiving ([schedule] base_backup).
const JobBaseBackup = "base_backup"

// WALTimeout bounds one WAL push or fetch: PostgreSQL waits for archive_command, and a hung
// one would stop archiving altogether.
const WALTimeout = 5 * time.Minute

// WALInstance returns a configured instance ("" = the only one) that has [instances.NAME.wal].
func WALInstance(cfg *config.Config, name string) (*config.Instance, error) {
	in, err := cfg.Instance(name)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	if in.WAL == nil {
		return nil, usage("instance %s has no [instances.%s.wal] table: add one to turn WAL archiving on (see `dhis2-life config example`)", in.Name, in.Name)
	}
	return in, nil
}

// WALBinary is the dhis2-life executable archive_command and restore_command run.
func WALBinary(in *config.Instance) (string, error) {
	if in.WAL != nil && in.WAL.Binary != "" {
		return in.WAL.Binary, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding own executable: %w (set instances.%s.wal.binary)", err, in.Name)
	}
	return p, nil
}

// OpenWAL opens the WAL archive of an instance (beside the repository, keys derived from its
// password).
func OpenWAL(a *app.App, in *config.Instance) (*wal.Store, error) {
	keys, err := wal.KeysFromPasswordFile(a.Config.Repository.PasswordFile)
	if err != nil {
		return nil, err
	}
	return wal.NewStore(a.Config.Repository.URL, append(os.Environ(), a.Env...), in.Name, keys)
}

// WALSetup compares (and with apply sets) the server's archiving settings of an instance.
func WALSetup(ctx context.Context, a *app.App, instance string, apply bool) (*pitr.SetupPlan, error) {
	in, err := WALInstance(a.Config, instance)
	if err != nil {
		return nil, err
	}
	bin, err := WALBinary(in)
	if err != nil {
		return nil, err
	}
	return pitr.Setup(ctx, in, pitr.Command(bin, a.Config.Path, in.Name, "push", "%p"), apply)
}

// WALList lists the archived WAL files of an instance (never nil).
func WALList(ctx context.Context, a *app.App, instance string) ([]wal.Object, error) {
	in, err := WALInstance(a.Config, instance)
	if err != nil {
		return nil, err
	}
	s, err := OpenWAL(a, in)
	if err != nil {
		return nil, err
	}
	objs, err := s.List(ctx)
	if objs == nil {
		objs = []wal.Object{}
	}
	return objs, err
}

// WALPrune forgets old base backups and the WAL only they need; pinned sets (keep marks,
// rollback points) keep the base backup a restore to their time starts from.
func (r *Runner) WALPrune(ctx context.Context, instance string, apply bool) (*pitr.PrunePlan, error) {
	in, err := WALInstance(r.App.Config, instance)
	if err != nil {
		return nil, err
	}
	s, err := OpenWAL(r.App, in)
	if err != nil {
		return nil, err
	}
	pins, err := retention.Pins(r.Catalog)
	if err != nil {
		return nil, err
	}
	return pitr.Prune(ctx, pitr.PruneOptions{Instance: in.Name, Repo: r.App.Repo, Store: s,
		Keep: in.WAL.KeepBaseBackups, Pins: pins, Apply: apply})
}

// BaseBackupProducer is the base-stream producer argv of an instance, which restic backup
// --stdin-from-command runs.
func BaseBackupProducer(self, configPath, instance string) []string {
	return []string{self, "--config", configPath, "--log-level", "warn", "wal", "base-stream", "--instance", instance}
}

// BaseBackup takes a base backup of an instance with WAL archiving ("" = the only one) as the
// job base_backup: run record, alerts.
func (r *Runner) BaseBackup(ctx context.Context, instance string, progress restic.ProgressFunc) (*pitr.BaseManifest, error) {
	in, err := WALInstance(r.App.Config, instance)
	if err != nil {
		return nil, err
	}
	var m *pitr.BaseManifest
	_, err = r.Run(ctx, in.Name, JobBaseBackup, func(ctx context.Context) (Result, error) {
		var res Result
		res, m, err = r.baseBackup(ctx, in, progress)
		return res, err
	})
	return m, err
}

// BaseBackupJob is the scheduled base_backup of an instance without the run record;
// instances without [instances.NAME.wal] are skipped.
func (r *Runner) BaseBackupJob(ctx context.Context, instance string) (Result, error) {
	in := r.App.Config.Instances[instance]
	if in == nil || in.WAL == nil {
		return Result{}, skipf("instance %s has no WAL archiving", instance)
	}
	res, _, err := r.baseBackup(ctx, in, nil)
	return res, err
}

func (r *Runner) baseBackup(ctx context.Context, in *config.Instance, progress restic.ProgressFunc) (Result, *pitr.BaseManifest, error) {
	var res Result
	if err := r.preflight(ctx, &res); err != nil {
		return res, nil, err
	}
	cfg := r.App.Config
	m, err := pitr.BaseBackup(ctx, pitr.BaseOptions{
		Config: cfg, Instance: in, Repo: r.App.Repo, Log: r.log(), ToolVersion: r.ToolVersion,
		Producer: BaseBackupProducer(r.Self, cfg.Path, in.Name), Progress: progress,
	})
	if err != nil {
		return res, nil, err
	}
	res.Bytes = m.Part.AddedPacked
	return res, m, nil
}

// ListBaseBackups lists the base backups of an instance in the repository (never nil).
func ListBaseBackups(ctx context.Context, a *app.App, instance string) ([]*pitr.BaseManifest, error) {
	in, err := WALInstance(a.Config, instance)
	if err != nil {
		return nil, err
	}
	if err := a.Preflight(ctx); err != nil {
		return nil, err
	}
	bases, err := pitr.ListBase(ctx, a.Repo, in.Name)
	if bases == nil {
		bases = []*pitr.BaseManifest{}
	}
	return bases, err
}

// ParsePITRTime parses a point-in-time target: RFC 3339, or "YYYY-MM-DD HH:MM[:SS[.frac]]" in
// local time.
func ParsePITRTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usage("--pitr %q is not a time: use \"2026-12-01 14:05:00\" (local time) or RFC 3339 such as 2026-12-01T14:05:00Z", s)
}

// PITRRestoreRequest is `restore --pitr`: a whole cluster recovered to Target into DataDir.
type PITRRestoreRequest struct {
	Instance string
	Target   time.Time
	DataDir  string
	Port     int
	// Pause stays paused in recovery at the target instead of promoting.
	Pause bool
}

// RestorePITR restores an instance's cluster to a point in time from the newest base backup
// before it and the WAL archive.
func (r *Runner) RestorePITR(ctx context.Context, q PITRRestoreRequest) (*pitr.RestoreResult, error) {
	if q.DataDir == "" || q.Port == 0 {
		return nil, usage("restore --pitr needs --to-data-dir DIR and --port PORT")
	}
	in, err := WALInstance(r.App.Config, q.Instance)
	if err != nil {
		return nil, err
	}
	if err := r.preflight(ctx, nil); err != nil {
		return nil, err
	}
	ro, err := r.pitrOptions(in, q.Target)
	if err != nil {
		return nil, err
	}
	ro.DataDir, ro.Port, ro.Pause = q.DataDir, q.Port, q.Pause
	return pitr.Restore(ctx, ro)
}

func (r *Runner) pitrOptions(in *config.Instance, target time.Time) (pitr.RestoreOptions, error) {
	bin, err := WALBinary(in)
	if err != nil {
		return pitr.RestoreOptions{}, err
	}
	return pitr.RestoreOptions{Instance: in, Repo: r.App.Repo, Log: r.log(), Target: target,
		RestoreCommand: pitr.Command(bin, r.App.Config.Path, in.Name, "fetch", "%f", "%p")}, nil
}

// VerifyPITR is the point-in-time drill: it restores the instance's cluster to target in
// scratch space and checks rows stamped up to it are there and later ones are not. A drill
// whose check failed returns its report and an error wrapping ErrDrillFailed.
func (r *Runner) VerifyPITR(ctx context.Context, instance string, target time.Time, keepScratch bool) (*pitr.DrillReport, error) {
	in, err := WALInstance(r.App.Config, instance)
	if err != nil {
		return nil, err
	}
	if err := r.preflight(ctx, nil); err != nil {
		return nil, err
	}
	ro, err := r.pitrOptions(in, target)
	if err != nil {
		return nil, err
	}
	rep, err := pitr.Drill(ctx, pitr.DrillOptions{Restore: ro, Production: app.InstanceConn(in), Catalog: r.Catalog,
		Margin: in.WAL.DrillMargin.Duration, KeepScratch: keepScratch})
	if err != nil {
		return nil, err
	}
	if !rep.OK {
		return rep, fmt.Errorf("%w: PITR drill to %s: see the checks above", ErrDrillFailed, target.Local().Format("2006-01-02 15:04:05"))
	}
	return rep, nil
}

// AddWALStatus adds the WAL archiving state of instances with [instances.NAME.wal] to a
// status report (cat nil: without the newest PITR drill); lag past wal_max_lag is a problem.
func AddWALStatus(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, rep *Report) {
	for name, st := range rep.Instances {
		in := cfg.Instances[name]
		if in == nil || in.WAL == nil || st == nil {
			continue
		}
		ws := pitr.Status(ctx, in, time.Now())
		if cat != nil {
			if d, err := pitr.LastDrill(cat, name); err == nil && d != nil {
				ws.LastDrill = d
				if !d.OK {
					ws.Problems = append(ws.Problems, "newest PITR drill ("+d.ID+") failed: see `dhis2-life verify --pitr`")
				}
			}
		}
		st.WAL = ws
		st.Problems = append(st.Problems, ws.Problems...)
		st.OK = len(st.Problems) == 0
		rep.OK = rep.OK && st.OK
	}
}

// WALPush archives one WAL file of an instance (archive_command), bounded by WALTimeout.
func WALPush(ctx context.Context, a *app.App, instance, path string) error {
	in, err := WALInstance(a.Config, instance)
	if err != nil {
		return err
	}
	s, err := OpenWAL(a, in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, WALTimeout)
	defer cancel()
	res, err := s.Push(ctx, path)
	if err != nil {
		return fmt.Errorf("wal push: %w", err)
	}
	a.Log.Debug("wal pushed", "file", res.Name, "bytes", res.Size, "stored", res.Stored, "again", res.AlreadyStored, "seconds", res.Seconds)
	return nil
}

// WALFetch restores one archived WAL file of an instance to dst (restore_command), bounded
// by WALTimeout.
func WALFetch(ctx context.Context, a *app.App, instance, name, dst string) error {
	in, err := WALInstance(a.Config, instance)
	if err != nil {
		return err
	}
	s, err := OpenWAL(a, in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, WALTimeout)
	defer cancel()
	if _, err := s.Fetch(ctx, name, dst); err != nil {
		if errors.Is(err, wal.ErrNotFound) {
			return fmt.Errorf("wal fetch: %s is not in the WAL archive", name)
		}
		return fmt.Errorf("wal fetch: %w", err)
	}
	return nil
}

// WALBaseStream writes pg_basebackup's tar stream of an instance to out (restic's producer).
func WALBaseStream(ctx context.Context, a *app.App, instance string, out io.Writer, resultPath string) error {
	in, err := WALInstance(a.Config, instance)
	if err != nil {
		return err
	}
	return pitr.BaseStream(ctx, in, a.Config.Tuning.TempDir, out, resultPath)
}
