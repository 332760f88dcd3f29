package metrics

import (
	"bytes"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteText(t *testing.T) {
	r := NewRegistry()
	r.Define("dhis2_life_job_failures_total", Counter, "Failed job runs.", "instance", "job")
	r.Define("dhis2_life_drill_ok", Gauge, "1 when the newest drill passed.\nSecond line", "instance")
	r.Define("dhis2_life_repository_bytes", Gauge, "Repository size.", "instance")
	r.Add("dhis2_life_job_failures_total", Labels{"job": "snapshot", "instance": "hmis"}, 1)
	r.Add("dhis2_life_job_failures_total", Labels{"job": "snapshot", "instance": "hmis"}, 1)
	r.Set("dhis2_life_drill_ok", Labels{"instance": `we"ird\`}, 1)
	r.Set("dhis2_life_repository_bytes", Labels{"instance": "hmis"}, math.Inf(1))
	r.Define("empty_family", Gauge, "never written", "instance")
	// Programming errors are dropped, never panics in the daemon: an undefined family, labels
	// other than the defined ones, Set on a counter, a negative counter increment.
	r.Set("undefined_family", Labels{"instance": "hmis"}, 1)
	r.Set("dhis2_life_drill_ok", Labels{"instance": "hmis", "job": "x"}, 1)
	r.Set("dhis2_life_job_failures_total", Labels{"job": "snapshot", "instance": "hmis"}, 100)
	r.Add("dhis2_life_job_failures_total", Labels{"job": "snapshot", "instance": "hmis"}, -1)
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP dhis2_life_drill_ok 1 when the newest drill passed.\nSecond line
# TYPE dhis2_life_drill_ok gauge
dhis2_life_drill_ok{instance="we\"ird\\"} 1
# HELP dhis2_life_job_failures_total Failed job runs.
# TYPE dhis2_life_job_failures_total counter
dhis2_life_job_failures_total{instance="hmis",job="snapshot"} 2
# HELP dhis2_life_repository_bytes Repository size.
# TYPE dhis2_life_repository_bytes gauge
dhis2_life_repository_bytes{instance="hmis"} +Inf
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if v, ok := r.Get("dhis2_life_job_failures_total", Labels{"instance": "hmis", "job": "snapshot"}); !ok || v != 2 {
		t.Fatalf("Get = %v %v", v, ok)
	}
	if _, ok := r.Get("dhis2_life_job_failures_total", Labels{"instance": "hmis"}); ok {
		t.Fatal("Get matched a sample with other labels")
	}
	r.Delete(Labels{"instance": "hmis"})
	if _, ok := r.Get("dhis2_life_job_failures_total", Labels{"instance": "hmis", "job": "snapshot"}); ok {
		t.Fatal("Delete left the sample")
	}
	if _, ok := r.Get("dhis2_life_drill_ok", Labels{"instance": `we"ird\`}); !ok {
		t.Fatal("Delete removed another instance's sample")
	}
}

func TestHandlerAndTextfileAgree(t *testing.T) {
	r := NewRegistry()
	r.Define("dhis2_life_snapshot_bytes", Gauge, "Bytes read by the newest snapshot set.", "instance")
	r.Set("dhis2_life_snapshot_bytes", Labels{"instance": "a"}, 123456789012)
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q", ct)
	}
	dir := t.TempDir()
	if err := r.WriteTextfile(dir, "dhis2_life.prom"); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, "dhis2_life.prom"))
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != string(body) {
		t.Fatalf("textfile %q != /metrics %q", file, body)
	}
	if !strings.Contains(string(body), `dhis2_life_snapshot_bytes{instance="a"} 1.23456789012e+11`) {
		t.Fatalf("body %q", body)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestWriteFileAtomicMissingDir(t *testing.T) {
	err := WriteFileAtomic(filepath.Join(t.TempDir(), "nope", "x.prom"), []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "x.prom") {
		t.Fatalf("err = %v", err)
	}
}
