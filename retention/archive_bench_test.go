package retention

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/s3"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// bigRepo dumps a synthetic database stream of n bytes (a 1 MiB random block repeated).
type bigRepo struct {
	fakeRepo
	n int64
}

func (r *bigRepo) Dump(ctx context.Context, id, path string, w io.Writer) error {
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	left := r.n
	for left > 0 {
		b := block
		if int64(len(b)) > left {
			b = b[:left]
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		left -= int64(len(b))
	}
	return nil
}

func procStatus(key string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n << 10
		}
	}
	return 0
}

// BenchmarkArchiveMemory archives a 1 GiB database stream through the real archive writer
// (tar → age → minio-go multipart into an object-locked MinIO bucket → read back → sha256)
// and reports the peak RSS. Run: go test -run '^$' -bench ArchiveMemory -benchtime 1x ./retention/
// (BENCH_ARCHIVE_MB overrides the size).
func BenchmarkArchiveMemory(b *testing.B) {
	t := b
	size := int64(1024)
	if s := os.Getenv("BENCH_ARCHIVE_MB"); s != "" {
		size, _ = strconv.ParseInt(s, 10, 64)
	}
	size <<= 20
	mio := testenv.StartMinIO(t)
	bucket := mio.Bucket(t, "bench-archive", true)
	cl := mio.Client(t)
	store := &s3.ArchiveBucket{Client: cl, Endpoint: mio.Endpoint, Bucket: bucket, Prefix: "bench/", LockMode: "GOVERNANCE", LockDays: 1, PartSize: 16 << 20}
	ctx := context.Background()
	if err := store.Check(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	repo := &bigRepo{n: size}
	m := &manifest.Manifest{Format: 1, ID: manifest.NewID(time.Now()), Instance: "hmis", Time: time.Now().UTC(),
		Parts: map[string]manifest.Part{"db": {Snapshot: "db1", Bytes: size}}}
	raw, _ := json.Marshal(m)
	arc := &Archiver{Store: store, Repo: repo, Catalog: cat, Recipients: []age.Recipient{id.Recipient()}, Bucket: bucket, Prefix: "bench/", LockMode: "GOVERNANCE"}
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			if r := procStatus("VmRSS"); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	rec, err := arc.Archive(ctx, m, raw, []string{"bench"})
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(t0)
	hwm := procStatus("VmHWM")
	t.Logf("archived %d MiB stream → object %d bytes in %s (upload + read-back + sha256); peak RSS sampled %.1f MB, VmHWM %.1f MB",
		size>>20, rec.Size, el.Round(time.Millisecond), float64(peak.Load())/1e6, float64(hwm)/1e6)
	b.ReportMetric(float64(hwm)/1e6, "peak-RSS-MB")
	if hwm > 150e6 {
		t.Errorf("peak RSS %.1f MB exceeds 150 MB", float64(hwm)/1e6)
	}
}
