package retention

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/s3"
)

// fakeRepo is an in-memory restic: snapshots with tags and dumpable content.
type fakeRepo struct {
	mu      sync.Mutex
	snaps   []restic.Snapshot
	content map[string][]byte // snapshot ID → bytes Dump writes
	forgot  []string
	prunes  int
}

func (r *fakeRepo) Snapshots(ctx context.Context, tags ...string) ([]restic.Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []restic.Snapshot
	for _, s := range r.snaps {
		ok := true
		for _, t := range tags {
			has := false
			for _, st := range s.Tags {
				has = has || st == t
			}
			ok = ok && has
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

func (r *fakeRepo) Forget(ctx context.Context, ids ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		found := false
		for i, s := range r.snaps {
			if s.ID == id {
				r.snaps = append(r.snaps[:i], r.snaps[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no snapshot %s", id)
		}
		r.forgot = append(r.forgot, id)
	}
	return nil
}

func (r *fakeRepo) Prune(ctx context.Context) error { r.prunes++; return nil }

func (r *fakeRepo) Dump(ctx context.Context, id, path string, w io.Writer) error {
	r.mu.Lock()
	b, ok := r.content[id]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("no snapshot %s", id)
	}
	_, err := w.Write(b)
	return err
}

// fakeStore is an in-memory archive bucket; corrupt flips a byte of what Get returns.
type fakeStore struct {
	mu      sync.Mutex
	objs    map[string][]byte
	puts    int
	corrupt bool
}

func (s *fakeStore) Put(ctx context.Context, name string, r io.Reader, meta map[string]string) (s3.Object, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return s3.Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[name] = b
	s.puts++
	return s3.Object{Name: name, Size: int64(len(b)), VersionID: fmt.Sprint(s.puts)}, nil
}

func (s *fakeStore) Stat(ctx context.Context, name, v string) (s3.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[name]
	if !ok {
		return s3.Object{}, errors.New("not found")
	}
	return s3.Object{Name: name, Size: int64(len(b)), VersionID: v}, nil
}

func (s *fakeStore) Get(ctx context.Context, name, v string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[name]
	if !ok {
		return nil, errors.New("not found")
	}
	b = bytes.Clone(b)
	if s.corrupt && len(b) > 100 {
		b[len(b)/2] ^= 0xff
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

type fixture struct {
	cfg   *config.Config
	cat   *catalog.Catalog
	repo  *fakeRepo
	store *fakeStore
	id    *age.X25519Identity
	app   *Applier
	sets  []string
}

func filesTar(t *testing.T) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	data := []byte("db.password = secret\n")
	_ = tw.WriteHeader(&tar.Header{Name: "dhis.conf", Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(data)
	_ = tw.Close()
	return b.Bytes()
}

// newFixture records n daily sets (ending at end) with their restic parts.
func newFixture(t *testing.T, ret *config.Retention, n int, end time.Time) *fixture {
	t.Helper()
	dir := t.TempDir()
	cfg := &config.Config{StateDir: dir, Retention: ret, Instances: map[string]*config.Instance{"hmis": {Name: "hmis"}}}
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{cfg: cfg, cat: cat, repo: &fakeRepo{content: map[string][]byte{}}, store: &fakeStore{objs: map[string][]byte{}}}
	f.id, _ = age.GenerateX25519Identity()
	ft := filesTar(t)
	for i := n - 1; i >= 0; i-- {
		tm := end.AddDate(0, 0, -i)
		id := manifest.NewID(tm)
		dbID, flID, mID := "db-"+id, "fl-"+id, "mf-"+id
		stream := bytes.Repeat([]byte("row "+id+"\n"), 5000)
		m := &manifest.Manifest{Format: 1, ID: id, Instance: "hmis", Time: tm, Parts: map[string]manifest.Part{
			"db": {Snapshot: dbID, Bytes: int64(len(stream))}, "files": {Snapshot: flID}}}
		raw, _ := json.Marshal(m)
		for part, sid := range map[string]string{"db": dbID, "files": flID, "manifest": mID} {
			f.repo.snaps = append(f.repo.snaps, restic.Snapshot{ID: sid, Time: tm, Tags: manifest.Tags(id, "hmis", part)})
		}
		f.repo.content[dbID], f.repo.content[flID], f.repo.content[mID] = stream, ft, raw
		if err := cat.PutSnapshot(catalog.SnapshotRecord{ID: id, Instance: "hmis", Time: tm, Manifest: raw}); err != nil {
			t.Fatal(err)
		}
		f.sets = append(f.sets, id)
	}
	f.app = &Applier{Config: cfg, Catalog: cat, Repo: f.repo, Location: time.UTC,
		Archiver: &Archiver{Store: f.store, Repo: f.repo, Catalog: cat, Recipients: []age.Recipient{f.id.Recipient()}, Prefix: "hmis/", Bucket: "arch"}}
	return f
}

func monthlyPolicy() *config.Retention {
	return &config.Retention{KeepLast: 2, KeepMonthly: 1, Archive: []string{"monthly"}}
}

func TestApplyArchivesBeforeForgetting(t *testing.T) {
	// 40 daily sets ending 2026-03-10: Jan 30..31, all of Feb, Mar 1..10.
	f := newFixture(t, monthlyPolicy(), 40, day("2026-03-10"))
	res, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// kept: last 2 (Mar 9, 10; Mar 10 also monthly); archived: Jan 31, Feb 28.
	if res.Kept != 2 || len(res.Archived) != 2 || len(res.Forgotten) != 38 {
		t.Fatalf("%+v", res)
	}
	recs, _ := Records(f.cat)
	if len(recs) != 2 || !strings.HasPrefix(recs[0].ID, "20260131") || !strings.HasPrefix(recs[1].ID, "20260228") {
		t.Fatalf("archives %+v", recs)
	}
	left, _ := f.cat.Snapshots("hmis")
	if len(left) != 2 {
		t.Fatalf("%d sets left", len(left))
	}
	if n := len(f.repo.snaps); n != 6 {
		t.Fatalf("%d restic snapshots left, want 6 (3 parts × 2 sets)", n)
	}
	if ok, _ := f.cat.GetJSON(JournalBucket, "hmis", &journal{}); ok {
		t.Fatal("journal left after a complete run")
	}
	// The archive is self-contained and readable with the identity only.
	ar := &ArchiveReader{Store: f.store, Object: recs[1].Object, Identities: []age.Identity{f.id}}
	m, _, err := ar.Manifest(context.Background())
	if err != nil || m.ID != recs[1].ID {
		t.Fatalf("manifest %v %v", m, err)
	}
	rc, err := ar.Open(context.Background(), EntryDB)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, f.repo.content[m.Parts["db"].Snapshot]) {
		t.Fatalf("db stream differs (%v)", err)
	}
	// Wrong identity.
	other, _ := age.GenerateX25519Identity()
	ar.Identities = []age.Identity{other}
	if _, _, err := ar.Manifest(context.Background()); !errors.Is(err, crypt.ErrWrongIdentity) {
		t.Fatalf("wrong identity: %v", err)
	}
}

func TestApplyResumesAfterKill(t *testing.T) {
	f := newFixture(t, monthlyPolicy(), 40, day("2026-03-10"))
	killed := errors.New("killed")
	// Kill right after the first archive is recorded, before its set is forgotten.
	f.app.step = func(what, id string) error {
		if what == "archived" {
			return killed
		}
		return nil
	}
	if _, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{}); !errors.Is(err, killed) {
		t.Fatalf("want kill, got %v", err)
	}
	var j journal
	if ok, _ := f.cat.GetJSON(JournalBucket, "hmis", &j); !ok {
		t.Fatal("no journal after a killed run")
	}
	f.app.step = nil
	res, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Jan 30 (plain forget) was done before the kill; the other 37 now.
	if res.Resumed == "" || len(res.Forgotten) != 37 || len(res.Archived) != 1 {
		t.Fatalf("%+v", res)
	}
	if f.store.puts != 2 {
		t.Fatalf("%d uploads, want 2 (the archive recorded before the kill is not redone)", f.store.puts)
	}
}

func TestApplyKeepsArchiveDutyOfInterruptedRun(t *testing.T) {
	// An interrupted run had a set due for archive; the policy has since stopped archiving
	// (or the set no longer represents its month): the next run still archives it first.
	f := newFixture(t, &config.Retention{KeepLast: 1}, 3, day("2026-03-10"))
	j := journal{Started: day("2026-03-10"), Items: map[string]journalEntry{f.sets[0]: {Decision: ArchiveThenForget, Classes: []string{"monthly 2026-03"}, State: "planned"}}}
	if err := f.cat.PutJSON(JournalBucket, "hmis", j); err != nil {
		t.Fatal(err)
	}
	res, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Archived) != 1 || res.Archived[0] != f.sets[0] || len(res.Forgotten) != 2 {
		t.Fatalf("%+v", res)
	}
}

func TestApplyCorruptArchiveRecordsNothing(t *testing.T) {
	f := newFixture(t, monthlyPolicy(), 40, day("2026-03-10"))
	f.store.corrupt = true
	_, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("want checksum error, got %v", err)
	}
	if recs, _ := Records(f.cat); len(recs) != 0 {
		t.Fatalf("recorded %d archives of a corrupted upload", len(recs))
	}
	// The sets due for archive are still in the repository and the catalogue.
	for _, id := range []string{"20260131", "20260228"} {
		found := false
		left, _ := f.cat.Snapshots("hmis")
		for _, s := range left {
			found = found || strings.HasPrefix(s.ID, id)
		}
		if !found {
			t.Errorf("set %s was forgotten without a confirmed archive", id)
		}
	}
}

func TestApplyRefusesEmptyPolicy(t *testing.T) {
	f := newFixture(t, &config.Retention{}, 3, day("2026-03-10"))
	if _, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{}); !errors.Is(err, ErrKeepsNothing) {
		t.Fatalf("want refusal, got %v", err)
	}
	if left, _ := f.cat.Snapshots("hmis"); len(left) != 3 {
		t.Fatal("sets forgotten despite refusal")
	}
	res, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{AllowEmpty: true})
	if err != nil || len(res.Forgotten) != 3 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestApplyPinnedAndDryRun(t *testing.T) {
	f := newFixture(t, &config.Retention{KeepLast: 1}, 5, day("2026-03-10"))
	_ = f.cat.PutJSON(KeepBucket, f.sets[0], KeepMark{SetID: f.sets[0]})
	_ = f.cat.PutJSON(PointsBucket, "pre-upgrade-2.41", map[string]any{"set_id": f.sets[1], "kind": "dhis2"})
	res, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{DryRun: true, Prune: true})
	if err != nil || len(res.Forgotten) != 2 || !res.Pruned {
		t.Fatalf("%+v %v", res, err)
	}
	if left, _ := f.cat.Snapshots("hmis"); len(left) != 5 || f.repo.prunes != 0 {
		t.Fatal("dry run changed something")
	}
	res, err = f.app.Apply(context.Background(), "hmis", ApplyOptions{Prune: true})
	if err != nil || len(res.Forgotten) != 2 || !res.Pruned || f.repo.prunes != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	left, _ := f.cat.Snapshots("hmis")
	if len(left) != 3 || left[0].ID != f.sets[0] || left[1].ID != f.sets[1] {
		t.Fatalf("pinned sets gone: %+v", left)
	}
}

func TestPruneSchedule(t *testing.T) {
	f := newFixture(t, &config.Retention{KeepLast: 1, PruneSchedule: "0 6 * * 0"}, 3, day("2026-03-10"))
	now := day("2026-03-10")
	f.app.Now = func() time.Time { return now }
	if _, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.repo.prunes != 1 {
		t.Fatalf("never pruned before: want a prune, got %d", f.repo.prunes)
	}
	if f.app.pruneDue() {
		t.Fatal("prune due right after pruning")
	}
	now = now.Add(7 * 24 * time.Hour)
	if !f.app.pruneDue() {
		t.Fatal("weekly prune not due a week later")
	}
}

func TestApplyHonoursPinsAddedDuringTheRun(t *testing.T) {
	// `dhis2-life keep` or a rollback point may pin a set while a long apply runs (archive
	// uploads take hours): the set must not be forgotten by the plan made before.
	f := newFixture(t, &config.Retention{KeepLast: 1}, 5, day("2026-03-10"))
	f.app.step = func(what, id string) error {
		if what == "forgotten" && id == f.sets[0] {
			if err := f.cat.PutJSON(KeepBucket, f.sets[2], KeepMark{SetID: f.sets[2]}); err != nil {
				return err
			}
			return f.cat.PutJSON(PointsBucket, "pre-upgrade", map[string]any{"set_id": f.sets[3]})
		}
		return nil
	}
	res, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Forgotten) != 2 || res.Kept != 3 {
		t.Fatalf("%+v", res)
	}
	left, _ := f.cat.Snapshots("hmis")
	if len(left) != 3 || left[0].ID != f.sets[2] || left[1].ID != f.sets[3] {
		t.Fatalf("sets pinned during the run were forgotten: %+v", left)
	}
	for _, id := range f.repo.forgot {
		if strings.HasSuffix(id, f.sets[2]) || strings.HasSuffix(id, f.sets[3]) {
			t.Fatalf("restic snapshot %s of a pinned set forgotten", id)
		}
	}
	if ok, _ := f.cat.GetJSON(JournalBucket, "hmis", &journal{}); ok {
		t.Fatal("journal left after a complete run")
	}
}

// failingStore refuses uploads after reading a little, like S3 denying a multipart part.
type failingStore struct{ fakeStore }

func (s *failingStore) Put(ctx context.Context, name string, r io.Reader, meta map[string]string) (s3.Object, error) {
	_, _ = io.CopyN(io.Discard, r, 10)
	return s3.Object{}, errors.New("uploading to archive bucket \"arch\": AccessDenied: Access Denied")
}

func TestArchiveReportsTheUploadError(t *testing.T) {
	f := newFixture(t, monthlyPolicy(), 40, day("2026-03-10"))
	f.app.Archiver.Store = &failingStore{fakeStore{objs: map[string][]byte{}}}
	_, err := f.app.Apply(context.Background(), "hmis", ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("the store's error is not reported: %v", err)
	}
}
