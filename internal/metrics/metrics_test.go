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
	r.Define("dhis2_life_job_failures_total", Counter, "Failed job runs.")
	r.Define("dhis2_life_drill_ok", Gauge, "1 when the newest drill passed.\nSecond line")
	r.Add("dhis2_life_job_failures_total", Labels{"job": "snapshot", "instance": "hmis"}, 1)
	r.Add("dhis2_life_job_failures_total", Labels{"job": "snapshot", "instance": "hmis"}, 1)
	r.Set("dhis2_life_drill_ok", Labels{"instance": `we"ird\`}, 1)
	r.Set("untyped_thing", nil, math.Inf(1))
	r.Define("empty_family", Gauge, "never written")
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
untyped_thing +Inf
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if v, ok := r.Get("dhis2_life_job_failures_total", Labels{"instance": "hmis", "job": "snapshot"}); !ok || v != 2 {
		t.Fatalf("Get = %v %v", v, ok)
	}
	r.Delete(Labels{"instance": "hmis"})
	if _, ok := r.Get("dhis2_life_job_failures_total", Labels{"instance": "hmis", "job": "snapshot"}); ok {
		t.Fatal("Delete left the sample")
	}
}

func TestHandlerAndTextfileAgree(t *testing.T) {
	r := NewRegistry()
	r.Define("dhis2_life_snapshot_bytes", Gauge, "Bytes read by the newest snapshot set.")
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
