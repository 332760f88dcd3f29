package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/internal/testenv/faulttable"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

// bucketObjects is the repository's objects in MinIO, reached with minio-go as an attacker or
// failing disk would.
type bucketObjects struct {
	t      *testing.T
	c      *minio.Client
	bucket string
	prefix string
}

func (e *env) repoObjects() *bucketObjects {
	e.t.Helper()
	u, err := url.Parse(strings.TrimPrefix(e.repoURL, "s3:"))
	if err != nil {
		e.t.Fatal(err)
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	return &bucketObjects{t: e.t, c: e.s3.Client(e.t), bucket: bucket, prefix: prefix + "/"}
}

// list returns the keys under dir ("data/", "index/") with their modification times.
func (b *bucketObjects) list(dir string) map[string]time.Time {
	out := map[string]time.Time{}
	for o := range b.c.ListObjects(context.Background(), b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + dir, Recursive: true}) {
		if o.Err != nil {
			b.t.Fatal(o.Err)
		}
		out[o.Key] = o.LastModified
	}
	return out
}

func (b *bucketObjects) get(key string) []byte {
	o, err := b.c.GetObject(context.Background(), b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		b.t.Fatal(err)
	}
	defer o.Close()
	data, err := io.ReadAll(o)
	if err != nil {
		b.t.Fatal(err)
	}
	return data
}

func (b *bucketObjects) put(key string, data []byte) {
	if _, err := b.c.PutObject(context.Background(), b.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bucketObjects) remove(key string) {
	if err := b.c.RemoveObject(context.Background(), b.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		b.t.Fatal(err)
	}
}

// dbPack returns the bucket key of a data pack holding the database stream of set m: the
// snapshot's tree names the stream's data blobs, the indexes name their packs (real restic).
func (e *env) dbPack(m *manifest.Manifest, objs *bucketObjects) string {
	e.t.Helper()
	var snap struct {
		Tree string `json:"tree"`
	}
	e.resticJSON(&snap, "cat", "snapshot", m.Parts["db"].Snapshot)
	blobs := map[string]bool{}
	for trees := []string{snap.Tree}; len(trees) > 0; {
		var tree struct {
			Nodes []struct {
				Type    string   `json:"type"`
				Subtree string   `json:"subtree"`
				Content []string `json:"content"`
			} `json:"nodes"`
		}
		e.resticJSON(&tree, "cat", "blob", trees[0])
		trees = trees[1:]
		for _, n := range tree.Nodes {
			if n.Subtree != "" {
				trees = append(trees, n.Subtree)
			}
			for _, c := range n.Content {
				blobs[c] = true
			}
		}
	}
	for key := range objs.list("index/") {
		var idx struct {
			Packs []struct {
				ID    string `json:"id"`
				Blobs []struct {
					ID string `json:"id"`
				} `json:"blobs"`
			} `json:"packs"`
		}
		e.resticJSON(&idx, "cat", "index", path.Base(key))
		for _, p := range idx.Packs {
			for _, b := range p.Blobs {
				if blobs[b.ID] {
					return objs.prefix + "data/" + p.ID[:2] + "/" + p.ID
				}
			}
		}
	}
	e.t.Fatalf("no pack holds the database stream of %s (%d blobs)", m.ID, len(blobs))
	return ""
}

// resticJSON runs real restic with the test's repository and decodes its output into v.
func (e *env) resticJSON(v any, args ...string) {
	e.t.Helper()
	cmd := exec.Command(testenv.Restic(e.t), append([]string{"--no-cache", "--no-lock"}, args...)...)
	cmd.Env = append([]string{"RESTIC_REPOSITORY=" + e.repoURL, "RESTIC_PASSWORD_FILE=" + e.passFile, "PATH=/usr/bin:/bin"}, e.s3.Env()...)
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("restic %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		e.t.Fatalf("restic %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestRepositoryCorruption damages the repository in the bucket four ways. verify exits 3 and
// names the set; restore fails with a message that says the repository is damaged and what to
// run; the failed drill stays recorded after later runs (nothing overwrites the evidence).
func TestRepositoryCorruption(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	id, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(e.dir, "archive-key.txt")
	writeFile(t, idFile, id.String()+"\n", 0o600)
	archBucket := e.s3.Bucket(t, "arch-corrupt", false)
	e.instanceExtra = []string{"", "[archive]", `endpoint = "` + e.s3.Endpoint + `"`, `bucket = "` + archBucket + `"`,
		`prefix = "hmis/"`, `recipients = ["` + id.Recipient().String() + `"]`, `part_size_mb = 5`}
	e.writeConfig()
	e.init()
	e.cheapKey()
	m := e.snapshot()
	objs := e.repoObjects()
	dbPack := e.dbPack(m, objs)

	damaged := func(r result) bool {
		low := strings.ToLower(errorLine(r))
		return strings.Contains(low, "damaged") && strings.Contains(low, "restic check") && strings.Contains(low, "catalog rebuild")
	}
	cases := []struct {
		name   string
		damage func() (undo func())
	}{
		{"flipped byte in a data pack", func() func() {
			key := dbPack
			orig := objs.get(key)
			bad := bytes.Clone(orig)
			bad[len(bad)/2] ^= 0x40
			objs.put(key, bad)
			return func() { objs.put(key, orig) }
		}},
		{"deleted data pack", func() func() {
			key := dbPack
			orig := objs.get(key)
			objs.remove(key)
			return func() { objs.put(key, orig) }
		}},
		{"deleted index", func() func() {
			saved := map[string][]byte{}
			for key := range objs.list("index/") {
				saved[key] = objs.get(key)
				objs.remove(key)
			}
			return func() {
				for k, v := range saved {
					objs.put(k, v)
				}
			}
		}},
	}
	for _, c := range cases {
		undo := c.damage()
		before := e.catalogState()
		v := e.run("verify", m.ID)
		after := e.catalogState()
		target := "cr_" + randName()
		t.Cleanup(func() { dropDB(t, e.pg, target) })
		r := e.run("restore", m.ID, "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
		vmsg := errorLine(v)
		if v.code != 3 || !strings.Contains(vmsg, m.ID) {
			t.Errorf("%s: verify: want exit 3 naming %s: %s", c.name, m.ID, v)
		}
		if r.code == 0 || !damaged(r) {
			t.Errorf("%s: restore: want a failure saying the repository is damaged, `restic check`, another set and `catalog rebuild`: %s", c.name, r)
		}
		recorded := after.failedDrills == before.failedDrills+1 && after.goodDrills == before.goodDrills
		if !recorded {
			t.Errorf("%s: drill records %+v -> %+v, want one more failed drill", c.name, before, after)
		}
		undo()
		// After the repository is repaired the next drill passes, and the failed one stays.
		next := e.run("verify", m.ID)
		final := e.catalogState()
		if next.code != 0 || final.failedDrills != after.failedDrills {
			t.Errorf("%s: drill after repair: exit %d, failed drills %d -> %d\n%s", c.name, next.code, after.failedDrills, final.failedDrills, next)
		}
		faulttable.Record(t, faulttable.Row{Scenario: "corruption: " + c.name + " (verify)", Expected: "verify exits 3 naming the set; FAILED drill kept",
			Exit: v.code, Message: strings.TrimPrefix(vmsg, "dhis2-life: "), CatalogConsistent: recorded && final.failedDrills == after.failedDrills, NextRunOK: next.code == 0})
		faulttable.Record(t, faulttable.Row{Scenario: "corruption: " + c.name + " (restore)", Expected: "restore fails: repository damaged, run restic check / another set / catalog rebuild",
			Exit: r.code, Message: strings.TrimPrefix(errorLine(r), "dhis2-life: "), CatalogConsistent: after.sets == before.sets, NextRunOK: next.code == 0})
	}

	// A truncated archive object: restore --from-archive refuses it with a clear error.
	e.mustRun("archive", m.ID)
	ac := e.s3.Client(t)
	var key string
	for o := range ac.ListObjects(context.Background(), archBucket, minio.ListObjectsOptions{Prefix: "hmis/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if strings.HasSuffix(o.Key, ".tar.age") {
			key = o.Key
		}
	}
	if key == "" {
		t.Fatal("no archive object")
	}
	arc := &bucketObjects{t: t, c: ac, bucket: archBucket}
	orig := arc.get(key)
	arc.put(key, orig[:len(orig)*2/3])
	target := "ca_" + randName()
	t.Cleanup(func() { dropDB(t, e.pg, target) })
	t0 := time.Now()
	r := e.run("restore", m.ID, "--from-archive", "--identity", idFile, "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	msg := errorLine(r)
	if r.code == 0 || !strings.Contains(strings.ToLower(msg), "archive") {
		t.Errorf("restore from a truncated archive: %s", r)
	}
	exists := dbExists(t, e.pg, target)
	if exists {
		t.Errorf("restore from a truncated archive left database %s", target)
	}
	arc.put(key, orig)
	next := e.run("restore", m.ID, "--from-archive", "--identity", idFile, "--to-db", e.dsnFor(target), "--to-db-password-file", e.dbPass)
	faulttable.Record(t, faulttable.Row{Scenario: "corruption: truncated archive object (restore --from-archive)", Expected: "restore fails naming the archive; no half database",
		Exit: r.code, Message: strings.TrimPrefix(msg, "dhis2-life: "), CatalogConsistent: !exists, NextRunOK: next.code == 0})
	t.Logf("truncated archive: exit %d after %s: %s", r.code, time.Since(t0).Round(time.Millisecond), msg)
}

// cheapKey replaces the repository's key in the bucket by one for the same password with a
// tiny scrypt cost (testenv.CheapResticKeyFile), so each restic call of the test skips the
// ~0.5 s key derivation restic calibrated at init. Call it right after e.init().
func (e *env) cheapKey() {
	e.t.Helper()
	objs := e.repoObjects()
	keys := objs.list("keys/")
	if len(keys) != 1 {
		e.t.Fatalf("cheap key: want one key in the repository, found %d", len(keys))
	}
	pass, err := os.ReadFile(e.passFile)
	if err != nil {
		e.t.Fatal(err)
	}
	for key := range keys {
		name, out, err := testenv.CheapResticKeyFile(objs.get(key), strings.TrimSpace(string(pass)))
		if err != nil {
			e.t.Fatal(err)
		}
		objs.put(objs.prefix+"keys/"+name, out)
		objs.remove(key)
	}
}
