package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Nginx is a private nginx (nginx-light) in front of DHIS2 app slots: a temp prefix, daemon
// off, listening on a loopback port, its upstream in an included file.
type Nginx struct {
	Dir          string
	Port         int
	UpstreamFile string
	// Command is the nginx command line dhis2-life's config names (nginx -p DIR -c CONF).
	Command string
	URL     string
}

// FreePort returns a loopback port nobody listens on (for app slots in tests).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	return p
}

// StartNginx starts nginx proxying to upstream (host:port) and stops it when the test ends.
// A missing nginx fails the test.
func StartNginx(t testing.TB, upstream string) *Nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr == nil {
			bin = "/usr/sbin/nginx"
		} else {
			t.Fatalf("testenv: nginx not found (apt-get install nginx-light); %s", fixHint)
		}
	}
	dir := t.TempDir()
	n := &Nginx{Dir: dir, Port: FreePort(t), UpstreamFile: filepath.Join(dir, "dhis2-upstream.inc")}
	conf := filepath.Join(dir, "nginx.conf")
	n.Command = fmt.Sprintf("%s -p %s -c %s", bin, dir, conf)
	n.URL = fmt.Sprintf("http://127.0.0.1:%d", n.Port)
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log;
events { worker_connections 64; }
http {
  access_log %[1]s/logs/access.log;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  upstream dhis2 { include %[2]s; }
  server {
    listen 127.0.0.1:%[3]d;
    location / { proxy_pass http://dhis2; proxy_next_upstream off; }
  }
}
`, dir, n.UpstreamFile, n.Port)
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.UpstreamFile, []byte("server "+upstream+";\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // fast shutdown
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(n.URL + "/")
		if err == nil {
			resp.Body.Close()
			return n
		}
		select {
		case <-done:
			t.Fatalf("testenv: nginx exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: nginx not answering on %s: %v", n.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
