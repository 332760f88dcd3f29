package restic_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

// TestOutageStopsBackup: the S3 server dies in the middle of a backup. restic alone would
// retry every request for 15 minutes; with OutageTimeout the call ends soon after the
// limit with ErrUnreachable and a message that says what happened.
func TestOutageStopsBackup(t *testing.T) {
	s3 := testenv.NewMinIO(t)
	r := initS3Repo(t, s3, "outage", 3*time.Second)
	ctx := context.Background()

	// The stream stalls after its first 8 MiB until the server is gone, then ends.
	in := &stallingReader{first: 8 << 20, rest: 24 << 20, release: make(chan struct{})}
	in.stalled = make(chan struct{})
	go func() {
		<-in.stalled
		s3.Stop()
		close(in.release)
	}()
	t0 := time.Now()
	_, err := r.BackupReader(ctx, "db.stream", in, restic.BackupOptions{})
	took := time.Since(t0)
	if !errors.Is(err, restic.ErrUnreachable) {
		t.Fatalf("backup with the server gone: %v, want ErrUnreachable", err)
	}
	if took > 60*time.Second {
		t.Errorf("the outage ended the backup only after %s (limit 3s)", took)
	}
	msg := err.Error()
	for _, want := range []string{"did not answer for 3s", "retries", "repository.outage_timeout"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	t.Logf("backup stopped %s after start: %v", took.Round(100*time.Millisecond), err)
}

// TestNoOutageNoInterference: a healthy backup with a tight OutageTimeout succeeds.
func TestNoOutageNoInterference(t *testing.T) {
	s3 := testenv.StartMinIO(t)
	r := initS3Repo(t, s3, "healthy", 2*time.Second)
	ctx := context.Background()
	sum, err := r.BackupReader(ctx, "db.stream", io.LimitReader(rand.Reader, 16<<20), restic.BackupOptions{})
	if err != nil {
		t.Fatalf("healthy backup: %v", err)
	}
	if sum == nil || sum.SnapshotID == "" {
		t.Fatalf("no summary: %+v", sum)
	}
}

// initS3Repo creates a restic repository in a new bucket of s3 with the given outage bound.
func initS3Repo(t *testing.T, s3 *testenv.MinIO, bucket string, outage time.Duration) *restic.Repo {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pw, []byte("outage-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &restic.Repo{Bin: testenv.Restic(t), URL: s3.ResticRepo(s3.Bucket(t, bucket, false), "repo"),
		PasswordFile: pw, Env: s3.Env(), CacheDir: t.TempDir(), OutageTimeout: outage}
	if _, err := r.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// stallingReader yields first random bytes, then blocks until release is closed, then
// yields rest more.
type stallingReader struct {
	first, rest int64
	stalled     chan struct{}
	release     chan struct{}
	signalled   bool
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.first > 0 {
		n := int64(len(p))
		n = min(n, s.first)
		s.first -= n
		return rand.Read(p[:n])
	}
	if !s.signalled {
		s.signalled = true
		close(s.stalled)
		<-s.release
	}
	if s.rest <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), s.rest)
	s.rest -= n
	return rand.Read(p[:n])
}
