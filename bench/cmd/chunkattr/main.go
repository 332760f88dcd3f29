// Command chunkattr attributes each day's new restic bytes to their source: for every
// database part (tag part:db) after the first, it re-cuts the stored stream with restic's
// chunker and the repository's polynomial, checks the chunks are exactly the blobs restic
// stored, and maps the chunks no earlier set had to the stream's sections (each table, the
// pg_dump schema archive's header and TOC, the trailer). The file store and manifest parts
// are listed with what restic reported adding for them. `make bench` prints the table.
//
//	RESTIC_REPOSITORY=… RESTIC_PASSWORD_FILE=… chunkattr [-last N] [-top K] [-json]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/restic/chunker"

	"github.com/dhis2-life/dhis2-life/internal/restic"
)

// snapshot is restic's snapshot listing plus the root tree the stream is read from.
type snapshot struct {
	restic.Snapshot
	Tree string `json:"tree"`
}

// Day is the attribution of one set's new bytes.
type Day struct {
	Set         string `json:"set"`
	StreamBytes int64  `json:"stream_bytes"`
	Chunks      int    `json:"chunks"`
	NewChunks   int    `json:"new_chunks"`
	NewBytes    int64  `json:"new_bytes"` // raw bytes of the stream's new chunks
	DBAdded     int64  `json:"db_added"`  // restic's data_added of the db part (incl. its tree)
	DBAddedPack int64  `json:"db_added_packed"`
	Rows        []Row  `json:"rows"` // stream sources, then "part files", "part manifest"
}

func main() {
	last := flag.Int("last", 0, "attribute only the last N database parts (0: every one after the first)")
	top := flag.Int("top", 10, "sources listed per day in the table (the rest are summed)")
	asJSON := flag.Bool("json", false, "print JSON")
	bin := flag.String("restic", "restic", "restic binary")
	verbose := flag.Bool("v", false, "list every new chunk with its sources on stderr")
	polHex := flag.String("pol", "", "cut with this chunker polynomial (hex, e.g. another repository's) instead of the repository's: compares two stream layouts without the polynomial's luck; every stream is then re-cut and not checked against the stored blobs")
	days := flag.Int("days", 0, "with -pol: only the first N days after the first set (0: all)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: RESTIC_REPOSITORY=… RESTIC_PASSWORD_FILE=… chunkattr [-last N] [-top K] [-json]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if os.Getenv("RESTIC_REPOSITORY") == "" || (os.Getenv("RESTIC_PASSWORD_FILE") == "" && os.Getenv("RESTIC_PASSWORD") == "") {
		fmt.Fprintln(os.Stderr, "chunkattr: set RESTIC_REPOSITORY and RESTIC_PASSWORD_FILE")
		os.Exit(2)
	}
	var vw io.Writer
	if *verbose {
		vw = os.Stderr
	}
	var pol chunker.Pol
	if *polHex != "" {
		if err := pol.UnmarshalJSON([]byte(`"` + *polHex + `"`)); err != nil || pol == 0 {
			fmt.Fprintln(os.Stderr, "chunkattr: -pol: not a hex polynomial:", *polHex)
			os.Exit(2)
		}
	}
	result, err := run(context.Background(), *bin, *last, vw, pol, *days)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chunkattr:", err)
		os.Exit(1)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(result); err != nil {
			os.Exit(1)
		}
		return
	}
	printTable(os.Stdout, result, *top)
}

func runRestic(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"--no-lock", "-q"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("restic %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// treeContent returns the content blob IDs of the only file of a snapshot's root tree
// (the database stream) and its name.
func treeContent(ctx context.Context, bin, tree string) (string, []string, error) {
	out, err := runRestic(ctx, bin, "cat", "blob", tree)
	if err != nil {
		return "", nil, err
	}
	var t struct {
		Nodes []struct {
			Name    string   `json:"name"`
			Type    string   `json:"type"`
			Content []string `json:"content"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &t); err != nil {
		return "", nil, fmt.Errorf("reading tree %s: %w", tree, err)
	}
	for _, n := range t.Nodes {
		if n.Type == "file" {
			return n.Name, n.Content, nil
		}
	}
	return "", nil, fmt.Errorf("tree %s holds no file", tree)
}

func run(ctx context.Context, bin string, last int, verbose io.Writer, polOverride chunker.Pol, maxDays int) ([]Day, error) {
	out, err := runRestic(ctx, bin, "cat", "config")
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Pol chunker.Pol `json:"chunker_polynomial"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return nil, fmt.Errorf("reading the repository config: %w", err)
	}
	if out, err = runRestic(ctx, bin, "snapshots", "--json"); err != nil {
		return nil, err
	}
	var all []snapshot
	if err := json.Unmarshal(out, &all); err != nil {
		return nil, fmt.Errorf("reading snapshots: %w", err)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	parts := map[string]map[string]snapshot{} // set -> part -> snapshot
	var dbs []snapshot
	for _, s := range all {
		set, part := s.Tag("set"), s.Tag("part")
		if set == "" || part == "" {
			continue
		}
		if parts[set] == nil {
			parts[set] = map[string]snapshot{}
		}
		parts[set][part] = s
		if part == "db" {
			dbs = append(dbs, s)
		}
	}
	if len(dbs) < 2 {
		return nil, errors.New("the repository holds fewer than two database parts: nothing to compare")
	}
	from := 1
	if last > 0 && len(dbs)-last > from {
		from = len(dbs) - last
	}
	check := true
	if polOverride != 0 {
		// Another polynomial: every stream is re-cut, none can be checked against its blobs.
		cfg.Pol, check, from = polOverride, false, 1
		if maxDays > 0 && len(dbs) > maxDays+1 {
			dbs = dbs[:maxDays+1]
		}
	}
	known := map[string]bool{}
	var days []Day
	var prev map[string]string
	for i, s := range dbs {
		name, content, err := treeContent(ctx, bin, s.Tree)
		if err != nil {
			return nil, err
		}
		if i < from-1 {
			for _, id := range content {
				known[id] = true
			}
			continue
		}
		if !check {
			content = nil
		}
		if i == from-1 {
			// The previous stream: only its sources' digests, to tell changes from spill-over.
			if _, prev, err = attributeSnapshot(ctx, bin, cfg.Pol, s, name, content, known, nil, nil); err != nil {
				return nil, err
			}
			continue
		}
		var d *Day
		d, prev, err = attributeSnapshot(ctx, bin, cfg.Pol, s, name, content, known, prev, verbose)
		if err != nil {
			return nil, err
		}
		for _, p := range []string{"files", "manifest"} {
			if ps, ok := parts[s.Tag("set")][p]; ok && ps.Summary != nil {
				d.Rows = append(d.Rows, Row{Source: "part " + p, NewBytes: ps.Summary.DataAdded, AddedPacked: ps.Summary.DataAddedPacked})
			}
		}
		days = append(days, *d)
	}
	return days, nil
}

// attributeSnapshot dumps one database part, re-cuts it and attributes its new chunks.
// prev are the previous stream's source digests; the stream's own are returned.
func attributeSnapshot(ctx context.Context, bin string, pol chunker.Pol, s snapshot, name string, content []string, known map[string]bool, prev map[string]string, verbose io.Writer) (*Day, map[string]string, error) {
	cmd := exec.CommandContext(ctx, bin, "--no-lock", "-q", "dump", s.ID, "/"+name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting restic dump: %w", err)
	}
	chunks, spans, digests, n, cerr := chunkStream(bufio.NewReaderSize(pipe, 1<<20), pol)
	if cerr != nil {
		_, _ = io.Copy(io.Discard, pipe)
	}
	werr := cmd.Wait()
	if cerr != nil {
		return nil, nil, cerr
	}
	if werr != nil {
		return nil, nil, fmt.Errorf("restic dump %s: %v: %s", s.ID, werr, strings.TrimSpace(stderr.String()))
	}
	if content == nil {
		// Re-cut with another polynomial: nothing to check against.
	} else if len(chunks) != len(content) {
		return nil, nil, fmt.Errorf("snapshot %s: re-cut into %d chunks but restic stored %d (different chunker?)", s.ID, len(chunks), len(content))
	}
	for i, c := range chunks {
		if content != nil && c.ID != content[i] {
			return nil, nil, fmt.Errorf("snapshot %s: chunk %d is %s but restic stored %s (different chunker?)", s.ID, i, c.ID[:12], content[i][:12])
		}
	}
	d := &Day{Set: s.Tag("set"), StreamBytes: n, Chunks: len(chunks)}
	if s.Summary != nil {
		d.DBAdded, d.DBAddedPack = s.Summary.DataAdded, s.Summary.DataAddedPacked
	}
	seen := map[string]bool{}
	for _, c := range chunks {
		if !known[c.ID] && !seen[c.ID] {
			seen[c.ID] = true
			d.NewChunks++
			d.NewBytes += c.Len
		}
	}
	d.Rows = attribute(chunks, spans, known, digests, prev, verbose)
	rows := d.Rows
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].NewBytes > rows[j].NewBytes })
	return d, digests, nil
}

func mb(n int64) string { return fmt.Sprintf("%.2f", float64(n)/1e6) }

// printTable prints each day's sources with new bytes, then the sum over all days.
func printTable(w io.Writer, days []Day, top int) {
	total := map[string]*Row{}
	var order []string
	var sumNew, sumAdded, sumPacked int64
	changedDays := map[string]int{}
	what := func(r Row) string {
		switch {
		case strings.HasPrefix(r.Source, "part "):
			return fmt.Sprintf("restic added, packed %s MB", mb(r.AddedPacked))
		case r.Changed:
			return "changed"
		}
		return "unchanged (spill-over)"
	}
	for _, d := range days {
		fmt.Fprintf(w, "\n## set %s: stream %s MB in %d chunks, %d new chunks = %s MB (restic db added %s MB, packed %s MB)\n\n",
			d.Set, mb(d.StreamBytes), d.Chunks, d.NewChunks, mb(d.NewBytes), mb(d.DBAdded), mb(d.DBAddedPack))
		fmt.Fprintln(w, "| source | stream MB | new MB | new chunks | its bytes |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---|")
		var restNew, restBytes int64
		listed := 0
		for _, r := range d.Rows {
			t, ok := total[r.Source]
			if !ok {
				t = &Row{Source: r.Source}
				total[r.Source] = t
				order = append(order, r.Source)
			}
			t.Bytes = max(t.Bytes, r.Bytes)
			t.NewBytes += r.NewBytes
			t.NewChunks += r.NewChunks
			t.AddedPacked += r.AddedPacked
			if r.Changed {
				changedDays[r.Source]++
			}
			if r.NewBytes == 0 && !strings.HasPrefix(r.Source, "part ") {
				restBytes += r.Bytes
				continue
			}
			if listed >= top && !strings.HasPrefix(r.Source, "part ") {
				restNew += r.NewBytes
				restBytes += r.Bytes
				continue
			}
			listed++
			fmt.Fprintf(w, "| %s | %s | %s | %d | %s |\n", r.Source, mb(r.Bytes), mb(r.NewBytes), r.NewChunks, what(r))
		}
		fmt.Fprintf(w, "| (all other sources) | %s | %s | | |\n", mb(restBytes), mb(restNew))
		sumNew += d.NewBytes
		sumAdded += d.DBAdded
		sumPacked += d.DBAddedPack
	}
	fmt.Fprintf(w, "\n## all %d days: new stream chunks %s MB (restic db added %s MB, packed %s MB)\n\n", len(days), mb(sumNew), mb(sumAdded), mb(sumPacked))
	fmt.Fprintln(w, "| source | stream MB | new MB (sum) | new MB/day | share of new | new chunks | days changed |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	sort.SliceStable(order, func(i, j int) bool { return total[order[i]].NewBytes > total[order[j]].NewBytes })
	var all int64
	for _, k := range order {
		all += total[k].NewBytes
	}
	for _, k := range order {
		t := total[k]
		if t.NewBytes == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.1f%% | %d | %d |\n", k, mb(t.Bytes), mb(t.NewBytes), mb(t.NewBytes/int64(len(days))),
			100*float64(t.NewBytes)/float64(max(all, 1)), t.NewChunks, changedDays[k])
	}
}
