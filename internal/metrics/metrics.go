package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Kind is a metric family's type.
type Kind string

// Metric kinds.
const (
	Gauge   Kind = "gauge"
	Counter Kind = "counter"
)

// Labels are a sample's label pairs.
type Labels map[string]string

// vec is what GaugeVec and CounterVec have in common here.
type vec interface {
	prometheus.Collector
	DeletePartialMatch(prometheus.Labels) int
}

// family is one defined metric: exactly one of gauge and count is set.
type family struct {
	gauge *prometheus.GaugeVec
	count *prometheus.CounterVec
}

func (f *family) vec() vec {
	if f.gauge != nil {
		return f.gauge
	}
	return f.count
}

// Registry holds dhis2-life's metric families in a prometheus/client_golang registry of its
// own: only these families, no Go runtime or process collectors, so the node_exporter
// textfile never collides with node_exporter's own go_* and process_* series. Its methods are
// safe for concurrent use.
type Registry struct {
	mu   sync.Mutex
	reg  *prometheus.Registry
	fams map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{reg: prometheus.NewRegistry(), fams: map[string]*family{}}
}

// Define declares a family with its help text and label names. Samples of families that were
// not defined, or whose labels differ from the defined names, are a programming error and are
// dropped (tests catch them: the sample is missing from the output). Defining a name twice
// keeps the first definition.
func (r *Registry) Define(name string, kind Kind, help string, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.fams[name]; ok {
		return
	}
	f := &family{}
	if kind == Counter {
		f.count = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	} else {
		f.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	r.reg.MustRegister(f.vec())
	r.fams[name] = f
}

func (r *Registry) family(name string) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fams[name]
}

// Set sets a gauge sample's value. Counters cannot be set (use Add).
func (r *Registry) Set(name string, l Labels, v float64) {
	f := r.family(name)
	if f == nil || f.gauge == nil {
		return
	}
	if g, err := f.gauge.GetMetricWith(prometheus.Labels(l)); err == nil {
		g.Set(v)
	}
}

// Add adds d (which must not be negative for a counter) to a sample's value, creating it at 0.
func (r *Registry) Add(name string, l Labels, d float64) {
	f := r.family(name)
	if f == nil {
		return
	}
	if f.gauge != nil {
		if g, err := f.gauge.GetMetricWith(prometheus.Labels(l)); err == nil {
			g.Add(d)
		}
		return
	}
	if c, err := f.count.GetMetricWith(prometheus.Labels(l)); err == nil && d >= 0 {
		c.Add(d)
	}
}

// Get returns a sample's value and whether it exists. It gathers the whole registry: call it
// once per sample, not in a loop over many records.
func (r *Registry) Get(name string, l Labels) (float64, bool) {
	mfs, err := r.reg.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !sameLabels(m.GetLabel(), l) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
		}
	}
	return 0, false
}

func sameLabels(got []*dto.LabelPair, want Labels) bool {
	if len(got) != len(want) {
		return false
	}
	for _, p := range got {
		if v, ok := want[p.GetName()]; !ok || v != p.GetValue() {
			return false
		}
	}
	return true
}

// Delete removes every sample of every family whose labels include all of match
// (used when an instance is removed from the configuration).
func (r *Registry) Delete(match Labels) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.fams {
		f.vec().DeletePartialMatch(prometheus.Labels(match))
	}
}

// WriteText writes every family that has samples in the Prometheus text exposition format
// (version 0.0.4), families and samples sorted by the registry, so two writes of the same
// state are byte-identical, and identical to what Handler serves.
func (r *Registry) WriteText(w io.Writer) error {
	mfs, err := r.reg.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return fmt.Errorf("encoding metric %s: %w", mf.GetName(), err)
		}
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// Handler serves the registry (GET /metrics) with promhttp.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// WriteTextfile writes the registry to dir/name (name should end in ".prom") for
// node_exporter's textfile collector: it writes a temporary file in dir and renames it over
// the target, so the collector never reads a partial file. The file is 0644 so a
// node_exporter running as another user can read it (it holds no secrets).
func (r *Registry) WriteTextfile(dir, name string) error {
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, name), buf.Bytes(), 0o644)
}

// WriteFileAtomic writes data to path through a temporary file in the same directory and a
// rename.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
