package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO is a running MinIO server on loopback (plain HTTP).
type MinIO struct {
	Endpoint  string // 127.0.0.1:port, the S3 API
	AccessKey string // root user
	SecretKey string
	DataDir   string // empty for an external server

	external    bool
	root        string
	port        int
	consolePort int
	logPath     string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

var minioShared struct {
	mu      sync.Mutex
	started bool
	m       *MinIO
	err     error
}

// StartMinIO returns the MinIO server shared by all tests of the test binary, starting it on
// first use; with DHIS2_LIFE_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY) set it uses that
// server instead. Tests get isolation from Bucket. Do not Stop the shared server: tests that
// simulate an outage use NewMinIO.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	minioShared.mu.Lock()
	defer minioShared.mu.Unlock()
	if !minioShared.started {
		minioShared.started = true
		t0 := time.Now()
		if ep := os.Getenv("DHIS2_LIFE_TEST_S3_ENDPOINT"); ep != "" {
			minioShared.m, minioShared.err = externalMinIO(ep)
		} else if bin, err := minioBinary(); err != nil {
			minioShared.err = fmt.Errorf("minio server: %v; %s", err, fixHint)
		} else {
			minioShared.m, minioShared.err = newMinIO(bin)
		}
		if minioShared.err == nil {
			t.Logf("testenv: MinIO on %s ready in %s", minioShared.m.Endpoint, since(t0))
		}
	}
	if minioShared.err != nil {
		t.Fatalf("testenv: MinIO: %v", minioShared.err)
	}
	return minioShared.m
}

// NewMinIO starts a MinIO server of the test's own, stopped and removed when the test ends. Use
// it to simulate outages with Stop and Start.
func NewMinIO(t testing.TB) *MinIO {
	t.Helper()
	t0 := time.Now()
	m, err := newMinIO(MinIOBinary(t))
	if err != nil {
		t.Fatalf("testenv: MinIO: %v", err)
	}
	t.Logf("testenv: own MinIO on %s ready in %s", m.Endpoint, since(t0))
	t.Cleanup(func() {
		m.Stop()
		_ = os.RemoveAll(m.root)
	})
	return m
}

func externalMinIO(endpoint string) (*MinIO, error) {
	m := &MinIO{
		external:  true,
		Endpoint:  endpoint,
		AccessKey: os.Getenv("DHIS2_LIFE_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("DHIS2_LIFE_TEST_S3_SECRET_KEY"),
	}
	if m.AccessKey == "" || m.SecretKey == "" {
		return nil, errors.New("DHIS2_LIFE_TEST_S3_ENDPOINT is set but DHIS2_LIFE_TEST_S3_ACCESS_KEY or _SECRET_KEY is not; use eval \"$(scripts/services.sh env)\"")
	}
	if err := waitReady(m.URL(), 5*time.Second, nil); err != nil {
		return nil, fmt.Errorf("server from DHIS2_LIFE_TEST_S3_ENDPOINT=%s: %v (is scripts/services.sh start running?)", endpoint, err)
	}
	return m, nil
}

func newMinIO(bin string) (*MinIO, error) {
	root, err := makeOwnedDir("minio")
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		AccessKey: "testenv-" + randHex(6),
		SecretKey: randHex(20),
		DataDir:   filepath.Join(root, "data"),
		root:      root,
		logPath:   filepath.Join(root, "minio.log"),
	}
	for attempt := 0; ; attempt++ {
		if m.port, err = freePort(); err == nil {
			m.consolePort, err = freePort()
		}
		if err != nil {
			break
		}
		m.Endpoint = "127.0.0.1:" + strconv.Itoa(m.port)
		err = m.run(bin)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 4 {
			break
		}
	}
	if err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	return m, nil
}

// run starts the server process on m.port and waits until it is ready.
func (m *MinIO) run(bin string) error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "server", m.DataDir,
		"--address", m.Endpoint,
		"--console-address", "127.0.0.1:"+strconv.Itoa(m.consolePort),
		"--certs-dir", filepath.Join(m.root, "certs"),
		"--quiet")
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + m.root,
		"MINIO_ROOT_USER=" + m.AccessKey,
		"MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on",
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := spawn(cmd, syscall.SIGKILL); err != nil {
		return fmt.Errorf("start minio: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	err = waitReady(m.URL(), 20*time.Second, exited)
	if err == nil {
		return nil
	}
	m.Stop()
	log := tail(m.logPath, 2000)
	if strings.Contains(log, "address already in use") {
		return errPortTaken
	}
	return fmt.Errorf("%v; log %s:\n%s", err, m.logPath, log)
}

// waitReady polls GET /minio/health/ready until it answers 200.
func waitReady(base string, timeout time.Duration, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-exited:
			return errors.New("minio exited during startup")
		default:
		}
		resp, err := client.Get(base + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health/ready: %s", resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("minio not ready after %s: %v", timeout, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// URL returns the server's base URL, http://127.0.0.1:port.
func (m *MinIO) URL() string { return "http://" + m.Endpoint }

// ResticRepo returns the restic repository URL for path inside bucket.
func (m *MinIO) ResticRepo(bucket, path string) string {
	return "s3:" + m.URL() + "/" + bucket + "/" + strings.TrimPrefix(path, "/")
}

// Env returns the AWS_* variables restic needs to reach the server.
func (m *MinIO) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + m.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey}
}

// Stop kills the server (an outage), keeping its port and data for Start. It may only be used on
// a server from NewMinIO.
func (m *MinIO) Stop() {
	if m.external {
		panic("testenv: cannot stop the external MinIO from DHIS2_LIFE_TEST_S3_ENDPOINT; use NewMinIO")
	}
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Start restarts a stopped server on the same port with the same data, waiting until it is
// ready; a no-op when it runs.
func (m *MinIO) Start(t testing.TB) {
	t.Helper()
	if m.external {
		t.Fatal("testenv: cannot restart the external MinIO from DHIS2_LIFE_TEST_S3_ENDPOINT; use NewMinIO")
	}
	m.mu.Lock()
	running := m.cmd != nil
	m.mu.Unlock()
	if running {
		return
	}
	t0 := time.Now()
	if err := m.run(MinIOBinary(t)); err != nil {
		t.Fatalf("testenv: restart MinIO on %s: %v", m.Endpoint, err)
	}
	t.Logf("testenv: MinIO on %s restarted in %s", m.Endpoint, since(t0))
}

// Client returns a minio-go client for the server with root credentials.
func (m *MinIO) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(m.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Secure: false,
	})
	if err != nil {
		t.Fatalf("testenv: minio client: %v", err)
	}
	return c
}

// Bucket creates a bucket with a fresh name starting with prefix and returns the name; with
// objectLock it is created with object lock (and thus versioning) enabled. Unlocked buckets are
// removed when the test ends; locked ones go with the server's data directory.
func (m *MinIO) Bucket(t testing.TB, prefix string, objectLock bool) string {
	t.Helper()
	name := strings.Trim(sanitize(prefix, true, 40), "-")
	if name == "" {
		name = "b"
	}
	name += "-" + randHex(5)
	if len(name) < 3 {
		name += "-bk"
	}
	c := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: objectLock}); err != nil {
		t.Fatalf("testenv: create bucket %s on %s: %v", name, m.Endpoint, err)
	}
	if !objectLock {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Best effort: the server may be stopped by the test, or be NewMinIO's and gone.
			_ = c.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true})
		})
	}
	return name
}

// EnvFile writes a 0600 file with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY lines in
// t.TempDir and returns its path.
func (m *MinIO) EnvFile(t testing.TB) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "s3.env")
	if err := os.WriteFile(f, []byte(strings.Join(m.Env(), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
