package testenv

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultKind is what a FaultProxy does to a request it faults.
type FaultKind int

// Fault kinds.
const (
	// FaultLatency waits Delay, then forwards the request.
	FaultLatency FaultKind = iota + 1
	// FaultStatus answers Status (default 503) with an S3 error document of Code (default
	// "SlowDown") without forwarding.
	FaultStatus
	// FaultReset closes the connection with a TCP reset before answering.
	FaultReset
	// FaultTruncate forwards the request and cuts the response body after half of it.
	FaultTruncate
	// FaultSilent accepts the request and never answers until the fault is cleared.
	FaultSilent
)

func (k FaultKind) String() string {
	switch k {
	case FaultLatency:
		return "latency"
	case FaultStatus:
		return "status"
	case FaultReset:
		return "reset"
	case FaultTruncate:
		return "truncate"
	case FaultSilent:
		return "silent"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Fault is one rule of a FaultProxy's schedule. A request matches when its method and path
// match; the first matching rule with faults left applies.
type Fault struct {
	Kind   FaultKind
	Method string // "" matches any method
	Path   string // a substring of the URL path ("/data/", "/index/", "/locks/"); "" matches any
	Count  int    // fault this many matching requests; 0 means every one until Clear
	Delay  time.Duration
	Status int
	Code   string
}

type activeFault struct {
	Fault
	left int
}

// FaultProxy is a loopback reverse proxy in front of an S3 server (MinIO) that injects storage
// faults on a schedule the test sets. Requests are forwarded with their Host header, so
// SigV4-signed requests to the proxy's Endpoint verify at the server.
type FaultProxy struct {
	Endpoint string // 127.0.0.1:port of the proxy

	rp       *httputil.ReverseProxy
	srv      *http.Server
	mu       sync.Mutex
	faults   []*activeFault
	release  chan struct{} // closed by Clear: silent requests end
	requests int
	injected map[FaultKind]int
}

// StartFaultProxy starts a proxy for the S3 API at target (host:port); it stops when the test
// ends.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatalf("testenv: fault proxy target %q: %v", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: fault proxy: %v", err)
	}
	p := &FaultProxy{Endpoint: ln.Addr().String(), release: make(chan struct{}), injected: map[FaultKind]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the signature covers the Host the client used
		},
		ErrorLog: log.New(io.Discard, "", 0), // faults make the proxy's own errors expected
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(p.Close)
	return p
}

// URL returns http://Endpoint.
func (p *FaultProxy) URL() string { return "http://" + p.Endpoint }

// ResticRepo returns the restic repository URL of path in bucket through the proxy.
func (p *FaultProxy) ResticRepo(bucket, path string) string {
	return "s3:" + p.URL() + "/" + bucket + "/" + strings.TrimPrefix(path, "/")
}

// Add schedules faults.
func (p *FaultProxy) Add(fs ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range fs {
		p.faults = append(p.faults, &activeFault{Fault: f, left: f.Count})
	}
}

// Clear removes every fault and lets requests held by FaultSilent end (their connection is
// closed, as a network that comes back would have lost them).
func (p *FaultProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
	close(p.release)
	p.release = make(chan struct{})
}

// Pending returns how many counted faults have not fired yet.
func (p *FaultProxy) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.faults {
		if f.Count > 0 {
			n += f.left
		}
	}
	return n
}

// Stats returns how many requests the proxy saw and how many faults of each kind it injected.
func (p *FaultProxy) Stats() (requests int, injected map[FaultKind]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[FaultKind]int, len(p.injected))
	for k, v := range p.injected {
		m[k] = v
	}
	return p.requests, m
}

// Injected returns the total number of faults injected so far.
func (p *FaultProxy) Injected() int {
	_, m := p.Stats()
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Close stops the proxy.
func (p *FaultProxy) Close() {
	p.Clear()
	_ = p.srv.Close()
}

func (p *FaultProxy) match(r *http.Request) (*Fault, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	for i, f := range p.faults {
		if (f.Method != "" && f.Method != r.Method) || (f.Path != "" && !strings.Contains(r.URL.Path, f.Path)) {
			continue
		}
		if f.Count > 0 {
			f.left--
			if f.left <= 0 {
				p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			}
		}
		p.injected[f.Kind]++
		fc := f.Fault
		return &fc, p.release
	}
	return nil, nil
}

// ServeHTTP forwards r, or faults it.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, release := p.match(r)
	if f == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch f.Kind {
	case FaultLatency:
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
		p.rp.ServeHTTP(w, r)
	case FaultStatus:
		status, code := f.Status, f.Code
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if code == "" {
			code = "SlowDown"
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test's fault proxy</Message><Resource>%s</Resource><RequestId>fault</RequestId></Error>`, code, r.URL.Path)
	case FaultReset:
		p.abort(w, true)
	case FaultSilent:
		select {
		case <-release:
		case <-r.Context().Done():
		}
		p.abort(w, false)
	case FaultTruncate:
		tw := &truncatingWriter{ResponseWriter: w}
		p.rp.ServeHTTP(tw, r)
		panic(http.ErrAbortHandler) // close the connection after the cut body
	}
}

// abort drops the client's connection, with a TCP reset when rst.
func (p *FaultProxy) abort(w http.ResponseWriter, rst bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := c.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// truncatingWriter passes the status and headers and then only half of the announced body.
type truncatingWriter struct {
	http.ResponseWriter
	limit   int64
	written int64
	started bool
}

func (t *truncatingWriter) WriteHeader(code int) {
	if !t.started {
		t.started = true
		var n int64
		if _, err := fmt.Sscan(t.Header().Get("Content-Length"), &n); err == nil {
			t.limit = n / 2
		}
	}
	t.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (t *truncatingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

func (t *truncatingWriter) Write(b []byte) (int, error) {
	if !t.started {
		t.WriteHeader(http.StatusOK)
	}
	if left := t.limit - t.written; int64(len(b)) > left {
		if left > 0 {
			n, _ := t.ResponseWriter.Write(b[:left])
			t.written += int64(n)
		}
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		return 0, io.ErrUnexpectedEOF
	}
	n, err := t.ResponseWriter.Write(b)
	t.written += int64(n)
	return n, err
}
