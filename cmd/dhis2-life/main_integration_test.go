package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// testBinary is the dhis2-life binary built by TestMain: `snapshot` runs its own executable
// as the dump producer, so the CLI is driven as a real process (which also tests exit codes).
var testBinary string

func TestMain(m *testing.M) {
	dir := filepath.Join(os.TempDir(), "dhis2-life-itest-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinary = filepath.Join(dir, fmt.Sprintf("dhis2-life-%d", os.Getpid()))
	out, err := exec.Command("go", "build", "-o", testBinary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building dhis2-life for the integration tests: %v\n%s", err, out)
		os.Exit(1)
	}
	// testenv.Main exits the process: binaries of earlier runs are swept here instead.
	if ents, err := os.ReadDir(dir); err == nil {
		for _, en := range ents {
			if fi, err := en.Info(); err == nil && time.Since(fi.ModTime()) > 2*time.Hour {
				_ = os.Remove(filepath.Join(dir, en.Name()))
			}
		}
	}
	testenv.Main(m)
}

const testInstance = "hmis"

// env is one test's dhis2-life setup: a config file, a state dir, a fresh bucket, and a
// DHIS2 fixture database with its DHIS2_HOME.
type env struct {
	t        *testing.T
	pg       *testenv.Postgres
	s3       *testenv.MinIO
	dir      string
	cfgPath  string
	stateDir string
	repoURL  string
	envFile  string
	passFile string // repository password
	dbPass   string // database password file of the app user
	db       string // the instance's production database
	home     string // its DHIS2_HOME
	gen      string
	restic   string // restic binary named in the config

	// extra lines appended to [instances.hmis] and [repository]
	instanceExtra   []string
	repositoryExtra []string
}

func randName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newEnv starts (or reuses) PostgreSQL and MinIO, builds a fixture of generation gen and
// writes a config for it. gen "" means no fixture (an empty database owned by dhis).
func newEnv(t *testing.T, gen string) *env {
	t.Helper()
	e := &env{t: t, pg: testenv.StartPostgres(t), s3: testenv.StartMinIO(t), dir: t.TempDir(), gen: gen}
	e.restic = testenv.Restic(t)
	e.stateDir = filepath.Join(e.dir, "state")
	e.repoURL = e.s3.ResticRepo(e.s3.Bucket(t, "it-"+strings.ToLower(t.Name()), false), "repo")
	e.envFile = e.s3.EnvFile(t)
	e.passFile = filepath.Join(e.dir, "repository.pass")
	writeFile(t, e.passFile, "correct horse battery staple\n", 0o600)
	e.dbPass = filepath.Join(e.dir, "db.pass")
	writeFile(t, e.dbPass, e.pg.AppPassword+"\n", 0o600)
	e.home = filepath.Join(e.dir, "dhis2-home")
	if gen == "" {
		e.db = e.pg.CreateDB(t, "empty")
		if err := os.MkdirAll(filepath.Join(e.home, "files"), 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		e.db = createFixture(t, e.pg, gen, e.home, 0.001)
	}
	e.writeConfig()
	return e
}

var fixtureMu sync.Mutex

// createFixture builds a DHIS2-shaped database (dropped when the test ends) and its home.
func createFixture(t *testing.T, p *testenv.Postgres, gen, home string, scale float64) string {
	t.Helper()
	name := "fx_" + strings.ReplaceAll(gen, ".", "") + "_" + randName()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	// Creating several fixtures at once on 2 cores is slower than one after the other.
	fixtureMu.Lock()
	res, err := fixture.Create(ctx, p.AdminDSN, name, fixture.Options{Generation: gen, Scale: scale, Home: home, Owner: p.AppUser, Seed: 1})
	fixtureMu.Unlock()
	if err != nil {
		t.Fatalf("fixture %s: %v", gen, err)
	}
	t.Cleanup(func() { dropDB(t, p, name) })
	var rows int64
	for _, n := range res.Tables {
		rows += n
	}
	t.Logf("fixture %s: database %s, %d tables, %d rows, %d files, flyway %s, built in %s",
		gen, name, len(res.Tables), rows, res.Files, res.Flyway, time.Since(t0).Round(time.Millisecond))
	return name
}

func dropDB(t *testing.T, p *testenv.Postgres, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminDSN)
	if err != nil {
		t.Errorf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)); err != nil {
		t.Errorf("drop %s: %v", name, err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func (e *env) productionDSN() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", e.pg.AppUser, e.pg.Port, e.db)
}

// dsnFor returns the app user's DSN for another database on the test server.
func (e *env) dsnFor(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", e.pg.AppUser, e.pg.Port, db)
}

// writeConfig (re)writes the config file from the env's fields.
func (e *env) writeConfig() {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %q\n\n[repository]\nurl = %q\npassword_file = %q\nenv_file = %q\nrestic = %q\ntimeout = \"2m\"\n",
		e.stateDir, e.repoURL, e.passFile, e.envFile, e.restic)
	for _, l := range e.repositoryExtra {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "\n[instances.%s]\ndatabase = %q\ndatabase_password_file = %q\ndhis2_home = %q\nadmin_database = %q\n",
		testInstance, e.productionDSN(), e.dbPass, e.home, e.pg.AdminDSN)
	for _, l := range e.instanceExtra {
		b.WriteString(l + "\n")
	}
	if e.cfgPath == "" {
		e.cfgPath = filepath.Join(e.dir, "dhis2-life.toml")
	}
	writeFile(e.t, e.cfgPath, b.String(), 0o600)
}

// result of one CLI run.
type result struct {
	stdout, stderr string
	code           int
	dur            time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout:\n%s\nstderr:\n%s", r.code, r.dur.Round(time.Millisecond), r.stdout, r.stderr)
}

// run runs the dhis2-life binary with --config and args.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return runCLI(e.t, 4*time.Minute, append([]string{"--config", e.cfgPath}, args...)...)
}

func runCLI(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, testBinary, args...)
	cmd.Env = cliEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), dur: time.Since(t0)}
	if ctx.Err() != nil {
		t.Fatalf("dhis2-life %s did not finish within %s\n%s", strings.Join(args, " "), timeout, r)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running dhis2-life: %v", err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DHIS2_LIFE_CONFIG" || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "RESTIC_") || strings.HasPrefix(k, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// mustRun runs the CLI and fails the test unless it exits 0.
func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("dhis2-life %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// init runs `dhis2-life init`.
func (e *env) init() {
	e.t.Helper()
	e.mustRun("init")
}

// snapshot takes a set and returns its manifest (from `snapshot --json`).
func (e *env) snapshot() *manifest.Manifest {
	e.t.Helper()
	r := e.mustRun("snapshot", "--json")
	var out struct {
		ID       string             `json:"id"`
		Manifest *manifest.Manifest `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.ID == "" || out.Manifest == nil {
		e.t.Fatalf("snapshot --json: %v\n%s", err, r)
	}
	e.t.Logf("snapshot %s in %s: db %d bytes read, %d added packed; files %d bytes",
		out.ID, r.dur.Round(time.Millisecond), out.Manifest.Parts["db"].Bytes, out.Manifest.Parts["db"].AddedPacked, out.Manifest.Parts["files"].Bytes)
	return out.Manifest
}

// snapshotsJSON returns `snapshots --json`.
func (e *env) snapshotsJSON() []manifest.Manifest {
	e.t.Helper()
	r := e.mustRun("snapshots", "--json")
	var ms []manifest.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil {
		e.t.Fatalf("snapshots --json: %v\n%s", err, r)
	}
	return ms
}

// resticSnapshots lists the repository's restic snapshots with the given tags (real restic).
func (e *env) resticSnapshots(tags ...string) []map[string]any {
	e.t.Helper()
	args := []string{"--json", "--no-cache", "snapshots", "--no-lock"}
	if len(tags) > 0 {
		args = append(args, "--tag", strings.Join(tags, ","))
	}
	cmd := exec.Command(testenv.Restic(e.t), args...)
	cmd.Env = append([]string{"RESTIC_REPOSITORY=" + e.repoURL, "RESTIC_PASSWORD_FILE=" + e.passFile, "PATH=/usr/bin:/bin"}, e.s3.Env()...)
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("restic snapshots: %v", err)
	}
	var snaps []map[string]any
	if err := json.Unmarshal(out, &snaps); err != nil {
		e.t.Fatalf("restic snapshots: %v: %s", err, out)
	}
	return snaps
}

// oneLineError asserts a failed run printed exactly one line on stderr (besides log lines)
// that starts with "dhis2-life:" and contains every want (case-insensitive).
func oneLineError(t *testing.T, r result, code int, want ...string) string {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\n%s", r.code, code, r)
	}
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "dhis2-life: ") {
			msgs = append(msgs, l)
		}
	}
	if len(msgs) != 1 {
		t.Fatalf("want exactly one \"dhis2-life: ...\" error line on stderr, got %d\n%s", len(msgs), r)
	}
	low := strings.ToLower(msgs[0])
	for _, w := range want {
		if !strings.Contains(low, strings.ToLower(w)) {
			t.Errorf("error message does not mention %q: %s", w, msgs[0])
		}
	}
	t.Logf("error message: %s", msgs[0])
	return msgs[0]
}

// dbState is an ordered content checksum of every table and the value of every sequence.
type dbState struct {
	tables    map[string]string // schema.name -> md5 of ordered rows
	rows      map[string]int64
	sequences map[string]string // schema.name -> last_value/is_called
	owners    map[string]string // schema.name -> owner (tables and sequences)
}

func connectAdmin(t *testing.T, p *testenv.Postgres, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminDSNFor(db))
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	return conn
}

func readState(t *testing.T, p *testenv.Postgres, db string) dbState {
	t.Helper()
	ctx := context.Background()
	conn := connectAdmin(t, p, db)
	defer conn.Close(ctx)
	st := dbState{tables: map[string]string{}, rows: map[string]int64{}, sequences: map[string]string{}, owners: map[string]string{}}
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p','S') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	type rel struct{ schema, name, kind, owner string }
	var rels []rel
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.schema, &r.name, &r.kind, &r.owner); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		q := pgx.Identifier{r.schema, r.name}.Sanitize()
		key := r.schema + "." + r.name
		st.owners[key] = r.owner
		if r.kind == "S" {
			var last int64
			var called bool
			if err := conn.QueryRow(ctx, "SELECT last_value, is_called FROM "+q).Scan(&last, &called); err != nil {
				t.Fatalf("sequence %s: %v", key, err)
			}
			st.sequences[key] = fmt.Sprintf("%d/%v", last, called)
			continue
		}
		var sum *string
		var n int64
		if err := conn.QueryRow(ctx, "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)), count(*) FROM ONLY "+q+" t").Scan(&sum, &n); err != nil {
			t.Fatalf("checksum of %s: %v", key, err)
		}
		if sum == nil {
			st.tables[key] = "empty"
		} else {
			st.tables[key] = *sum
		}
		st.rows[key] = n
	}
	return st
}

// compareRestored checks the restored database against the source: every non-excluded
// table's content and every sequence equal; excluded tables exist and are empty; every
// table and sequence owned by owner.
func compareRestored(t *testing.T, src, dst dbState, m *manifest.Manifest, owner string) {
	t.Helper()
	excluded := map[string]bool{}
	for _, x := range m.Excluded {
		excluded[x.Schema+"."+x.Name] = true
	}
	if len(excluded) == 0 {
		t.Error("manifest lists no excluded tables: the fixture has analytics and resource tables")
	}
	var excludedWithData int
	compared := 0
	for key, sum := range src.tables {
		got, ok := dst.tables[key]
		if !ok {
			t.Errorf("table %s missing in the restored database", key)
			continue
		}
		if excluded[key] {
			if src.rows[key] > 0 {
				excludedWithData++
			}
			if dst.rows[key] != 0 {
				t.Errorf("excluded table %s has %d rows after restore, want 0", key, dst.rows[key])
			}
			continue
		}
		compared++
		if got != sum {
			t.Errorf("table %s differs: %d rows, source %d rows (checksums %s vs %s)", key, dst.rows[key], src.rows[key], got, sum)
		}
	}
	for key := range dst.tables {
		if _, ok := src.tables[key]; !ok {
			t.Errorf("restored database has table %s the source does not", key)
		}
	}
	if excludedWithData == 0 {
		t.Error("no excluded table had data in the source: the exclusion rules were not exercised")
	}
	// Exactly the regenerable tables are excluded: analytics*, analytics_rs_*, _* resource
	// tables (never metadata such as aggregatedataexchange or analyticstablehook).
	for key := range src.tables {
		n := strings.TrimPrefix(key, "public.")
		regenerable := n == "analytics" || strings.HasPrefix(n, "analytics_") || (strings.HasPrefix(n, "_") && !strings.HasPrefix(n, "_view_"))
		if regenerable != excluded[key] {
			t.Errorf("table %s: excluded %v, want %v", key, excluded[key], regenerable)
		}
	}
	for key, v := range src.sequences {
		if got, ok := dst.sequences[key]; !ok {
			t.Errorf("sequence %s missing after restore", key)
		} else if got != v {
			t.Errorf("sequence %s is %s after restore, source %s", key, got, v)
		}
	}
	var wrongOwner []string
	for key, o := range dst.owners {
		if o != owner {
			wrongOwner = append(wrongOwner, key+" ("+o+")")
		}
	}
	if len(wrongOwner) > 0 {
		sort.Strings(wrongOwner)
		if len(wrongOwner) > 10 {
			wrongOwner = append(wrongOwner[:10], "...")
		}
		t.Errorf("objects not owned by %s: %v", owner, wrongOwner)
	}
	var rows int64
	for _, n := range src.rows {
		rows += n
	}
	t.Logf("compared %d tables (%d rows in the source), %d sequences; %d tables excluded (%d had data)",
		compared, rows, len(src.sequences), len(excluded), excludedWithData)
	if compared < 20 || rows == 0 {
		t.Errorf("suspiciously small comparison: %d tables, %d rows", compared, rows)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// treeSums maps every regular file under dir (relative path) to its content.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}

// compareFiles checks that the restored DHIS2_HOME parts (dhis.conf and files/) equal the source.
func compareFiles(t *testing.T, srcHome, restored string) {
	t.Helper()
	src := treeSums(t, srcHome)
	dst := treeSums(t, restored)
	if len(src) < 2 {
		t.Fatalf("source home %s has only %d files", srcHome, len(src))
	}
	for p, c := range src {
		if p != "dhis.conf" && !strings.HasPrefix(p, "files"+string(filepath.Separator)) {
			continue
		}
		got, ok := dst[p]
		if !ok {
			t.Errorf("file %s not restored into %s (restored: %v)", p, restored, firstKeys(dst, 5))
			continue
		}
		if got != c {
			t.Errorf("restored file %s differs from the source", p)
		}
	}
	for p := range dst {
		if _, ok := src[p]; !ok {
			t.Errorf("restored %s which the source does not have", p)
		}
	}
	t.Logf("file store: %d files compared", len(src))
}

func firstKeys(m map[string]string, n int) []string {
	k := sortedKeys(m)
	if len(k) > n {
		k = k[:n]
	}
	return k
}

func dbExists(t *testing.T, p *testenv.Postgres, name string) bool {
	t.Helper()
	conn := connectAdmin(t, p, "postgres")
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// repoRoot is the module root (for testdata/).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
