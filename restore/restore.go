package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhis2"
	"github.com/dhis2-life/dhis2-life/internal/dumpfmt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// Options configure a restore.
type Options struct {
	Config   *config.Config
	Repo     *restic.Repo
	Log      *slog.Logger
	Manifest *manifest.Manifest

	// Target is the database to restore into (created when missing).
	Target pg.Conn
	// Admin is a superuser connection on the target's server (its database name is
	// ignored); nil means Target's own role does everything.
	Admin *pg.Conn
	// Owner is the role that will own every restored object ("" = Target's user).
	Owner string
	// FilesTo receives the file store part ("" = skip files).
	FilesTo string
	// Force replaces a non-empty target database / files directory.
	Force bool
	// Terminate ends other sessions on the target instead of refusing.
	Terminate bool
	// Jobs is the parallelism of index and constraint builds.
	Jobs int
	// SkipDatabase restores only the files.
	SkipDatabase bool
	// SplitMinBytes is the stream size from which a table is loaded by Jobs connections at
	// once (0 = 64 MiB).
	SplitMinBytes int64
	// SkipAnalyze leaves out the ANALYZE after the load (drills: nobody queries the copy).
	SkipAnalyze bool
	// Progress receives bytes read of the database stream.
	Progress func(done, total int64)
	// DBStream, when set, opens the database stream instead of `restic dump` of the db part
	// (restore from an archive, without the repository).
	DBStream func(ctx context.Context) (io.ReadCloser, error)
	// FilesFrom, when set, opens the file store part as a tar stream (as `restic dump` writes
	// it) that is extracted into FilesTo instead of `restic restore`.
	FilesFrom func(ctx context.Context) (io.ReadCloser, error)
	// AfterData, when set, runs on the load's connection (as the owner) once every table is
	// loaded and the sequences are set, before post-data: the tables have no indexes,
	// constraints or triggers yet (clones rewrite personal data there). Its error fails the
	// restore. Every table's builds wait for it, except those it releases: release("schema.name")
	// says the hook will not write that table any more, so its indexes may be built meanwhile.
	AfterData func(ctx context.Context, conn *pgx.Conn, release func(table string)) error
}

// Result describes a finished restore.
type Result struct {
	Set             string  `json:"set"`
	Database        string  `json:"database"`
	Created         bool    `json:"created"`
	Tables          int     `json:"tables"`
	Rows            int64   `json:"rows"`
	Sequences       int     `json:"sequences"`
	FilesTo         string  `json:"files_to,omitempty"`
	Seconds         float64 `json:"seconds"`
	PreDataSeconds  float64 `json:"pre_data_seconds"`
	DataSeconds     float64 `json:"data_seconds"`
	PostDataSeconds float64 `json:"post_data_seconds"`
	FilesSeconds    float64 `json:"files_seconds"`
}

// ErrUnsafeTarget is returned for targets that must never be written.
var ErrUnsafeTarget = errors.New("unsafe restore target")

// ErrNotEmpty is returned when the target database holds data and Force is not set.
var ErrNotEmpty = errors.New("target is not empty")

// ErrDirNotEmpty is returned when the files directory holds files and Force is not set; it
// wraps ErrNotEmpty.
var ErrDirNotEmpty = fmt.Errorf("files directory: %w", ErrNotEmpty)

// ErrSessions is returned when the target database has other sessions and Terminate is not
// set (a database in use, not a lock: see snapshot.ErrBusy for that).
var ErrSessions = errors.New("target database has other sessions")

// GuardProduction refuses a target that resolves to any configured instance's database.
func GuardProduction(ctx context.Context, cfg *config.Config, target pg.Conn) error {
	te, err := target.Resolve(ctx)
	if err != nil {
		return err
	}
	te = withLocalAliases(te)
	for _, name := range cfg.InstanceNames() {
		in := cfg.Instances[name]
		pe, err := (pg.Conn{DSN: in.Database}).Resolve(ctx)
		if err != nil {
			continue
		}
		if te.Same(withLocalAliases(pe)) {
			return fmt.Errorf("%w: %s is the production database of instance %s; restore into another database and switch over deliberately", ErrUnsafeTarget, target.Describe(), name)
		}
	}
	return nil
}

// withLocalAliases adds the loopback addresses to an endpoint that names one of this host's
// own addresses: postgres://…@192.0.2.2/dhis2 reaches the same server as 127.0.0.1 does.
func withLocalAliases(ep pg.Endpoint) pg.Endpoint {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ep
	}
	local := map[string]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			local[ipn.IP.String()] = true
		}
	}
	for _, h := range ep.Hosts {
		if ip := net.ParseIP(h); ip != nil && local[ip.String()] {
			ep.Hosts = append(append([]string{}, ep.Hosts...), "127.0.0.1", "::1")
			break
		}
	}
	return ep
}

func (o *Options) adminFor(db string) pg.Conn {
	if o.Admin != nil {
		return o.Admin.WithDatabase(db)
	}
	return o.Target.WithDatabase(db)
}

func (o *Options) owner() string {
	if o.Owner != "" {
		return o.Owner
	}
	return o.Target.User()
}

// Restore restores the set described by o.Manifest. On failure after it created or
// replaced the target database, it drops the half-restored database and says so; what it
// wrote to FilesTo (only what was not there before) is removed, so the same command can run
// again.
func Restore(ctx context.Context, o Options) (*Result, error) {
	var undo func() string
	if o.FilesTo != "" {
		undo = noteFilesTarget(o.FilesTo)
	}
	res, err := restoreSet(ctx, o)
	if err != nil && undo != nil {
		if msg := undo(); msg != "" {
			err = fmt.Errorf("%w (%s)", err, msg)
		}
	}
	return res, err
}

// noteFilesTarget remembers what dir holds now and returns a function that removes what was
// added since (the whole directory when this run created it) and says what it did.
func noteFilesTarget(dir string) func() string {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return func() string {
			if _, err := os.Lstat(dir); err != nil {
				return ""
			}
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Sprintf("the files restored to %s could NOT be removed: %v", dir, err)
			}
			return fmt.Sprintf("the files restored to %s were removed", dir)
		}
	}
	if err != nil {
		return nil
	}
	before := map[string]bool{}
	for _, e := range ents {
		before[e.Name()] = true
	}
	return func() string {
		now, err := os.ReadDir(dir)
		if err != nil {
			return ""
		}
		n := 0
		var errs []error
		for _, e := range now {
			if before[e.Name()] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
		if len(errs) > 0 {
			return fmt.Sprintf("what this restore wrote to %s could NOT all be removed: %v", dir, errors.Join(errs...))
		}
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("the %d entries this restore wrote to %s were removed", n, dir)
	}
}

func restoreSet(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	m := o.Manifest
	res := &Result{Set: m.ID, Database: o.Target.Database()}
	if o.Jobs < 1 {
		o.Jobs = 2
	}
	if err := GuardProduction(ctx, o.Config, o.Target); err != nil {
		return nil, err
	}
	if o.FilesTo != "" {
		if err := checkFilesPart(&o); err != nil {
			return nil, err
		}
		if err := checkFilesTarget(o.FilesTo, o.Force); err != nil {
			return nil, err
		}
	}
	// The file store restores while the database loads (restic reads other data and the
	// work is I/O), but only once the database target has passed its guards: a refused
	// restore writes nothing.
	filesDone := make(chan error, 1)
	startFiles := func() {
		if o.FilesTo == "" {
			filesDone <- nil
			return
		}
		go func() {
			t := time.Now()
			err := restoreFiles(ctx, &o)
			res.FilesSeconds = time.Since(t).Seconds()
			filesDone <- err
		}()
	}
	if o.SkipDatabase {
		startFiles()
	} else {
		// The stream starts now: restic's start (about half a second of key derivation and
		// index loading) overlaps the creation of the database; it waits on the pipe.
		stream, err := openStream(ctx, &o)
		if err != nil {
			return nil, err
		}
		consumed := false
		defer func() {
			if !consumed {
				stream.abort(context.Canceled)
			}
		}()
		created, err := prepareDatabase(ctx, &o)
		// A killed run's CREATE DATABASE can still be finishing in its server session (the
		// server notices the dead client late): wait for it, then look again.
		for i := 0; i < 10 && err != nil && !created && isDuplicateDatabase(err) && ctx.Err() == nil; i++ {
			time.Sleep(time.Second)
			created, err = prepareDatabase(ctx, &o)
		}
		if err != nil {
			if created {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				if derr := dropDatabase(dctx, &o, res.Database); derr != nil {
					return nil, fmt.Errorf("%w (the database %s it created could NOT be dropped: %v)", err, res.Database, derr)
				}
				return nil, fmt.Errorf("%w (the database %s it created was dropped)", err, res.Database)
			}
			return nil, err
		}
		res.Created = created
		proc.KillAt("restore:database-created")
		startFiles()
		consumed = true
		if err := restoreDatabase(ctx, &o, res, stream); err != nil {
			<-filesDone
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if diskHint(err.Error()) != "" {
				freeSpace(dctx, &o, res.Database)
			}
			if derr := dropDatabase(dctx, &o, res.Database); derr != nil {
				return nil, fmt.Errorf("restoring %s: %w (the half-restored database %s could NOT be dropped: %v; drop it by hand)", m.ID, err, res.Database, derr)
			}
			return nil, fmt.Errorf("restoring %s: %w (the half-restored database %s was dropped)", m.ID, err, res.Database)
		}
	}
	if !o.SkipDatabase {
		proc.KillAt("restore:database-loaded")
	}
	if err := <-filesDone; err != nil {
		return nil, err
	}
	if o.FilesTo != "" {
		res.FilesTo = o.FilesTo
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// prepareDatabase creates the target database (or replaces it with Force) and its extensions.
func prepareDatabase(ctx context.Context, o *Options) (bool, error) {
	db := o.Target.Database()
	admin, err := o.adminFor("postgres").Connect(ctx)
	if err != nil {
		return false, fmt.Errorf("connecting to the target server to create %s: %w", db, err)
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return false, fmt.Errorf("looking up database %s: %w", db, err)
	}
	if exists {
		n, err := countRelations(ctx, o.adminFor(db))
		if err != nil {
			return false, err
		}
		if n > 0 && !o.Force {
			return false, fmt.Errorf("%w: database %s holds %d tables/views/sequences", ErrNotEmpty, db, n)
		}
		// countRelations' own connection may linger for a moment, and sessions of a run
		// killed a moment ago end once their server process notices: give them a few
		// seconds before refusing.
		sessions, err := pg.SettledSessions(ctx, admin, db, 5*time.Second)
		if err != nil {
			return false, err
		}
		if len(sessions) > 0 {
			if !o.Terminate {
				return false, fmt.Errorf("%w: database %s has %d other sessions (%s): stop them", ErrSessions, db, len(sessions), strings.Join(sessions, ", "))
			}
			if _, err := pg.TerminateOthers(ctx, admin, db); err != nil {
				return false, err
			}
		}
		if n > 0 {
			o.Log.Warn("replacing non-empty database (forced)", "database", db, "relations", n)
			if _, err := admin.Exec(ctx, "DROP DATABASE "+pg.QuoteIdent(db)); err != nil {
				return false, fmt.Errorf("dropping %s to replace it: %w", db, err)
			}
			exists = false
		}
	}
	if !exists {
		q := fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8'", pg.QuoteIdent(db), pg.QuoteIdent(o.owner()))
		if _, err := admin.Exec(ctx, q); err != nil {
			return false, fmt.Errorf("creating database %s (needs CREATEDB or admin_database): %w", db, err)
		}
	}
	// Extensions first: DHIS2 needs postgis, pg_trgm and btree_gin, and postgis is not a
	// trusted extension, so this uses the admin connection.
	created := !exists
	conn, err := o.adminFor(db).Connect(ctx)
	if err != nil {
		return created, err
	}
	defer conn.Close(context.Background())
	exts := map[string]string{}
	for _, e := range o.Manifest.Extensions {
		exts[e.Name] = e.Schema
	}
	if o.Manifest.DHIS2.Flyway != "" {
		for _, e := range dhis2.RequiredExtensions {
			if _, ok := exts[e]; !ok {
				exts[e] = "public"
			}
		}
	}
	for name, schema := range exts {
		if schema == "" {
			schema = "public"
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s", pg.QuoteIdent(schema))); err != nil {
			return created, fmt.Errorf("creating schema %s: %w", schema, err)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE EXTENSION IF NOT EXISTS %s WITH SCHEMA %s", pg.QuoteIdent(name), pg.QuoteIdent(schema))); err != nil {
			return created, fmt.Errorf("creating extension %s in %s (needs a superuser: set admin_database; for postgis install postgresql-%d-postgis-3): %w",
				name, o.Target.Database(), o.Manifest.Server.VersionNum/10000, err)
		}
	}
	if _, err := conn.Exec(ctx, "ALTER SCHEMA public OWNER TO "+pg.QuoteIdent(o.owner())); err != nil {
		o.Log.Debug("could not give schema public to the owner", "err", err)
	}
	// The extensions' own schemas are left out of pg_restore (they exist now): give them to
	// the owner as pg_restore --no-owner would have.
	for _, schema := range exts {
		if schema != "" && schema != "public" && schema != "pg_catalog" {
			if _, err := conn.Exec(ctx, "ALTER SCHEMA "+pg.QuoteIdent(schema)+" OWNER TO "+pg.QuoteIdent(o.owner())); err != nil {
				o.Log.Debug("could not give an extension schema to the owner", "schema", schema, "err", err)
			}
		}
	}
	return created, nil
}

// isDuplicateDatabase reports a CREATE DATABASE that lost a race with another session
// creating the same database.
func isDuplicateDatabase(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P04")
}

// sweepTemp removes what killed runs left in the temp dir (spools, drill copies of the file
// store with dhis.conf, passfiles).
func sweepTemp(log *slog.Logger, dir string) {
	gone, err := proc.Sweep(dir, proc.TempKinds...)
	if err != nil {
		log.Warn("could not remove leftovers of killed runs", "dir", dir, "err", err)
	} else if len(gone) > 0 {
		log.Info("removed leftovers of killed runs", "paths", gone)
	}
}

func countRelations(ctx context.Context, c pg.Conn) (int, error) {
	conn, err := c.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("inspecting %s: %w", c.Describe(), err)
	}
	return n, nil
}

func dropDatabase(ctx context.Context, o *Options, db string) error {
	// The failure that ends a restore can take the server down with it (a disk that fills
	// while it writes WAL makes it restart and recover): try again until ctx ends.
	for {
		err := dropDatabaseOnce(ctx, o, db)
		if err == nil || ctx.Err() != nil {
			return err
		}
		o.Log.Debug("dropping the half-restored database failed; trying again", "database", db, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// freeSpace drops the half-restored database's tables, largest first, each in its own
// transaction, before the database itself is dropped after the server's disk filled up.
// DROP DATABASE makes PostgreSQL (15) take a checkpoint before it removes any file, and a
// checkpoint that cannot write its small state files on a full disk PANICs: the whole
// server restarts and, still without room, may not come back. DROP TABLE only marks
// catalogue rows deleted and gives a table's space back when it commits, so the
// checkpoint then has room. Errors are logged only: dropDatabase follows either way.
func freeSpace(ctx context.Context, o *Options, db string) {
	conn, err := o.Target.Connect(ctx)
	if err != nil {
		o.Log.Debug("freeing space before the drop: cannot connect", "database", db, "err", err)
		return
	}
	defer conn.Close(context.Background())
	tables, err := pg.Tables(ctx, conn)
	if err != nil {
		o.Log.Debug("freeing space before the drop", "database", db, "err", err)
		return
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].Bytes > tables[j].Bytes })
	dropped := 0
	for _, t := range tables {
		if ctx.Err() != nil {
			break
		}
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+t.Qualified()+" CASCADE"); err != nil {
			o.Log.Debug("freeing space before the drop", "table", t.Key(), "err", err)
			continue
		}
		dropped++
	}
	o.Log.Info("dropped the half-restored tables to give the full disk room before dropping the database", "database", db, "tables", dropped)
}

func dropDatabaseOnce(ctx context.Context, o *Options, db string) error {
	admin, err := o.adminFor("postgres").Connect(ctx)
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	_, _ = pg.TerminateOthers(ctx, admin, db)
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(db))
	return err
}

// restoreDatabase streams the database part: schema → pre-data, table data, sequences,
// post-data with Jobs workers.
func restoreDatabase(ctx context.Context, o *Options, res *Result, stream *dbStream) error {
	total := o.Manifest.Parts["db"].Bytes
	return stream.consume(func(r io.Reader) error {
		return consumeStream(ctx, o, res, &progressReader{r: r, total: total, fn: o.Progress})
	})
}

type progressReader struct {
	r           io.Reader
	done, total int64
	fn          func(done, total int64)
	last        time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil && (time.Since(p.last) > 200*time.Millisecond || err != nil) {
		p.last = time.Now()
		p.fn(p.done, p.total)
	}
	return n, err
}

func consumeStream(ctx context.Context, o *Options, res *Result, r io.Reader) error {
	sr, err := dumpfmt.NewReader(r)
	if err != nil {
		return err
	}
	tmpDir := o.Config.Tuning.TempDir
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	sweepTemp(o.Log, tmpDir)
	work, err := os.MkdirTemp(tmpDir, proc.TempName("restore"))
	if err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(work)

	// Section 1: schema archive to a temp file (pg_restore -j needs a seekable file; it
	// holds definitions only, a few MB for DHIS2).
	schemaFile, err := saveSchema(sr, work)
	if err != nil {
		return err
	}
	conn := o.adminFor(res.Database)
	tool, cleanup, err := pg.ToolFor("pg_restore", targetMajor(ctx, conn, o.Manifest), conn, work)
	if err != nil {
		return err
	}
	defer cleanup()
	base, err := restoreArgs(ctx, o, tool, schemaFile, work)
	if err != nil {
		return err
	}
	t := time.Now()
	if err := runTool(ctx, tool, append(base, "--section=pre-data", schemaFile)...); err != nil {
		return fmt.Errorf("restoring schema (pre-data): %w", err)
	}
	res.PreDataSeconds = time.Since(t).Seconds()

	// The post-data entries (indexes, constraints, triggers, …) as SQL, one item each.
	script, err := postDataScript(ctx, tool, base, schemaFile)
	if err != nil {
		return err
	}
	preamble, items := parsePostData(script)

	// Section 2..n: table data, two tables at a time (see loader), then the sequences.
	// Meanwhile each loaded table's indexes and unique keys are built, and the table
	// analyzed, on connections of their own (see postBuilder).
	t = time.Now()
	ld, err := newStreamLoader(ctx, o, conn, work)
	if err != nil {
		return err
	}
	defer ld.close()
	pb, err := newPostBuilder(ctx, conn, postSetup(o), preamble, o.Jobs)
	if err != nil {
		return err
	}
	defer pb.close()
	late := schedulePostData(o, pb, items, autovacuumOn(ctx, ld.direct))
	ld.loaded, ld.log, pb.log = pb.loaded, o.Log, o.Log
	held := &heldTables{}
	if o.AfterData != nil {
		// The hook rewrites tables while they have no indexes, keys or triggers: every
		// table's builds wait for it (the big tables still load on several connections).
		ld.loaded = held.add
	}
	pb.onFail = ld.cancel // a failed build stops the load: the restore has failed
	if err := loadTables(ctx, o, res, sr, ld); err != nil {
		pb.fail(err)
		return err
	}
	dc := ld.direct
	if err := setSequences(ctx, dc, o.Manifest, res); err != nil {
		pb.fail(err)
		return err
	}
	res.DataSeconds = time.Since(t).Seconds()
	o.Log.Debug("data loaded", "seconds", res.DataSeconds)
	if o.AfterData != nil {
		t := time.Now()
		release := func(table string) {
			if held.remove(table) {
				pb.loaded(table)
			}
		}
		if err := o.AfterData(ctx, dc, release); err != nil {
			pb.fail(err)
			return err
		}
		o.Log.Debug("after-data hook done", "seconds", time.Since(t).Seconds())
		for _, table := range held.take() {
			pb.loaded(table)
		}
	}

	// What is still building, then foreign keys, triggers and the rest.
	t = time.Now()
	pb.setLimit(o.Jobs)
	pb.add(pb.unloaded()...)
	if err := runLate(pb, late, inStream(o.Manifest)); err != nil {
		return fmt.Errorf("building indexes and constraints (post-data): %w", err)
	}
	res.PostDataSeconds = time.Since(t).Seconds()
	finishLoad(ctx, o, dc)
	return nil
}

func allIn(set map[string]bool, keys []string) bool {
	for _, k := range keys {
		if !set[k] {
			return false
		}
	}
	return true
}

// postDataScript is the SQL of the archive's post-data section as pg_restore prints it
// (with the same list, owner and privilege options as the pre-data restore).
func postDataScript(ctx context.Context, tool *pg.Tool, base []string, schemaFile string) (string, error) {
	args := append(append([]string{"-f", "-"}, base...), "--section=post-data", schemaFile)
	cmd := tool.Command(ctx, args...)
	cmd.Args = append([]string{tool.Path}, args...) // no connection arguments
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("reading the schema archive's indexes and constraints: %w", exitDetail(err))
	}
	return string(out), nil
}

// postSetup is the session of the index and constraint builds. maintenance_work_mem stays the
// server's (pg_restore's behaviour): raised to 256 MB for every build, the large tables' index
// builds (large in-memory sorts beside the loads) took longer on a busy 2-core machine than
// with the server's 64 MB (scale 4: 48.1 s against 44.3 s, mean of 5 runs; without parallel
// maintenance workers 256 MB was no better).
func postSetup(o *Options) []string {
	setup := []string{"SET synchronous_commit = off", "SET statement_timeout = 0"}
	if o.Admin != nil {
		setup = append(setup, "SET ROLE "+pg.QuoteIdent(o.owner()))
	}
	return setup
}

// schedulePostData hands the builder what runs as soon as a table is loaded (its indexes,
// primary and unique keys and checks, then ANALYZE) and returns the rest, which runs after
// all the data (foreign keys, triggers, attachments, comments, what no table is known for).
//
// The big tables (those loaded on several connections) are left to autovacuum's ANALYZE,
// which follows within a minute or two, when it is on: their index builds have already set
// their row and page counts, and their ANALYZE would sit at the end of the restore, where
// nothing else runs beside it.
func schedulePostData(o *Options, pb *postBuilder, items []*postItem, autovacuum bool) []*postItem {
	inStream := inStream(o.Manifest)
	// The keys of the big tables build as unique indexes beside their other indexes; every
	// item weighs what waits on it (size: the tables' stream bytes); ANALYZE items join the
	// caller's (whose slice stays as it was).
	big := map[string]bool{}
	size := map[string]int64{}
	items = items[:len(items):len(items)]
	for _, tb := range o.Manifest.Tables {
		key := tb.Schema + "." + tb.Name
		size[key] = tb.StreamBytes
		split := o.Jobs > 1 && tb.StreamBytes >= splitMin(o)
		if split {
			big[key] = true
		}
		if !o.SkipAnalyze && !(autovacuum && split) {
			items = append(items, &postItem{name: tb.Name, kind: "ANALYZE", table: key, sql: "ANALYZE " + pg.QualifiedName(tb.Schema, tb.Name)})
		}
	}
	attached := attachedIndexes(items)
	weigh(items, size)
	var late []*postItem
	for _, it := range items {
		switch {
		case big[it.table] && it.kind == "CONSTRAINT":
			split := keyAsIndex(it, attached)
			for _, s := range split {
				s.weight = it.weight
			}
			pb.wait(it.table, split...)
		case it.kind == "ANALYZE" || inStream[it.table] && (it.kind == "INDEX" || it.kind == "CONSTRAINT" || it.kind == "CHECK CONSTRAINT"):
			pb.wait(it.table, it)
		default:
			late = append(late, it)
		}
	}
	return late
}

// splitMin is the stream size from which a table loads on several connections.
func splitMin(o *Options) int64 {
	if o.SplitMinBytes > 0 {
		return o.SplitMinBytes
	}
	return splitMinBytes
}

// autovacuumOn reports whether the target server's autovacuum will analyze the restored
// tables (autovacuum and track_counts on).
func autovacuumOn(ctx context.Context, c *pgx.Conn) bool {
	var on bool
	err := c.QueryRow(ctx, "SELECT current_setting('autovacuum')::bool AND current_setting('track_counts')::bool").Scan(&on)
	return err == nil && on
}

// inStream is the set of tables ("schema.name") whose rows the stream holds.
func inStream(m *manifest.Manifest) map[string]bool {
	in := map[string]bool{}
	for _, tb := range m.Tables {
		in[tb.Schema+"."+tb.Name] = true
	}
	return in
}

// runLate runs the items left for after the data. Foreign keys between loaded tables (each
// a scan of its table) run in parallel as soon as both tables' keys are built, beside what
// is still building; then the rest in archive order (triggers, attachments, what belongs to
// tables without data such as partitioned parents), the foreign keys that involve those,
// and the comments last.
func runLate(pb *postBuilder, late []*postItem, inStream map[string]bool) error {
	var early, first, fks, last []*postItem
	for _, it := range late {
		switch {
		case it.kind == "FK CONSTRAINT" && it.table != "" && allIn(inStream, pb.tables(it)):
			early = append(early, it)
		case it.kind == "FK CONSTRAINT":
			fks = append(fks, it)
		case strings.HasPrefix(it.kind, "COMMENT") || strings.HasPrefix(it.kind, "SECURITY LABEL"):
			last = append(last, it)
		default:
			first = append(first, it)
		}
	}
	pb.add(early...)
	if err := pb.drain(); err != nil {
		return err
	}
	if err := pb.runInOrder(first); err != nil {
		return err
	}
	pb.add(fks...)
	if err := pb.drain(); err != nil {
		return err
	}
	return pb.runInOrder(last)
}

// targetMajor is the target server's major version (the dumped server's when the target
// cannot be asked), which picks the pg_restore to run.
func targetMajor(ctx context.Context, conn pg.Conn, m *manifest.Manifest) int {
	major := m.Server.VersionNum / 10000
	if c, err := conn.Connect(ctx); err == nil {
		if n, _, err := pg.ServerVersion(ctx, c); err == nil {
			major = n / 10000
		}
		c.Close(context.Background())
	}
	return major
}

// restoreArgs are pg_restore's arguments for both schema sections: the archive's table of
// contents without what prepareDatabase made, no owners or privileges of the source, and
// the owner's role when a superuser restores.
func restoreArgs(ctx context.Context, o *Options, tool *pg.Tool, schemaFile, work string) ([]string, error) {
	// Extension schemas exist already (prepareDatabase creates them before the extensions).
	extSchemas := map[string]bool{}
	for _, e := range o.Manifest.Extensions {
		if e.Schema != "" && e.Schema != "public" {
			extSchemas[e.Schema] = true
		}
	}
	listFile, err := tocList(ctx, tool, schemaFile, work, extSchemas)
	if err != nil {
		return nil, err
	}
	base := []string{"--no-owner", "--no-privileges", "--exit-on-error", "--use-list=" + listFile}
	if o.Admin != nil {
		base = append(base, "--role="+o.owner())
	}
	return base, nil
}

// newStreamLoader opens the loader of the table sections with the session the stream's
// data needs.
func newStreamLoader(ctx context.Context, o *Options, conn pg.Conn, work string) (*loader, error) {
	setup := []string{"SET client_encoding = 'UTF8'", "SET DateStyle = ISO", "SET IntervalStyle = postgres",
		"SET synchronous_commit = off", "SET statement_timeout = 0", "SET row_security = off"}
	if o.Admin != nil {
		setup = append(setup, "SET ROLE "+pg.QuoteIdent(o.owner()))
	}
	want, size := map[string]int64{}, map[string]int64{}
	for _, tb := range o.Manifest.Tables {
		want[tb.Schema+"."+tb.Name] = tb.Rows
		size[tb.Schema+"."+tb.Name] = tb.StreamBytes
	}
	l, err := newLoader(ctx, conn, setup, work, o.Jobs-1, int64(o.Config.Tuning.RestoreSpoolMB)<<20, want, size)
	if l != nil {
		l.parts, l.splitMin = o.Jobs, splitMin(o)
	}
	return l, err
}

// loadTables hands every table section to the loader, waits for it, and checks that the
// stream was complete: a trailer, and as many tables as the manifest lists.
func loadTables(ctx context.Context, o *Options, res *Result, sr *dumpfmt.Reader, ld *loader) error {
	fail := func(err error) error {
		ld.cancel(err)
		if werr := ld.Wait(); werr != nil {
			return werr
		}
		return err
	}
	var trailerSeen bool
	for {
		h, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		switch h.Kind {
		case dumpfmt.KindTable:
			if err := ld.Table(h, sr); err != nil {
				return fail(err)
			}
		case dumpfmt.KindTrailer:
			trailerSeen = true
		default:
			return fail(fmt.Errorf("%w: unexpected section %q", dumpfmt.ErrCorrupt, h.Kind))
		}
	}
	if err := ld.Wait(); err != nil {
		return err
	}
	res.Tables, res.Rows = ld.tables, ld.rows
	if !trailerSeen {
		return fmt.Errorf("%w: stream has no trailer", dumpfmt.ErrCorrupt)
	}
	if res.Tables != len(o.Manifest.Tables) {
		return fmt.Errorf("%w: stream holds %d tables, manifest lists %d", dumpfmt.ErrCorrupt, res.Tables, len(o.Manifest.Tables))
	}
	return nil
}

// setSequences sets every sequence as the manifest recorded it.
func setSequences(ctx context.Context, dc *pgx.Conn, m *manifest.Manifest, res *Result) error {
	for _, s := range m.Sequences {
		if _, err := dc.Exec(ctx, "SELECT pg_catalog.setval($1, $2, $3)", pg.QualifiedName(s.Schema, s.Name), s.LastValue, s.IsCalled); err != nil {
			return fmt.Errorf("setting sequence %s.%s: %w", s.Schema, s.Name, err)
		}
		res.Sequences++
	}
	return nil
}

// finishLoad fills the materialized views, which pg_dump --schema-only creates WITH NO
// DATA (the tables were analyzed as they were built); failures are warnings.
func finishLoad(ctx context.Context, o *Options, dc *pgx.Conn) {
	if err := refreshMatviews(ctx, dc, !o.SkipAnalyze); err != nil {
		o.Log.Warn("could not refresh materialized views", "err", err)
	}
}

var skipTOC = regexp.MustCompile(`^\d+; \d+ \d+ (EXTENSION|COMMENT - EXTENSION|SCHEMA - public|COMMENT - SCHEMA public) `)

// tocList writes pg_restore's table of contents without the entries we handle ourselves
// (extensions, created first by a superuser; the public schema and the extensions' schemas).
func tocList(ctx context.Context, tool *pg.Tool, archive, dir string, skipSchemas map[string]bool) (string, error) {
	cmd := tool.Command(ctx, "--list", archive)
	cmd.Args = []string{tool.Path, "--list", archive} // no connection arguments
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("reading the schema archive's contents: %w", exitDetail(err))
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if skipTOC.MatchString(l) || skipSchemaEntry(l, skipSchemas) {
			continue
		}
		keep = append(keep, l)
	}
	p := filepath.Join(dir, "toc.list")
	if err := os.WriteFile(p, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		return "", fmt.Errorf("writing restore list: %w", err)
	}
	return p, nil
}

var schemaTOC = regexp.MustCompile(`^\d+; \d+ \d+ SCHEMA - (.+) \S+$`)

// skipSchemaEntry reports whether a TOC line creates one of the schemas (name, then owner).
func skipSchemaEntry(line string, schemas map[string]bool) bool {
	sm := schemaTOC.FindStringSubmatch(strings.TrimRight(line, " "))
	return sm != nil && schemas[sm[1]]
}

func runTool(ctx context.Context, t *pg.Tool, args ...string) error {
	cmd := t.Command(ctx, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := toolError(string(out))
		return fmt.Errorf("%s: %v: %s%s", filepath.Base(t.Path), err, msg, diskHint(msg))
	}
	return nil
}

// toolError picks the line that says what went wrong: the server's own error (with -j,
// pg_restore's last word is often only "a worker process died unexpectedly"), else
// pg_restore's first error line, else the last line.
func toolError(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if i := strings.Index(l, "ERROR:"); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	for _, l := range lines {
		if i := strings.Index(l, "pg_restore: error:"); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

func checkFilesTarget(dir string, force bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("checking files directory %s: %w", dir, err)
	}
	if len(ents) > 0 && !force {
		return fmt.Errorf("%w: %s holds files; choose an empty directory", ErrDirNotEmpty, dir)
	}
	return nil
}

// checkFilesPart fails when the set has no file store part to restore.
func checkFilesPart(o *Options) error {
	if o.FilesFrom != nil {
		return nil
	}
	p, ok := o.Manifest.Parts["files"]
	if !ok || p.Snapshot == "" {
		reason := "no file store part"
		if ok && p.Skipped != "" {
			reason = p.Skipped
		}
		return fmt.Errorf("set %s has no files to restore (%s): leave out --files-to", o.Manifest.ID, reason)
	}
	return nil
}

func restoreFiles(ctx context.Context, o *Options) error {
	if o.FilesFrom != nil {
		return extractFiles(ctx, o)
	}
	p := o.Manifest.Parts["files"]
	if err := os.MkdirAll(o.FilesTo, 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", o.FilesTo, err)
	}
	if err := o.Repo.Restore(ctx, p.Snapshot, o.FilesTo, nil); err != nil {
		return fmt.Errorf("restoring files to %s: %w", o.FilesTo, err)
	}
	return nil
}

// refreshMatviews populates every materialized view left unpopulated by the restore (and
// analyzes it).
func refreshMatviews(ctx context.Context, c *pgx.Conn, analyze bool) error {
	rows, err := c.Query(ctx, `SELECT schemaname, matviewname FROM pg_matviews WHERE NOT ispopulated ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s, n string
		err := r.Scan(&s, &n)
		return pg.QualifiedName(s, n), err
	})
	if err != nil {
		return err
	}
	var failed []string
	for _, n := range names {
		if _, err := c.Exec(ctx, "REFRESH MATERIALIZED VIEW "+n); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", n, err))
		} else if analyze {
			if _, err := c.Exec(ctx, "ANALYZE "+n); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", n, err))
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

// diskHint says plainly when a PostgreSQL error means the server's disk is full (it reports
// "No space left on device" or, for a partial write, "could not extend file ... wrote only").
func diskHint(msg string) string {
	if strings.Contains(msg, "No space left on device") || strings.Contains(msg, "could not extend file") {
		return " (the target server is out of disk space)"
	}
	return ""
}

// heldTables collects the tables whose builds wait for Options.AfterData (the loader
// reports loaded tables from several goroutines).
type heldTables struct {
	mu     sync.Mutex
	tables []string
}

func (h *heldTables) add(table string) {
	h.mu.Lock()
	h.tables = append(h.tables, table)
	h.mu.Unlock()
}

// remove takes table out of the held ones and says whether it was held.
func (h *heldTables) remove(table string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, t := range h.tables {
		if t == table {
			h.tables = append(h.tables[:i], h.tables[i+1:]...)
			return true
		}
	}
	return false
}

func (h *heldTables) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.tables
	h.tables = nil
	return t
}
