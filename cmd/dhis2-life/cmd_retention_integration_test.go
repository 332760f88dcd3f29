package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/snapshot"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// archiveEnv is an env with [retention] and an object-locked [archive].
type archiveEnv struct {
	*env
	archBucket string
	identity   *age.X25519Identity
	idFile     string
}

func newArchiveEnv(t *testing.T, retention ...string) *archiveEnv {
	t.Helper()
	e := newEnv(t, fixture.Gen242)
	ae := &archiveEnv{env: e, archBucket: e.s3.Bucket(t, "arch-"+strings.ToLower(t.Name()), true)}
	ae.identity, _ = age.GenerateX25519Identity()
	ae.idFile = filepath.Join(e.dir, "archive-key.txt")
	writeFile(t, ae.idFile, ae.identity.String()+"\n", 0o600)
	ae.configure(retention, ae.archiveTable(ae.archBucket, ae.identity.Recipient().String(), `lock_mode = "GOVERNANCE"`, `lock_days = 30`))
	return ae
}

func (ae *archiveEnv) archiveTable(bucket, recipient string, extra ...string) []string {
	lines := []string{"", "[archive]", `endpoint = "` + ae.s3.Endpoint + `"`, `bucket = "` + bucket + `"`, `prefix = "hmis/"`,
		`recipients = ["` + recipient + `"]`, `part_size_mb = 5`}
	return append(lines, extra...)
}

// configure rewrites the config with a [retention] table (lines) and the given [archive].
func (ae *archiveEnv) configure(retention []string, archive []string) {
	extra := []string{"", "[retention]"}
	extra = append(extra, retention...)
	ae.instanceExtra = append(extra, archive...)
	ae.writeConfig()
}

// takeAt takes a back-dated set in-process (restic backup --time) and returns its manifest.
func (ae *archiveEnv) takeAt(at time.Time) *manifest.Manifest {
	t := ae.t
	t.Helper()
	cfg, err := config.Load(ae.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := a.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := snapshot.Take(ctx, snapshot.Options{
		Config: cfg, Instance: cfg.Instances[testInstance], Repo: a.Repo, Catalog: cat, Log: a.Log,
		Producer:    []string{testBinary, "--config", ae.cfgPath, "--log-level", "warn", "internal", "dump-stream", "--instance", testInstance},
		ToolVersion: "test", Time: at,
	})
	if err != nil {
		t.Fatalf("back-dated set at %s: %v", at, err)
	}
	return m
}

type planItem struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Decision string    `json:"decision"`
	Reasons  []string  `json:"reasons"`
}

type archiveItem struct {
	ID          string     `json:"id"`
	Object      string     `json:"object"`
	Size        int64      `json:"size"`
	SHA256      string     `json:"sha256"`
	RetainUntil *time.Time `json:"retain_until"`
	VersionID   string     `json:"version_id"`
	Bucket      string     `json:"bucket"`
}

// TestRetentionArchiveEndToEnd: back-dated sets in real restic, `retention plan` with
// reasons, `retention apply` archives a monthly set to an object-locked MinIO bucket before
// forgetting it, the locked archive cannot be deleted, and `restore --from-archive` restores
// it with the restic repository out of reach. Escrow recover writes the secrets back 0600.
func TestRetentionArchiveEndToEnd(t *testing.T) {
	ae := newArchiveEnv(t, "keep_last = 1", "keep_monthly = 2", `archive = ["monthly"]`)
	ae.init() // with [archive]: also stores the escrow bundle

	at := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	days := []string{"2026-01-15 12:00", "2026-02-10 12:00", "2026-02-20 12:00", "2026-03-05 12:00", "2026-03-06 12:00"}
	ids := map[string]string{}
	manifests := map[string]*manifest.Manifest{}
	for _, d := range days {
		m := ae.takeAt(at(d))
		ids[d[:10]] = m.ID
		manifests[m.ID] = m
	}
	if n := len(ae.resticSnapshots("set:" + ids["2026-01-15"])); n != 3 {
		t.Fatalf("back-dated set has %d restic snapshots, want 3", n)
	}

	// Plan.
	r := ae.mustRun("retention", "plan", "--json")
	var plan []planItem
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, r)
	}
	want := map[string]string{"2026-01-15": "archive-then-forget", "2026-02-10": "forget", "2026-02-20": "keep", "2026-03-05": "forget", "2026-03-06": "keep"}
	if len(plan) != len(want) {
		t.Fatalf("plan has %d sets\n%s", len(plan), r.stdout)
	}
	for _, it := range plan {
		d := it.Time.UTC().Format("2006-01-02")
		if it.Decision != want[d] || len(it.Reasons) == 0 {
			t.Errorf("%s: %s %v, want %s", d, it.Decision, it.Reasons, want[d])
		}
	}
	ae.mustRun("retention", "plan") // text form

	// Apply.
	r = ae.mustRun("retention", "apply")
	t.Logf("apply:\n%s", r.stdout)
	for _, d := range []string{"2026-01-15", "2026-02-10", "2026-03-05"} {
		if n := len(ae.resticSnapshots("set:" + ids[d])); n != 0 {
			t.Errorf("set of %s still has %d restic snapshots", d, n)
		}
	}
	for _, d := range []string{"2026-02-20", "2026-03-06"} {
		if n := len(ae.resticSnapshots("set:" + ids[d])); n != 3 {
			t.Errorf("kept set of %s has %d restic snapshots", d, n)
		}
	}
	if n := len(ae.snapshotsJSON()); n != 2 {
		t.Errorf("%d sets in the catalogue after apply, want 2", n)
	}
	r = ae.mustRun("archives", "--json")
	var arcs []archiveItem
	if err := json.Unmarshal([]byte(r.stdout), &arcs); err != nil || len(arcs) != 1 {
		t.Fatalf("archives --json: %v\n%s", err, r)
	}
	arc := arcs[0]
	if arc.ID != ids["2026-01-15"] || arc.Size <= 0 || len(arc.SHA256) != 64 || arc.RetainUntil == nil || arc.RetainUntil.Before(time.Now().Add(29*24*time.Hour)) {
		t.Fatalf("archive record %+v", arc)
	}

	// A locked archive cannot be deleted, not even by the credentials that wrote it.
	cl := ae.s3.Client(t)
	ctx := context.Background()
	err := cl.RemoveObject(ctx, ae.archBucket, arc.Object, minio.RemoveObjectOptions{VersionID: arc.VersionID})
	if err == nil {
		t.Fatal("deleting the locked archive version succeeded")
	}
	t.Logf("delete of locked archive refused: %v", err)
	if _, err := cl.StatObject(ctx, ae.archBucket, arc.Object, minio.StatObjectOptions{VersionID: arc.VersionID}); err != nil {
		t.Fatalf("locked archive gone: %v", err)
	}

	// Restore from the archive with the repository out of reach.
	ae.repoURL = "s3:http://127.0.0.1:1/no-such-bucket/repo"
	ae.writeConfig()
	target := "fromarch_" + randName()
	t.Cleanup(func() { dropDB(t, ae.pg, target) })
	filesTo := filepath.Join(ae.dir, "restored-files")
	r = ae.mustRun("restore", arc.ID, "--from-archive", "--identity", ae.idFile, "--to-db", ae.dsnFor(target),
		"--to-db-password-file", ae.dbPass, "--files-to", filesTo, "--json")
	var res struct {
		Tables int   `json:"tables"`
		Rows   int64 `json:"rows"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("restore --json: %v\n%s", err, r)
	}
	m := manifests[arc.ID]
	if res.Tables != len(m.Tables) || res.Rows != m.TotalRows() {
		t.Errorf("restored %d tables / %d rows, manifest has %d / %d", res.Tables, res.Rows, len(m.Tables), m.TotalRows())
	}
	if _, err := os.Stat(filepath.Join(filesTo, "dhis.conf")); err != nil {
		found := false
		_ = filepath.Walk(filesTo, func(p string, fi os.FileInfo, err error) error {
			found = found || (err == nil && fi.Name() == "dhis.conf")
			return nil
		})
		if !found {
			t.Errorf("no dhis.conf restored under %s", filesTo)
		}
	}

	// Wrong identity.
	other, _ := age.GenerateX25519Identity()
	otherFile := filepath.Join(ae.dir, "other-key.txt")
	writeFile(t, otherFile, other.String()+"\n", 0o600)
	r = ae.run("restore", arc.ID, "--from-archive", "--identity", otherFile, "--to-db", ae.dsnFor("never_"+randName()), "--to-db-password-file", ae.dbPass)
	oneLineError(t, r, 1, "identity does not match")

	// Escrow: a fresh host with only the identity and S3 credentials.
	empty := filepath.Join(ae.dir, "fresh-host")
	if err := os.MkdirAll(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, time.Minute, "escrow", "recover", "--identity", ae.idFile, "--endpoint", ae.s3.Endpoint, "--bucket", ae.archBucket,
		"--prefix", "hmis/", "--env-file", ae.envFile, "--to", empty)
	if r.code != 0 {
		t.Fatalf("escrow recover: %s", r)
	}
	for name, wantContent := range map[string]string{filepath.Base(ae.passFile): "correct horse battery staple\n", filepath.Base(ae.cfgPath): "[archive]"} {
		p := filepath.Join(empty, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("escrow recover did not write %s: %v", name, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), wantContent) {
			t.Errorf("%s does not hold %q", name, wantContent)
		}
	}
	r = runCLI(t, time.Minute, "escrow", "recover", "--identity", otherFile, "--endpoint", ae.s3.Endpoint, "--bucket", ae.archBucket,
		"--prefix", "hmis/", "--env-file", ae.envFile, "--to", filepath.Join(ae.dir, "fresh-2"))
	oneLineError(t, r, 1, "identity does not match")
}

// TestRetentionArchiveBadInput: missing bucket, bucket without object lock, invalid
// recipient, and a policy that keeps nothing.
func TestRetentionArchiveBadInput(t *testing.T) {
	ae := newArchiveEnv(t, "keep_last = 1")
	ae.init()
	m := ae.takeAt(time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC))
	ae.takeAt(time.Date(2026, 2, 2, 12, 0, 0, 0, time.UTC))
	rec := ae.identity.Recipient().String()
	lock := []string{`lock_mode = "COMPLIANCE"`, `lock_days = 1`}

	ae.configure([]string{"keep_last = 1"}, ae.archiveTable("no-such-archive-bucket", rec, lock...))
	oneLineError(t, ae.run("archive", m.ID), 1, "no-such-archive-bucket", "does not exist")

	plain := ae.s3.Bucket(t, "unlocked", false)
	ae.configure([]string{"keep_last = 1"}, ae.archiveTable(plain, rec, lock...))
	oneLineError(t, ae.run("archive", m.ID), 1, plain, "no object lock")

	ae.configure([]string{"keep_last = 1"}, ae.archiveTable(ae.archBucket, "age1notarecipient", lock...))
	oneLineError(t, ae.run("archive", m.ID), 2, "not a valid age recipient")

	// Nothing recorded by any of these.
	r := ae.mustRun("archives", "--json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("archives recorded after failures: %s", r.stdout)
	}

	// A policy that keeps nothing is refused unless --allow-empty.
	ae.configure([]string{"keep_daily = 0"}, ae.archiveTable(ae.archBucket, rec, lock...))
	oneLineError(t, ae.run("retention", "apply"), 2, "keeps no snapshot set", "--allow-empty")
	if n := len(ae.snapshotsJSON()); n != 2 {
		t.Fatalf("%d sets after a refused apply", n)
	}
	r = ae.mustRun("retention", "apply", "--allow-empty", "--prune")
	if n := len(ae.snapshotsJSON()); n != 0 {
		t.Fatalf("%d sets after apply --allow-empty\n%s", n, r)
	}
	if n := len(ae.resticSnapshots("dhis2-life")); n != 0 {
		t.Fatalf("%d restic snapshots left", n)
	}
}
