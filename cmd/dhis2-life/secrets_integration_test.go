package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dhis2-life/dhis2-life/internal/notify/notifytest"
	"github.com/dhis2-life/dhis2-life/internal/testenv/faulttable"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// leakWatch scans /proc/*/cmdline of every process, and the modes of the files under the
// watched directories, while jobs run.
type leakWatch struct {
	secrets map[string]string // secret -> what it is
	dirs    []string
	mu      sync.Mutex
	hits    map[string]bool
	modes   map[string]bool
	scans   int
}

func (w *leakWatch) scan() {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		for s, what := range w.secrets {
			if strings.Contains(cmd, s) {
				w.mu.Lock()
				w.hits[fmt.Sprintf("%s in the argv of pid %s: %.80s", what, e.Name(), cmd)] = true
				w.mu.Unlock()
			}
		}
	}
	// What dhis2-life itself writes: the state dir (0700) and the entries in it and in its
	// tmp (catalogue, spools, drill directories) without group or other access, and every
	// dhis.conf 0600. Deeper entries (restored file store copies, restic's cache) sit below
	// those 0700 directories.
	for _, d := range w.dirs {
		w.checkMode(d, 0o700)
		for _, sub := range []string{d, filepath.Join(d, "tmp")} {
			ents, _ := os.ReadDir(sub)
			for _, en := range ents {
				w.checkMode(filepath.Join(sub, en.Name()), 0)
			}
		}
		_ = filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.Name() == "dhis.conf" {
				w.checkMode(p, 0o600)
			}
			return nil
		})
	}
	w.mu.Lock()
	w.scans++
	w.mu.Unlock()
}

// checkMode records p when its mode differs from want (0: any mode without group/other bits).
func (w *leakWatch) checkMode(p string, want fs.FileMode) {
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		return
	}
	m := fi.Mode().Perm()
	if (want != 0 && m != want) || (want == 0 && m&0o077 != 0) {
		w.mu.Lock()
		w.modes[fmt.Sprintf("%s has mode %v", p, m)] = true
		w.mu.Unlock()
	}
}

func (w *leakWatch) run(ctx context.Context) {
	for ctx.Err() == nil {
		w.scan()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSecretsNeverLeak runs snapshot, verify, restore, clone, archive, escrow refresh, a
// notification and failing commands while watching every process's argv and the modes of the
// state directory's files; then it searches all output (text and JSON logs, errors, reports),
// the catalogue file, manifests and the alert bodies for the repository password, the S3
// secret, the database passwords and the age identity: there must be none. The state
// directory is 0700, its files 0600, and a restored dhis.conf 0600.
func TestSecretsNeverLeak(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	repoPass := "repo-secret-" + randName() + randName()
	writeFile(t, e.passFile, repoPass+"\n", 0o600)
	id, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(e.dir, "archive-key.txt")
	writeFile(t, idFile, id.String()+"\n", 0o600)
	hook := notifytest.NewHTTP(t, `{}`)
	archBucket := e.s3.Bucket(t, "arch-secrets", false)
	e.instanceExtra = []string{"", "[archive]", `endpoint = "` + e.s3.Endpoint + `"`, `bucket = "` + archBucket + `"`,
		`prefix = "hmis/"`, `recipients = ["` + id.Recipient().String() + `"]`, "", "[notify.webhook]", `url = "` + hook.URL + `/hook"`}
	stg := "stg_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, stg) })
	e.setTargets(tgt{name: "staging", db: stg, profile: "staging", home: filepath.Join(e.dir, "staging-home")})

	w := &leakWatch{hits: map[string]bool{}, modes: map[string]bool{},
		secrets: map[string]string{repoPass: "repository password", e.s3.SecretKey: "S3 secret key",
			e.pg.AppPassword: "database password", id.String(): "age identity"},
		dirs: []string{e.stateDir}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(ctx) }()

	var outputs []string
	run := func(want int, args ...string) result {
		t.Helper()
		r := e.run(args...)
		if want >= 0 && r.code != want {
			t.Errorf("dhis2-life %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, want, r)
		}
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	run(0, "init")
	e.cheapKey()
	run(0, "--log-level", "debug", "snapshot")
	run(0, "--log-format", "json", "--log-level", "debug", "snapshot", "--json")
	run(0, "--log-level", "debug", "verify", "latest")
	filesTo := filepath.Join(e.dir, "restored-home")
	target := "sec_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	run(0, "--log-level", "debug", "restore", "latest", "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass, "--files-to", filesTo)
	run(0, "--log-format", "json", "--log-level", "debug", "clone", "--to", "staging")
	run(0, "--log-level", "debug", "archive", "latest")
	run(0, "--log-level", "debug", "escrow", "refresh")
	run(0, "notify", "test")
	run(0, "snapshots", "--json")
	run(0, "status", "--json")
	run(-1, "--log-format", "json", "retention", "plan", "--json")
	// Failing runs: their error messages must not carry secrets either.
	run(1, "restore", "latest", "--to-db", fmt.Sprintf("postgres://nobody@127.0.0.1:%d/x_%s?sslmode=disable", e.pg.Port, randName()), "--to-db-password-file", e.dbPass)
	writeFile(t, e.passFile, "wrong-"+repoPass+"\n", 0o600)
	run(-1, "snapshots", "--json")
	run(-1, "--log-level", "debug", "verify", "latest")
	writeFile(t, e.passFile, repoPass+"\n", 0o600)
	cancel()
	wg.Wait()
	w.scan()

	// Everything written: outputs, alert bodies, the catalogue and every state file.
	for _, r := range hook.Requests() {
		outputs = append(outputs, r.Body)
	}
	if len(hook.Requests()) == 0 {
		t.Error("notify test sent no webhook request to inspect")
	}
	_ = filepath.WalkDir(e.stateDir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() && !strings.Contains(p, string(filepath.Separator)+"cache"+string(filepath.Separator)) {
			if b, err := os.ReadFile(p); err == nil {
				outputs = append(outputs, p+"\x00"+string(b))
			}
		}
		return nil
	})
	for i, out := range outputs {
		for s, what := range w.secrets {
			if strings.Contains(out, s) {
				where := fmt.Sprintf("output %d", i)
				if j := strings.IndexByte(out, 0); j > 0 {
					where = out[:j]
				}
				w.hits[fmt.Sprintf("%s in %s", what, where)] = true
			}
		}
	}
	// Modes: state dir 0700, catalogue 0600, restored dhis.conf 0600.
	for p, want := range map[string]os.FileMode{e.stateDir: 0o700, filepath.Join(e.stateDir, "catalog.db"): 0o600, filepath.Join(filesTo, "dhis.conf"): 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			w.modes[fmt.Sprintf("%s: %v (want %v)", p, fi.Mode().Perm(), want)] = true
		}
	}
	for h := range w.hits {
		t.Errorf("secret leaked: %s", h)
	}
	for m := range w.modes {
		t.Errorf("file mode: %s", m)
	}
	if w.scans < 20 {
		t.Errorf("only %d /proc scans ran while the jobs ran", w.scans)
	}
	faulttable.Record(t, faulttable.Row{Scenario: "secrets: argv of every child, logs, errors, catalogue, manifests, alerts; file modes",
		Expected: "no secret anywhere; state 0700, files 0600, dhis.conf 0600", Exit: 0,
		Message:           fmt.Sprintf("%d argv scans, %d outputs searched: %d leaks, %d bad modes", w.scans, len(outputs), len(w.hits), len(w.modes)),
		CatalogConsistent: true, NextRunOK: len(w.hits) == 0 && len(w.modes) == 0})
}
