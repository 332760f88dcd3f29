package wal

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

// cutProxy forwards TCP connections to target, but while cut is set it passes only the first
// limit bytes a client sends and then drops the connection: an upload dying half-way.
type cutProxy struct {
	ln     net.Listener
	target string
	limit  int64
	cut    atomic.Bool
	cuts   atomic.Int64
}

func newCutProxy(t *testing.T, target string, limit int64) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, limit: limit}
	p.cut.Store(true)
	go p.serve()
	t.Cleanup(func() { ln.Close() }) // idle keep-alive connections end with the test binary
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer s.Close()
			go func() { _, _ = io.Copy(c, s) }()
			if p.cut.Load() {
				n, _ := io.CopyN(s, c, p.limit)
				if n == p.limit {
					p.cuts.Add(1)
				}
				return // both sides closed mid-request
			}
			_, _ = io.Copy(s, c)
		}()
	}
}

// TestPushPartialUploadImpossible: an upload cut half-way leaves no object (one PUT with
// Content-MD5: the store keeps whole objects only), and a later push stores the whole file.
func TestPushPartialUploadImpossible(t *testing.T) {
	m := testenv.StartMinIO(t)
	bucket := m.Bucket(t, "walcut", false)
	keys, _ := DeriveKeys([]byte("pw"))
	proxy := newCutProxy(t, m.Endpoint, 64<<10)
	env := m.Env()
	s, err := NewStore("s3:http://"+proxy.ln.Addr().String()+"/"+bucket+"/repo", env, "hmis", keys)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := NewStore(m.ResticRepo(bucket, "repo"), env, "hmis", keys)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := "000000010000000000000007"
	p := filepath.Join(dir, name)
	plain := segment(t, 16<<20)
	// Random content does not compress: the object is ~16 MiB, far beyond the 64 KiB cut.
	if _, err := rand.Read(plain); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	if _, err := s.Push(ctx, p); err == nil {
		t.Fatal("push through a connection cut mid-upload succeeded")
	} else {
		t.Logf("cut push failed after %s: %v", time.Since(t0), err)
	}
	if proxy.cuts.Load() == 0 {
		t.Fatal("the proxy never cut an upload: the test did not test anything")
	}
	if _, err := direct.Client.StatObject(ctx, bucket, direct.Key(name), minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("after %d cut uploads the object exists or cannot be checked: %v", proxy.cuts.Load(), err)
	}
	if _, err := direct.Fetch(ctx, name, filepath.Join(dir, "x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch after cut uploads: %v, want ErrNotFound", err)
	}
	proxy.cut.Store(false)
	if _, err := s.Push(ctx, p); err != nil {
		t.Fatalf("push once the connection holds: %v", err)
	}
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if _, err := direct.Fetch(ctx, name, dest); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, plain) {
		t.Fatal("fetched segment differs from the pushed one")
	}
}
