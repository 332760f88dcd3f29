package testenv

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TestFaultProxy drives each fault kind through the proxy with minio-go against real MinIO.
func TestFaultProxy(t *testing.T) {
	m := StartMinIO(t)
	bucket := m.Bucket(t, "faultproxy", false)
	p := StartFaultProxy(t, m.Endpoint)
	c, err := minio.New(p.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789"), 100000)
	put := func(ctx context.Context) error {
		_, err := c.PutObject(ctx, bucket, "obj", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{DisableMultipart: true})
		return err
	}
	get := func(ctx context.Context) ([]byte, error) {
		o, err := c.GetObject(ctx, bucket, "obj", minio.GetObjectOptions{})
		if err != nil {
			return nil, err
		}
		defer o.Close()
		return io.ReadAll(o)
	}
	ctx := context.Background()
	if err := put(ctx); err != nil {
		t.Fatalf("put through a healthy proxy (signature with the proxy's Host): %v", err)
	}

	p.Add(Fault{Kind: FaultStatus, Method: "PUT", Count: 1, Status: 503, Code: "SlowDown"})
	if err := put(ctx); err == nil || minio.ToErrorResponse(err).Code != "SlowDown" {
		t.Errorf("put during SlowDown: %v", err)
	}
	p.Add(Fault{Kind: FaultReset, Method: "GET", Path: "/obj"})
	if _, err := get(ctx); err == nil {
		t.Error("get over a reset connection succeeded")
	}
	p.Clear()
	p.Add(Fault{Kind: FaultTruncate, Method: "GET", Path: "/obj", Count: 1})
	if b, err := get(ctx); err == nil && len(b) == len(body) {
		t.Error("truncated get returned the whole body")
	}
	p.Add(Fault{Kind: FaultLatency, Count: 1, Delay: 300 * time.Millisecond})
	t0 := time.Now()
	if b, err := get(ctx); err != nil || !bytes.Equal(b, body) {
		t.Errorf("get with latency: %v", err)
	}
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Errorf("latency fault took only %s", d)
	}
	p.Add(Fault{Kind: FaultSilent})
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if _, err := get(sctx); err == nil {
		t.Error("get from a silent server succeeded")
	}
	cancel()
	p.Clear()
	if b, err := get(ctx); err != nil || !bytes.Equal(b, body) {
		t.Errorf("get after Clear: %v", err)
	}
	if _, inj := p.Stats(); inj[FaultStatus] != 1 || inj[FaultReset] < 1 || inj[FaultTruncate] != 1 || inj[FaultLatency] != 1 || inj[FaultSilent] < 1 {
		t.Errorf("injected %v", inj)
	}
}
