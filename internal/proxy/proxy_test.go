package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

func slot(t *testing.T, name string) (*httptest.Server, string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }))
	t.Cleanup(srv.Close)
	up, err := Upstream(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return srv, up
}

// through waits until the proxy answers want (a reload is asynchronous).
func through(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = string(b)
			if got == want {
				return
			}
		} else {
			got = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("proxy answers %q, want %q", got, want)
}

func TestNginxSwitch(t *testing.T) {
	_, blue := slot(t, "blue")
	_, green := slot(t, "green")
	ng := testenv.StartNginx(t, blue)
	through(t, ng.URL+"/", "blue")
	n := &Nginx{UpstreamFile: ng.UpstreamFile, Command: ng.Command}
	ctx := context.Background()
	if err := n.Switch(ctx, "green", green); err != nil {
		t.Fatal(err)
	}
	through(t, ng.URL+"/", "green")
	if cur, err := n.Current(); err != nil || cur != green {
		t.Fatalf("Current = %q, %v; want %q", cur, err, green)
	}
	prev, err := os.ReadFile(ng.UpstreamFile + PrevSuffix)
	if err != nil || parseServer(prev) != blue {
		t.Fatalf("previous upstream file kept = %q, %v; want blue's %s", prev, err, blue)
	}
	// A switch nginx -t refuses leaves the working file in place and traffic where it was.
	err = n.Switch(ctx, "blue", "127.0.0.1:notaport")
	if err == nil || !strings.Contains(err.Error(), "nginx -t") {
		t.Fatalf("bad upstream: err = %v, want nginx -t refusal", err)
	}
	if cur, _ := n.Current(); cur != green {
		t.Fatalf("after a refused switch the file names %q, want green %s", cur, green)
	}
	through(t, ng.URL+"/", "green")
	// Back to blue (rollback); a repeated switch is harmless.
	for i := 0; i < 2; i++ {
		if err := n.Switch(ctx, "blue", blue); err != nil {
			t.Fatal(err)
		}
	}
	through(t, ng.URL+"/", "blue")
	ents, _ := os.ReadDir(filepath.Dir(ng.UpstreamFile))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestHookSwitch(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "called")
	h := &Hook{Command: "echo \"$DHIS2_LIFE_SLOT $DHIS2_LIFE_UPSTREAM\" >> " + out, StateFile: filepath.Join(dir, "state")}
	if cur, err := h.Current(); err != nil || cur != "" {
		t.Fatalf("Current before any switch = %q, %v", cur, err)
	}
	if err := h.Switch(context.Background(), "green", "127.0.0.1:8081"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if string(b) != "green 127.0.0.1:8081\n" {
		t.Fatalf("hook saw %q", b)
	}
	if cur, _ := h.Current(); cur != "127.0.0.1:8081" {
		t.Fatalf("Current = %q", cur)
	}
	bad := &Hook{Command: "echo no such proxy >&2; exit 4"}
	if err := bad.Switch(context.Background(), "blue", "x:1"); err == nil || !strings.Contains(err.Error(), "no such proxy") {
		t.Fatalf("failing hook: err = %v", err)
	}
}
