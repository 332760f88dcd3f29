package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The text format is written by this package with the standard library (prometheus/client_golang
// is not a dependency): dhis2-life only needs labelled gauges and counters, whose text
// exposition (version 0.0.4) is a few lines each.

// Kind is a metric family's type.
type Kind string

// Metric kinds.
const (
	Gauge   Kind = "gauge"
	Counter Kind = "counter"
)

// ContentType is the Content-Type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Labels are a sample's label pairs.
type Labels map[string]string

type family struct {
	name, help string
	kind       Kind
	samples    map[string]sample // by canonical label string
}

type sample struct {
	labels string
	value  float64
}

// Registry holds metric families. Its methods are safe for concurrent use.
type Registry struct {
	mu   sync.Mutex
	fams map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{fams: map[string]*family{}} }

// Define declares a family; samples of undeclared families are written untyped.
func (r *Registry) Define(name string, kind Kind, help string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.fam(name)
	f.kind, f.help = kind, help
}

func (r *Registry) fam(name string) *family {
	f, ok := r.fams[name]
	if !ok {
		f = &family{name: name, samples: map[string]sample{}}
		r.fams[name] = f
	}
	return f
}

// Set sets a sample's value.
func (r *Registry) Set(name string, l Labels, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ls := formatLabels(l)
	r.fam(name).samples[ls] = sample{labels: ls, value: v}
}

// Add adds d to a sample's value (creating it at 0).
func (r *Registry) Add(name string, l Labels, d float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ls := formatLabels(l)
	f := r.fam(name)
	s := f.samples[ls]
	s.labels = ls
	s.value += d
	f.samples[ls] = s
}

// Get returns a sample's value and whether it exists.
func (r *Registry) Get(name string, l Labels) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.fams[name]
	if !ok {
		return 0, false
	}
	s, ok := f.samples[formatLabels(l)]
	return s.value, ok
}

// Delete removes every sample of every family whose labels include all of match
// (used when an instance is removed from the configuration).
func (r *Registry) Delete(match Labels) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.fams {
		for k := range f.samples {
			if containsAll(k, match) {
				delete(f.samples, k)
			}
		}
	}
}

func containsAll(ls string, match Labels) bool {
	for k, v := range match {
		if !strings.Contains(ls, k+`="`+escape(v, true)+`"`) {
			return false
		}
	}
	return true
}

// WriteText writes every family in the text exposition format, families and samples sorted,
// so two writes of the same state are byte-identical.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	var buf bytes.Buffer
	names := make([]string, 0, len(r.fams))
	for n := range r.fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := r.fams[n]
		if len(f.samples) == 0 {
			continue
		}
		if f.help != "" {
			fmt.Fprintf(&buf, "# HELP %s %s\n", f.name, escape(f.help, false))
		}
		if f.kind != "" {
			fmt.Fprintf(&buf, "# TYPE %s %s\n", f.name, f.kind)
		}
		keys := make([]string, 0, len(f.samples))
		for k := range f.samples {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := f.samples[k]
			fmt.Fprintf(&buf, "%s%s %s\n", f.name, s.labels, formatValue(s.value))
		}
	}
	r.mu.Unlock()
	_, err := w.Write(buf.Bytes())
	return err
}

// Handler serves the registry (GET /metrics).
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		_ = r.WriteText(w)
	})
}

// WriteTextfile writes the registry to dir/name (name should end in ".prom") for
// node_exporter's textfile collector: it writes a temporary file in dir and renames it over
// the target, so the collector never reads a partial file.
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

func formatLabels(l Labels) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(escape(l[k], true))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// escape escapes a HELP text (backslash, newline) or a label value (also double quotes).
func escape(s string, quote bool) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	if quote {
		s = strings.ReplaceAll(s, `"`, `\"`)
	}
	return s
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
