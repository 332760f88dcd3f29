package clone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/internal/lock"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/restore"
)

// Catalogue buckets.
const (
	BucketClones    = "clones"
	BucketTemplates = "clone-templates"
)

// Suffixes of the databases and directories a clone works with.
const (
	NewSuffix = "__dhis2life_new"
	OldSuffix = "__dhis2life_old"
	// HomeMarker is written into every clone home; destroy removes only homes holding it.
	HomeMarker = ".dhis2-life-clone"
)

// ErrSessions is returned when the target has sessions and Terminate is not set (a
// database in use, not a lock: see snapshot.ErrBusy for that).
var ErrSessions = restore.ErrSessions

// Options configure a clone.
type Options struct {
	Config   *config.Config
	Target   *config.Target
	Repo     *restic.Repo
	Catalog  *catalog.Catalog
	Log      *slog.Logger
	Manifest *manifest.Manifest
	// Terminate ends other sessions on the target at the swap instead of refusing.
	Terminate bool
	// Force replaces a target database that holds data but is not a clone recorded for the
	// target (the first clone into a database made by hand).
	Force bool
	// Jobs is the parallelism of index builds (lifecycle applies tuning.restore_jobs).
	Jobs     int
	Progress func(done, total int64)
	// BeforeSwap, when set, runs after the new copy is verified and before the swap (tests).
	BeforeSwap func(ctx context.Context) error
}

// Record is a clone in the catalogue (bucket "clones", key = target name).
type Record struct {
	Target       string       `json:"target"`
	Instance     string       `json:"instance"`
	Profile      string       `json:"profile"`
	Set          string       `json:"set"`
	SetTime      time.Time    `json:"set_time"`
	Generation   string       `json:"generation"`
	Database     string       `json:"database"` // DSN without password
	Home         string       `json:"home,omitempty"`
	Time         time.Time    `json:"time"`
	TTLSeconds   float64      `json:"ttl_seconds,omitempty"`
	Expires      *time.Time   `json:"expires,omitempty"`
	Bytes        int64        `json:"bytes"`
	Template     string       `json:"template,omitempty"`
	FromTemplate bool         `json:"from_template"`
	Changes      []Change     `json:"changes"`
	Checks       []Check      `json:"checks"`
	Conf         []ConfChange `json:"dhis_conf,omitempty"`
	Warnings     []string     `json:"warnings,omitempty"`

	Seconds        float64 `json:"seconds"`
	RestoreSeconds float64 `json:"restore_seconds"`
	CopySeconds    float64 `json:"copy_seconds,omitempty"`
	ScrubSeconds   float64 `json:"scrub_seconds"`
	FilesSeconds   float64 `json:"files_seconds,omitempty"`
	// PIISeconds is the part of RestoreSeconds spent pseudonymising, between the data load and
	// the index builds.
	PIISeconds float64 `json:"pii_seconds,omitempty"`
	// PII is the scan for production's personal data (pii.go, scan.go).
	PII *ScanReport `json:"pii_scan,omitempty"`
}

// templateRecord is a template database in the catalogue.
type templateRecord struct {
	Name       string    `json:"name"`
	Target     string    `json:"target"`
	Set        string    `json:"set"`
	Created    time.Time `json:"created"`
	Changes    []Change  `json:"changes"`
	RestoreSec float64   `json:"restore_seconds"`
}

// TargetConn returns the target's connection.
func TargetConn(t *config.Target) pg.Conn {
	return pg.Conn{DSN: t.Database, PasswordFile: t.DatabasePasswordFile}
}

// AdminFor returns the instance's admin connection when it is on the target's server.
func AdminFor(ctx context.Context, cfg *config.Config, t *config.Target) *pg.Conn {
	in, ok := cfg.Instances[t.Instance]
	if !ok {
		return nil
	}
	adm := app.AdminConn(in)
	if adm == nil {
		return nil
	}
	te, err1 := TargetConn(t).Resolve(ctx)
	ae, err2 := adm.Resolve(ctx)
	if err1 != nil || err2 != nil || !te.SameServer(ae) {
		return nil
	}
	return adm
}

// Names of the working databases of a target database.
func tmpName(db string) string { return db + NewSuffix }
func oldName(db string) string { return db + OldSuffix }

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// TemplateName is the template database of a target and set: dhis2life_tpl_<target>_<set>,
// shortened with a hash when longer than PostgreSQL's 63 bytes.
func TemplateName(target, set string) string {
	n := "dhis2life_tpl_" + nonIdent.ReplaceAllString(strings.ToLower(target), "_") + "_" + nonIdent.ReplaceAllString(strings.ToLower(set), "_")
	if len(n) <= 60 { // room for the "_b" of the build name
		return n
	}
	h := sha256.Sum256([]byte(target + "\x00" + set))
	p := "dhis2life_tpl_" + nonIdent.ReplaceAllString(strings.ToLower(target), "_")
	if len(p) > 40 {
		p = p[:40]
	}
	return p + "_" + hex.EncodeToString(h[:])[:16]
}

func templatePrefix(target string) string {
	return "dhis2life_tpl_" + nonIdent.ReplaceAllString(strings.ToLower(target), "_") + "_"
}

// server wraps the admin connection to the target's server.
type server struct {
	target pg.Conn
	admin  *pg.Conn
	owner  string
}

func (s server) connFor(db string) pg.Conn {
	if s.admin != nil {
		return s.admin.WithDatabase(db)
	}
	return s.target.WithDatabase(db)
}

func (s server) connect(ctx context.Context) (*pgx.Conn, error) {
	c, err := s.connFor("postgres").Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to the target server: %w", err)
	}
	return c, nil
}

func dbExists(ctx context.Context, c *pgx.Conn, db string) (bool, error) {
	var ok bool
	err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, db).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("looking up database %s: %w", db, err)
	}
	return ok, nil
}

func dropDB(ctx context.Context, c *pgx.Conn, db string) error {
	if _, err := pg.TerminateOthers(ctx, c, db); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(db)); err != nil {
		return fmt.Errorf("dropping %s: %w", db, err)
	}
	return nil
}

func (s server) drop(ctx context.Context, db string) error {
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return dropDB(ctx, c, db)
}

func (s server) size(ctx context.Context, db string) int64 {
	c, err := s.connect(ctx)
	if err != nil {
		return 0
	}
	defer c.Close(context.Background())
	var n int64
	_ = c.QueryRow(ctx, `SELECT pg_database_size($1)`, db).Scan(&n)
	return n
}

// Prepared is a checked clone request: everything that can be refused is refused here,
// before anything changes.
type Prepared struct {
	o        Options
	Gen      Generation
	Scrub    *Scrubber
	Target   pg.Conn
	Admin    *pg.Conn
	Database string
	Temp     string
	Template string
	Home     string
	srv      server
	sought   *Sought // production's identifying values, collected before the scrub
	// piiSeconds is the time the pseudonymisation took during the restore (afterData).
	piiSeconds float64
}

// Prepare checks the request: target and profile known, set of the target's instance, schema
// generation recognised, no production database among the names it would write.
func Prepare(ctx context.Context, o Options) (*Prepared, error) {
	t, m := o.Target, o.Manifest
	if t == nil {
		return nil, errors.New("no clone target")
	}
	if m.Instance != t.Instance {
		return nil, fmt.Errorf("set %s is of instance %s but target %s clones instance %s", m.ID, m.Instance, t.Name, t.Instance)
	}
	gen, err := ParseGeneration(m.DHIS2.Flyway)
	if err != nil {
		return nil, err
	}
	sc, err := NewScrubber(t, filepath.Dir(o.Config.Path), gen, m.Instance, m.ID, m.Time)
	if err != nil {
		return nil, err
	}
	sc.Log = o.Log
	p := &Prepared{o: o, Gen: gen, Scrub: sc, Target: TargetConn(t), Home: t.DHIS2Home}
	if _, err := p.Target.Config(); err != nil {
		return nil, err
	}
	p.Database = p.Target.Database()
	if p.Database == "" || p.Database == "postgres" || strings.HasPrefix(p.Database, "template") {
		return nil, fmt.Errorf("target %s: database %q cannot be a clone target", t.Name, p.Database)
	}
	if len(p.Database)+len(NewSuffix) > 63 {
		return nil, fmt.Errorf("target %s: database name %s is too long (at most %d bytes, so that %s%s fits PostgreSQL's limit)", t.Name, p.Database, 63-len(NewSuffix), p.Database, NewSuffix)
	}
	p.Temp = tmpName(p.Database)
	if t.Template {
		p.Template = TemplateName(t.Name, m.ID)
	}
	for _, db := range []string{p.Database, p.Temp, oldName(p.Database), p.Template} {
		if db == "" {
			continue
		}
		if err := restore.GuardProduction(ctx, o.Config, p.Target.WithDatabase(db)); err != nil {
			return nil, fmt.Errorf("target %s: %w", t.Name, err)
		}
	}
	if err := guardHome(o.Config, p.Home); err != nil {
		return nil, fmt.Errorf("target %s: %w", t.Name, err)
	}
	p.Admin = AdminFor(ctx, o.Config, t)
	p.srv = server{target: p.Target, admin: p.Admin, owner: p.Target.User()}
	return p, nil
}

// guardHome refuses a clone home that is, holds or lies inside an instance's DHIS2_HOME.
func guardHome(cfg *config.Config, home string) error {
	if home == "" {
		return nil
	}
	if !filepath.IsAbs(home) || filepath.Clean(home) == "/" {
		return fmt.Errorf("dhis2_home %q must be an absolute directory other than /", home)
	}
	h := filepath.Clean(home)
	for _, name := range cfg.InstanceNames() {
		ih := filepath.Clean(cfg.Instances[name].DHIS2Home)
		if ih == "" || ih == "." {
			continue
		}
		if h == ih || strings.HasPrefix(h, ih+string(filepath.Separator)) || strings.HasPrefix(ih, h+string(filepath.Separator)) {
			return fmt.Errorf("%w: dhis2_home %s overlaps the DHIS2_HOME %s of instance %s", restore.ErrUnsafeTarget, home, ih, name)
		}
	}
	return nil
}

// Sessions lists the other sessions on the target database (none when it does not exist).
func (p *Prepared) Sessions(ctx context.Context) ([]string, error) {
	c, err := p.srv.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	return pg.Sessions(ctx, c, p.Database)
}

// TemplateExists reports whether the template of this set is ready.
func (p *Prepared) TemplateExists(ctx context.Context) (bool, error) {
	if p.Template == "" {
		return false, nil
	}
	c, err := p.srv.connect(ctx)
	if err != nil {
		return false, err
	}
	defer c.Close(context.Background())
	return dbExists(ctx, c, p.Template)
}

// Clone restores, scrubs, verifies and swaps in the set described by o.Manifest.
func Clone(ctx context.Context, o Options) (*Record, error) {
	p, err := Prepare(ctx, o)
	if err != nil {
		return nil, err
	}
	return p.Run(ctx)
}

// Run performs a prepared clone. On any failure before the swap the previous clone is left
// untouched and the working copy is dropped.
func (p *Prepared) Run(ctx context.Context) (*Record, error) {
	o, t, m := p.o, p.o.Target, p.o.Manifest
	start := time.Now()
	lk, err := lock.Acquire(filepath.Join(o.Config.StateDir, "locks"), "clone-"+t.Name, "clone")
	if err != nil {
		return nil, fmt.Errorf("target %s is busy: %w", t.Name, err)
	}
	defer lk.Release()

	rec := &Record{Target: t.Name, Instance: t.Instance, Profile: t.Profile, Set: m.ID, SetTime: m.Time,
		Generation: p.Gen.String(), Database: pg.Redact(t.Database), Home: p.Home, Template: p.Template}
	tmpHome, err := p.checkTarget(ctx)
	if err != nil {
		return nil, err
	}
	cleanup := func(cause error) error { return p.cleanup(ctx, tmpHome, cause) }

	// 1. The new copy, scrubbed, and 2. its proof; meanwhile 3. the clone's DHIS2_HOME (the
	// set's file store and dhis.conf), which needs nothing of the database.
	hctx, stopHome := context.WithCancelCause(ctx)
	defer stopHome(nil)
	hrec := &Record{}
	homeDone := make(chan error, 1)
	if tmpHome != "" {
		go func() { homeDone <- p.home(hctx, tmpHome, hrec) }()
	} else {
		homeDone <- nil
	}
	dbErr := p.newCopy(ctx, rec)
	if dbErr == nil {
		rec.Checks, dbErr = p.verify(ctx, p.Temp)
	}
	if dbErr != nil {
		stopHome(dbErr)
	}
	homeErr := <-homeDone
	rec.FilesSeconds, rec.Conf = hrec.FilesSeconds, hrec.Conf
	rec.Warnings = append(rec.Warnings, hrec.Warnings...)
	rec.Checks = append(rec.Checks, hrec.Checks...)
	if dbErr != nil {
		return nil, cleanup(dbErr)
	}
	if homeErr != nil {
		return nil, cleanup(homeErr)
	}
	if err := p.piiProof(ctx, tmpHome, rec); err != nil {
		return nil, cleanup(err)
	}
	if o.BeforeSwap != nil {
		if err := o.BeforeSwap(ctx); err != nil {
			return nil, cleanup(err)
		}
	}
	// 4. Swap.
	if err := RunHook(ctx, o.Log, "before_hook", t.BeforeHook, t.HookTimeout.Duration, p.hookEnv()); err != nil {
		return nil, cleanup(err)
	}
	if err := p.swap(ctx); err != nil {
		return nil, cleanup(err)
	}
	proc.KillAt("clone:swapped")
	if tmpHome != "" {
		if err := swapHome(o.Log, p.Home, tmpHome); err != nil {
			rec.Warnings = append(rec.Warnings, err.Error())
		}
	}
	// 5. Record, then the after_hook.
	return p.record(ctx, rec, start)
}

// checkTarget refuses a target that may not be replaced (holds data but is no recorded
// clone, or has sessions nothing will stop), drops the leftovers of a killed run and
// returns the directory the new DHIS2_HOME is built in ("" when the target has none).
func (p *Prepared) checkTarget(ctx context.Context) (string, error) {
	o, t := p.o, p.o.Target
	admin, err := p.srv.connect(ctx)
	if err != nil {
		return "", err
	}
	defer func() { admin.Close(context.Background()) }()
	exists, err := dbExists(ctx, admin, p.Database)
	if err != nil {
		return "", err
	}
	if exists && !o.Force {
		if err := p.replaceable(ctx); err != nil {
			return "", err
		}
	}
	// Fail early on sessions (the swap checks again): unless a before_hook will stop them.
	if exists && !o.Terminate && len(t.BeforeHook) == 0 {
		if err := busy(ctx, admin, p.Database); err != nil {
			return "", err
		}
	}
	// Leftovers of a killed run: the working copy, or an old copy whose drop did not happen.
	for _, db := range []string{p.Temp, oldName(p.Database)} {
		if ok, _ := dbExists(ctx, admin, db); ok {
			o.Log.Warn("dropping a leftover of an earlier clone run", "database", db)
			if err := dropDB(ctx, admin, db); err != nil {
				return "", err
			}
		}
	}
	if p.Home == "" {
		return "", nil
	}
	recoverHome(o.Log, p.Home)
	tmpHome := p.Home + ".dhis2life-new"
	if err := os.RemoveAll(tmpHome); err != nil {
		return "", fmt.Errorf("removing leftover %s: %w", tmpHome, err)
	}
	return tmpHome, nil
}

// cleanup drops the working copy and the new DHIS2_HOME of a failed run and says that the
// previous clone is untouched.
func (p *Prepared) cleanup(ctx context.Context, tmpHome string, cause error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var notes []string
	if err := p.srv.drop(dctx, p.Temp); err != nil {
		notes = append(notes, fmt.Sprintf("the working copy %s could NOT be dropped (%v); drop it by hand", p.Temp, err))
	}
	if tmpHome != "" {
		_ = os.RemoveAll(tmpHome)
	}
	msg := "the previous clone is untouched"
	if len(notes) > 0 {
		msg += "; " + strings.Join(notes, "; ")
	}
	return fmt.Errorf("clone of set %s into %s failed: %w (%s)", p.o.Manifest.ID, p.o.Target.Name, cause, msg)
}

// newCopy makes the scrubbed working copy: from the set's template, or restored and
// scrubbed.
func (p *Prepared) newCopy(ctx context.Context, rec *Record) error {
	if p.Template != "" {
		return p.viaTemplate(ctx, rec)
	}
	t0 := time.Now()
	if _, err := restore.Restore(ctx, p.restoreOptions(p.Temp)); err != nil {
		return err
	}
	rec.RestoreSeconds = time.Since(t0).Seconds()
	rec.PIISeconds = p.piiSeconds
	proc.KillAt("clone:restored")
	t1 := time.Now()
	if err := p.collectPII(ctx, p.Temp); err != nil {
		return err
	}
	ch, err := p.scrub(ctx, p.Temp)
	if err != nil {
		return err
	}
	rec.Changes = ch
	rec.ScrubSeconds = time.Since(t1).Seconds()
	proc.KillAt("clone:scrubbed")
	return nil
}

// record completes and stores the record of the clone in place, then runs the after_hook.
func (p *Prepared) record(ctx context.Context, rec *Record, start time.Time) (*Record, error) {
	o, t := p.o, p.o.Target
	rec.Time = time.Now().UTC()
	if t.TTL.Duration > 0 {
		rec.TTLSeconds = t.TTL.Seconds()
		e := rec.Time.Add(t.TTL.Duration)
		rec.Expires = &e
	}
	rec.Bytes = p.srv.size(ctx, p.Database)
	rec.Seconds = time.Since(start).Seconds()
	if err := o.Catalog.PutJSON(BucketClones, t.Name, rec); err != nil {
		return rec, fmt.Errorf("clone %s is in place but could not be recorded: %w", t.Name, err)
	}
	if err := RunHook(ctx, o.Log, "after_hook", t.AfterHook, t.HookTimeout.Duration, p.hookEnv()); err != nil {
		return rec, fmt.Errorf("clone %s is in place, but: %w", t.Name, err)
	}
	o.Log.Info("clone in place", "target", t.Name, "set", o.Manifest.ID, "took", time.Duration(rec.Seconds*float64(time.Second)).Round(time.Millisecond), "from_template", rec.FromTemplate)
	return rec, nil
}

func (p *Prepared) hookEnv() []string {
	return []string{"DHIS2_LIFE_TARGET=" + p.o.Target.Name, "DHIS2_LIFE_SET=" + p.o.Manifest.ID,
		"DHIS2_LIFE_DATABASE=" + p.Database, "DHIS2_HOME=" + p.Home}
}

func busy(ctx context.Context, admin *pgx.Conn, db string) error {
	s, err := pg.Sessions(ctx, admin, db)
	if err != nil {
		return err
	}
	if len(s) > 0 {
		return fmt.Errorf("%w: database %s has %d other sessions (%s): stop the clone's DHIS2 (see before_hook)",
			ErrSessions, db, len(s), strings.Join(s, ", "))
	}
	return nil
}

func (p *Prepared) restoreOptions(db string) restore.Options {
	o := p.o
	ro := restore.Options{Config: o.Config, Repo: o.Repo, Log: o.Log, Manifest: o.Manifest,
		Target: p.Target.WithDatabase(db), Admin: p.Admin, Force: true, Terminate: true, Jobs: o.Jobs, Progress: o.Progress}
	if p.Scrub.PII.On() {
		// Personal data is rewritten before the indexes are built (Scrubber.ApplyPII).
		ro.AfterData = p.afterData
	}
	return ro
}

func (p *Prepared) scrub(ctx context.Context, db string) ([]Change, error) {
	c, err := p.srv.connFor(db).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	if p.Admin != nil {
		if _, err := c.Exec(ctx, "SET ROLE "+pg.QuoteIdent(p.srv.owner)); err != nil {
			return nil, err
		}
	}
	return p.Scrub.Apply(ctx, c)
}

func (p *Prepared) verify(ctx context.Context, db string) ([]Check, error) {
	c, err := p.srv.connFor(db).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	checks, err := p.Scrub.Verify(ctx, c)
	if err != nil {
		return checks, err
	}
	if f := Failed(checks); len(f) > 0 {
		return checks, &VerifyError{Failed: f}
	}
	return checks, nil
}

// viaTemplate makes the working copy from the set's template, building the template first
// when missing.
func (p *Prepared) viaTemplate(ctx context.Context, rec *Record) error {
	o := p.o
	admin, err := p.srv.connect(ctx)
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	have, err := dbExists(ctx, admin, p.Template)
	if err != nil {
		return err
	}
	var tr templateRecord
	if have {
		ok, err := o.Catalog.GetJSON(BucketTemplates, p.Template, &tr)
		if err != nil {
			return fmt.Errorf("reading the record of template %s: %w", p.Template, err)
		}
		if ok {
			rec.Changes = tr.Changes
		}
		rec.FromTemplate = true
	} else {
		build := p.Template + "_b"
		if err := dropDB(ctx, admin, build); err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := restore.Restore(ctx, p.restoreOptions(build)); err != nil {
			return err
		}
		rec.RestoreSeconds = time.Since(t0).Seconds()
		rec.PIISeconds = p.piiSeconds
		t1 := time.Now()
		err := p.collectPII(ctx, build)
		var ch []Change
		if err == nil {
			ch, err = p.scrub(ctx, build)
		}
		if err == nil {
			_, err = p.verify(ctx, build)
		}
		if err != nil {
			_ = dropDB(context.WithoutCancel(ctx), admin, build)
			return fmt.Errorf("building template %s: %w", p.Template, err)
		}
		rec.ScrubSeconds = time.Since(t1).Seconds()
		rec.Changes = ch
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", pg.QuoteIdent(build), pg.QuoteIdent(p.Template))); err != nil {
			_ = dropDB(context.WithoutCancel(ctx), admin, build)
			return fmt.Errorf("naming template %s: %w", p.Template, err)
		}
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS false", pg.QuoteIdent(p.Template))); err != nil {
			o.Log.Warn("could not forbid connections to the template", "template", p.Template, "err", err)
		}
		tr = templateRecord{Name: p.Template, Target: o.Target.Name, Set: o.Manifest.ID, Created: time.Now().UTC(), Changes: ch, RestoreSec: rec.RestoreSeconds}
		if err := o.Catalog.PutJSON(BucketTemplates, p.Template, tr); err != nil {
			o.Log.Warn("could not record the template", "template", p.Template, "err", err)
		}
		// One template per target: drop those of other sets.
		if err := dropTemplates(ctx, o.Config, o.Catalog, admin, o.Target.Name, p.Template, o.Log); err != nil {
			o.Log.Warn("could not drop older templates", "target", o.Target.Name, "err", err)
		}
	}
	t2 := time.Now()
	var major int
	_ = admin.QueryRow(ctx, `SELECT current_setting('server_version_num')::int / 10000`).Scan(&major)
	strategy := ""
	if major >= 15 {
		strategy = " STRATEGY FILE_COPY"
	}
	q := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s OWNER %s%s", pg.QuoteIdent(p.Temp), pg.QuoteIdent(p.Template), pg.QuoteIdent(p.srv.owner), strategy)
	if _, err := admin.Exec(ctx, q); err != nil {
		return fmt.Errorf("copying template %s: %w", p.Template, err)
	}
	rec.CopySeconds = time.Since(t2).Seconds()
	// Re-apply the (idempotent) scrub: the keep password or custom SQL may have changed since
	// the template was built.
	t3 := time.Now()
	if _, err := p.scrub(ctx, p.Temp); err != nil {
		return err
	}
	rec.ScrubSeconds += time.Since(t3).Seconds()
	return nil
}

// dropTemplates drops the templates of a target except keep ("" = all).
func dropTemplates(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, admin *pgx.Conn, target, keep string, log *slog.Logger) error {
	names := map[string]bool{}
	others := map[string]bool{} // templates recorded for other targets
	err := cat.ListJSON(BucketTemplates, func(key string, raw []byte) error {
		var tr templateRecord
		if jsonUnmarshal(raw, &tr) == nil {
			if tr.Target == target {
				names[key] = true
			} else {
				others[key] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the templates of %s: %w", target, err)
	}
	// The prefix of target "a" also matches the templates of targets "a_b", "a-b", ...
	prefix := templatePrefix(target)
	var longer []string
	if cfg != nil {
		for n := range cfg.Targets {
			if op := templatePrefix(n); n != target && len(op) > len(prefix) && strings.HasPrefix(op, prefix) {
				longer = append(longer, op)
			}
		}
	}
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	if err == nil {
		dbs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	next:
		for _, d := range dbs {
			if others[d] {
				continue
			}
			for _, op := range longer {
				if strings.HasPrefix(d, op) {
					continue next
				}
			}
			names[d] = true
		}
	}
	var errs []error
	for n := range names {
		if n == keep {
			continue
		}
		log.Info("dropping template", "template", n)
		if err := dropDB(ctx, admin, n); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := cat.DeleteKey(BucketTemplates, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// home restores the set's file store and dhis.conf into dir and rewrites dhis.conf.
func (p *Prepared) home(ctx context.Context, dir string, rec *Record) error {
	o := p.o
	if pt, ok := o.Manifest.Parts["files"]; !ok || pt.Snapshot == "" {
		rec.Warnings = append(rec.Warnings, "the set has no file store part: the clone's DHIS2_HOME was not written")
		return os.MkdirAll(dir, 0o750)
	}
	t0 := time.Now()
	ro := p.restoreOptions(p.Temp)
	ro.SkipDatabase, ro.FilesTo = true, dir
	if _, err := restore.Restore(ctx, ro); err != nil {
		return err
	}
	rec.FilesSeconds = time.Since(t0).Seconds()
	if err := os.WriteFile(filepath.Join(dir, HomeMarker), []byte("target="+o.Target.Name+"\nset="+o.Manifest.ID+"\n"), 0o600); err != nil {
		return err
	}
	cp := confPath(dir)
	if _, err := os.Stat(cp); err != nil {
		rec.Warnings = append(rec.Warnings, "the set holds no dhis.conf: write one for the clone by hand")
		return nil
	}
	prod, err := dhisconf.Read(cp)
	if err != nil {
		return err
	}
	enc := prod.Get("encryption.password")
	pw := ""
	if f := o.Target.DatabasePasswordFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading database_password_file: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	ch, err := RewriteConf(cp, p.Target, pw, o.Target.BaseURL)
	if err != nil {
		return err
	}
	rec.Conf = ch
	checks := VerifyConf(cp, p.Target, enc)
	rec.Checks = append(rec.Checks, checks...)
	if f := Failed(checks); len(f) > 0 {
		return &VerifyError{Failed: f}
	}
	return nil
}

// swap renames target → old and temp → target in one transaction, then drops old.
func (p *Prepared) swap(ctx context.Context) error {
	o := p.o
	admin, err := p.srv.connect(ctx)
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	exists, err := dbExists(ctx, admin, p.Database)
	if err != nil {
		return err
	}
	old := oldName(p.Database)
	if exists {
		if o.Terminate {
			if n, err := pg.TerminateOthers(ctx, admin, p.Database); err != nil {
				return err
			} else if n > 0 {
				o.Log.Warn("terminated sessions on the clone (asked to)", "database", p.Database, "sessions", n)
			}
		} else if err := busy(ctx, admin, p.Database); err != nil {
			return err
		}
	}
	tx, err := admin.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if exists {
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", pg.QuoteIdent(p.Database), pg.QuoteIdent(old))); err != nil {
			if s, _ := pg.Sessions(ctx, admin, p.Database); len(s) > 0 {
				return fmt.Errorf("%w: database %s has sessions (%s): stop them", ErrSessions, p.Database, strings.Join(s, ", "))
			}
			return fmt.Errorf("renaming %s out of the way: %w", p.Database, err)
		}
	}
	proc.KillAt("clone:swap")
	if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", pg.QuoteIdent(p.Temp), pg.QuoteIdent(p.Database))); err != nil {
		return fmt.Errorf("renaming the new copy to %s: %w", p.Database, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("swapping %s: %w", p.Database, err)
	}
	if exists {
		if err := dropDB(ctx, admin, old); err != nil {
			o.Log.Warn("the previous clone was renamed but could not be dropped; the next clone drops it", "database", old, "err", err)
		}
	}
	return nil
}

// swapHome puts newDir in place of home; the previous home is removed.
func swapHome(log *slog.Logger, home, newDir string) error {
	old := home + ".dhis2life-old"
	_ = os.RemoveAll(old)
	if _, err := os.Stat(home); err == nil {
		if err := os.Rename(home, old); err != nil {
			return fmt.Errorf("moving the previous clone home %s aside: %w (the new home is %s)", home, err, newDir)
		}
	} else if err := os.MkdirAll(filepath.Dir(home), 0o755); err != nil {
		return err
	}
	if err := os.Rename(newDir, home); err != nil {
		_ = os.Rename(old, home)
		return fmt.Errorf("moving the new clone home into %s: %w", home, err)
	}
	if err := os.RemoveAll(old); err != nil {
		log.Warn("could not remove the previous clone home", "dir", old, "err", err)
	}
	return nil
}

// recoverHome puts back a home moved aside by a run killed between the two renames.
func recoverHome(log *slog.Logger, home string) {
	old := home + ".dhis2life-old"
	if _, err := os.Stat(home); os.IsNotExist(err) {
		if _, err := os.Stat(old); err == nil {
			log.Warn("putting back the clone home of an interrupted run", "dir", home)
			_ = os.Rename(old, home)
		}
	}
}

// replaceable refuses to replace a target database that holds data unless it is the clone
// recorded for this target.
func (p *Prepared) replaceable(ctx context.Context) error {
	if err := destroyable(p.o.Catalog, p.o.Target); err == nil {
		return nil
	}
	c, err := p.srv.connFor(p.Database).Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p','v','m','S') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`).Scan(&n); err != nil {
		return fmt.Errorf("inspecting %s: %w", p.Database, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: database %s of target %s holds %d tables/views/sequences and no clone of it is recorded", ErrNotAClone, p.Database, p.o.Target.Name, n)
	}
	return nil
}
