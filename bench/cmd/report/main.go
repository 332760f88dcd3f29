// Command report turns the "KEY VALUE" metrics that scripts/bench.sh and benchrun collected
// into bench/results/latest.json and latest.md (the `make bench` contract in DESIGN.md) and
// prints the table. A measure whose inputs are missing is left out, never estimated.
//
//	report -metrics metrics.txt -out bench/results
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one measure of latest.json. Measure, Ours, Baseline, Unit, Ratio and Target are the
// contract; the rest explains the row.
type Row struct {
	Measure    string   `json:"measure"`
	Ours       float64  `json:"ours"`
	Baseline   float64  `json:"baseline"`
	Unit       string   `json:"unit"`
	Ratio      float64  `json:"ratio"`
	Target     string   `json:"target"`
	Met        *bool    `json:"met,omitempty"`
	Scale      float64  `json:"scale"`
	OursIs     string   `json:"ours_is"`
	BaselineIs string   `json:"baseline_is"`
	Extra      extraMap `json:"extra,omitempty"`
}

type extraMap map[string]float64

type result struct {
	Generated string            `json:"generated"`
	Quick     bool              `json:"quick"`
	Scale     float64           `json:"scale"`
	Machine   map[string]any    `json:"machine"`
	Versions  map[string]string `json:"versions"`
	Rows      []Row             `json:"rows"`
	Notes     []string          `json:"notes"`
}

func main() {
	metricsFile := flag.String("metrics", "", "metrics file (KEY VALUE lines; later lines win)")
	out := flag.String("out", "bench/results", "directory for latest.json and latest.md")
	flag.Parse()
	m, s, err := readMetrics(*metricsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	r := build(m, s)
	if err := write(*out, r); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, r)
}

func readMetrics(path string) (map[string]float64, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	nums, strs := map[string]float64{}, map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || k == "" {
			continue
		}
		v = strings.TrimSpace(v)
		strs[k] = v
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			nums[k] = n
		}
	}
	return nums, strs, sc.Err()
}

func build(m map[string]float64, s map[string]string) result {
	r := result{
		Generated: time.Now().UTC().Format(time.RFC3339),
		Quick:     m["quick"] == 1,
		Scale:     m["scale"],
		Machine:   machine(),
		Versions:  map[string]string{"go": runtime.Version()},
	}
	for k, v := range s {
		if name, ok := strings.CutPrefix(k, "version."); ok {
			r.Versions[name] = v
		}
	}
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return false
			}
		}
		return true
	}
	le := func(limit float64) func(float64) bool { return func(x float64) bool { return x <= limit } }
	var add addFunc = func(measure, unit, target string, ours, base float64, ok func(ratio float64) bool, oursIs, baseIs string, scale float64, extra extraMap) {
		row := Row{Measure: measure, Ours: round(ours), Baseline: round(base), Unit: unit, Target: target,
			Scale: scale, OursIs: oursIs, BaselineIs: baseIs, Extra: extra}
		if base > 0 {
			row.Ratio = round(ours / base)
			if ok != nil {
				met := ok(ours / base)
				row.Met = &met
			}
		}
		r.Rows = append(r.Rows, row)
	}
	sc := m["scale"]
	// load tells how busy the machine was during the two steps a row compares (the busy
	// fraction also counts the PostgreSQL backends serving the step, and anything else running;
	// of the last round when a step ran in rounds), and each round's time of a step timed in
	// interleaved rounds (its wall time is then their median: scripts/bench.sh).
	load := func(ours, base string, e extraMap) extraMap {
		if e == nil {
			e = extraMap{}
		}
		for _, st := range [][2]string{{"ours", ours}, {"baseline", base}} {
			if v, ok := m[st[1]+".machine_busy"]; ok {
				e[st[0]+"_machine_busy"] = v
			}
			if v, ok := m[st[1]+".tree_cpu_s"]; ok {
				e[st[0]+"_cpu_s"] = v
			}
			for i := 1; ; i++ {
				v, ok := m[fmt.Sprintf("%s.round_%d_s", st[1], i)]
				if !ok {
					break
				}
				e[fmt.Sprintf("%s_round%d_s", st[0], i)] = v
				e["rounds"] = float64(i)
			}
		}
		return e
	}
	// setRows adds the snapshot, restore and storage rows of one database: the scale-1 fixture
	// (prefix ""), the real 2.44 schema ("r244_") and the growth run ("s4_"); suffix names the
	// row ("", "_real244", "_scale4").
	setRows := func(p, suffix, what string, scale float64) {
		if has(p+"snapshot.wall_s", p+"pgdump_fc.wall_s") {
			add("snapshot_vs_pg_dump"+suffix, "s", "<= 0.7", m[p+"snapshot.wall_s"], m[p+"pgdump_fc.wall_s"], le(0.7),
				"dhis2-life snapshot (DB stream + files + manifest into restic on MinIO)"+what,
				"pg_dump -Fc -f FILE, same --exclude-table-data, local file only", scale, load(p+"snapshot", p+"pgdump_fc", nil))
		}
		if p == "" && has("snapshot.wall_s", "dst.wall_s") {
			add("snapshot_vs_dst_practice", "s", "none (informational)", m["snapshot.wall_s"], m["dst.wall_s"], nil,
				"dhis2-life snapshot",
				"today's dhis2-server-tools pipeline pg_dump -O -Fp | gzip > FILE, then an S3 PUT of the file to the same MinIO (with the same --exclude-table-data as ours instead of the tool's -T aggregated_* -T analytics_* -T completeness_*, so the ratio measures the pipeline)",
				sc, load("snapshot", "dst_dump", extraMap{"dump_gzip_s": m["dst_dump.wall_s"], "upload_s": m["dst_upload.wall_s"]}))
		}
		if has(p+"restore.wall_s", p+"pg_restore.wall_s") {
			add("restore_vs_pg_restore"+suffix, "s", "<= 1.0", m[p+"restore.wall_s"], m[p+"pg_restore.wall_s"], le(1.0),
				"dhis2-life restore latest --to-db (fresh DB, indexes built, files restored)"+what,
				"createdb + pg_restore -j2 of the -Fc file into a fresh DB", scale, load(p+"restore", p+"pg_restore", nil))
		}
		if has(p+"storage.bucket_bytes", p+"storage.fc_bytes", p+"storage.days") && m[p+"storage.days"] > 0 {
			days := m[p+"storage.days"]
			// The measure is "bytes in the bucket vs DAYS × one compressed full dump"; the target is
			// "≤ 2.0 × ONE full dump", i.e. ratio ≤ 2/DAYS. Both are in the row.
			extra := extraMap{
				"days": days, "one_full_dump_mb": round(m[p+"storage.fc_bytes"] / 1e6),
				"ratio_vs_one_full_dump": round(m[p+"storage.bucket_bytes"] / m[p+"storage.fc_bytes"]),
				"first_snapshot_mb":      round(m[p+"storage.first_bytes"] / 1e6),
			}
			if v, ok := m[p+"storage.gz_bytes"]; ok {
				extra["one_gzip_plain_dump_mb"] = round(v / 1e6)
			}
			if days != 30 && days > 1 && has(p+"storage.first_bytes") {
				// Fewer days than 30: the measured daily growth projected to 30 days.
				extra["projected_30d_ratio_vs_one_full_dump"] = round(storage30(m, p) / m[p+"storage.fc_bytes"])
			}
			storageScale := scale
			if v, ok := m[p+"storage.scale"]; ok {
				storageScale = v
			}
			add("storage_30d_vs_full"+suffix, "MB", fmt.Sprintf("<= %.4g (= 2.0 x one full dump at %g days)", 2/days, days),
				m[p+"storage.bucket_bytes"]/1e6, days*m[p+"storage.fc_bytes"]/1e6, le(2/days),
				fmt.Sprintf("bucket bytes of the restic repository after %g daily snapshots (%g simulated days of changes)%s", m[p+"storage.snapshots"], days-1, what),
				fmt.Sprintf("%g x one pg_dump -Fc file (today's practice keeps one compressed dump per day for 30 days)", days),
				storageScale, extra)
		}
	}
	setRows("", "", "", sc)
	setRows("r244_", "_real244", fmt.Sprintf(" on the real DHIS2 2.44 schema (testdata/dhis2-core-schema) filled by the fixture at scale %g", m["r244_scale"]), m["r244_scale"])
	setRows("s4_", "_scale4", fmt.Sprintf(" at scale %g", m["s4_scale"]), m["s4_scale"])
	r.Notes = append(r.Notes, growthRows(m, add)...)
	if has("clone_repeat.wall_s", "clone_first.wall_s") {
		add("repeat_clone_vs_first", "s", "<= 0.2", m["clone_repeat.wall_s"], m["clone_first.wall_s"], le(0.2),
			"dhis2-life clone of the same set, second time", "dhis2-life clone, first time", sc, load("clone_repeat", "clone_first", nil))
	}
	if has("clone_training.wall_s", "clone_train_keep.wall_s") {
		extra := extraMap{}
		for _, k := range []string{"restore_seconds", "pii_seconds", "scrub_seconds", "scan_seconds"} {
			if v, ok := m["clone_training."+k]; ok {
				extra["pii_clone_"+k] = round(v)
			}
		}
		add("clone_pii_vs_keep", "s", "<= 1.2", m["clone_training.wall_s"], m["clone_train_keep.wall_s"], le(1.2),
			"dhis2-life clone --to training with pii = \"pseudonymise\" (personal data pseudonymised during the restore, then the scan of the whole clone)",
			"the same training clone with pii = \"keep\"", sc, load("clone_training", "clone_train_keep", extra))
	}
	if has("verify.wall_s", "restore.wall_s") {
		add("drill_vs_restore", "s", "<= 1.1", m["verify.wall_s"], m["restore.wall_s"], le(1.1),
			"dhis2-life verify latest (restore into scratch DB + checks + restic check 2%)",
			"dhis2-life restore latest", sc, load("verify", "restore", extraMap{"drill_inner_restore_s": round(m["verify.restore_s"])}))
	}
	if has("base_backup.wall_s", "pg_basebackup.wall_s") {
		add("base_backup_vs_pg_basebackup", "s", "none (informational)", m["base_backup.wall_s"], m["pg_basebackup.wall_s"], nil,
			"dhis2-life base-backup (pg_basebackup -Ft -X none streamed into restic on MinIO, plus its manifest)",
			"pg_basebackup -Ft -X none to a local directory", m["pitr.scale"],
			load("base_backup", "pg_basebackup", extraMap{"base_backup_mb": round(m["pitr.basebackup_bytes"] / 1e6)}))
	}
	if has("pitr.data_at_risk_s", "pitr.archive_timeout_s") {
		add("data_at_risk_s", "s", "<= 1.0 (lost <= archive_timeout)", m["pitr.data_at_risk_s"], m["pitr.archive_timeout_s"], le(1.0),
			"seconds of committed writes (10 rows/s) not recoverable from the WAL archive after the primary was killed",
			"archive_timeout (a nightly snapshot risks up to 86400 s)", m["pitr.scale"], nil)
	}
	// Peak RSS: the largest concurrent sum of VmHWM over dhis2-life processes (the command and
	// its `internal dump` helper under restic) during snapshot, restore and verify.
	rss1, ok1 := peakRSS(m, "")
	if ok1 {
		add("peak_rss_mb_scale1", "MB", "<= 1.0 (150 MB)", rss1/1024, 150, le(1.0),
			fmt.Sprintf("peak RSS of dhis2-life processes (snapshot, restore, verify) at scale %g", sc),
			"the 150 MB budget", sc, extraMap{"restic_peak_mb": round(maxOf(m, "rss_kb.restic") / 1024)})
	}
	if rss4, ok4 := peakRSS(m, "s4_"); ok4 && ok1 {
		add("peak_rss_mb_scale4", "MB", "<= 150 MB and ratio <= 1.2 (flat)", rss4/1024, rss1/1024,
			func(ratio float64) bool { return rss4/1024 <= 150 && ratio <= 1.2 },
			fmt.Sprintf("peak RSS of dhis2-life processes (snapshot, restore) at scale %g", m["scale4"]),
			fmt.Sprintf("the same at scale %g", sc), m["scale4"], nil)
	}
	// restic's children: the largest concurrent sum of restic processes' VmHWM in any step of
	// the scale-4 run (snapshot, restore, daily snapshots), under the default memory limit.
	if peak, step, ok := resticPeak(m, "s4_"); ok {
		add("restic_peak_mb_scale4", "MB", "<= 1.0 (256 MB)", peak/1024, 256, le(1.0),
			fmt.Sprintf("peak RSS of restic processes (largest concurrent sum, in %s) at scale %g with the default tuning.restic_memory_limit_mb", step, m["scale4"]),
			"the 256 MB budget", m["scale4"], extraMap{"restic_peak_mb_scale1": round(maxOf(m, "rss_sum_kb.restic") / 1024)})
	}
	if has("prof_producer.wall_s", "prof_restic.wall_s", "prof.stream_bytes") {
		mb := m["prof.stream_bytes"] / 1e6
		r.Notes = append(r.Notes, fmt.Sprintf("profile of the snapshot (scale %g, %.0f MB DB stream): the dump producer alone "+
			"(dhis2-life internal dump-stream > file) %.1f s = %.0f MB/s (%.1f CPU-s in our tree, plus the PostgreSQL backend); "+
			"restic backup of that file alone %.1f s = %.0f MB/s (%.1f CPU-s: chunking, SHA-256, zstd); "+
			"the full snapshot ran both at once in %.1f s.",
			sc, mb, m["prof_producer.wall_s"], mb/m["prof_producer.wall_s"], m["prof_producer.tree_cpu_s"],
			m["prof_restic.wall_s"], mb/m["prof_restic.wall_s"], m["prof_restic.tree_cpu_s"], m["snapshot.wall_s"]))
	}
	if has("prof_pgdump_z0.wall_s", "pgdump_fc.wall_s") {
		r.Notes = append(r.Notes, fmt.Sprintf("baseline profile: pg_dump -Fc -Z0 (no compression) %.1f s vs -Fc %.1f s: "+
			"pg_dump's single-threaded gzip costs %.1f s of the baseline (pg_dump CPU %.1f s vs %.1f s).",
			m["prof_pgdump_z0.wall_s"], m["pgdump_fc.wall_s"], m["pgdump_fc.wall_s"]-m["prof_pgdump_z0.wall_s"],
			m["prof_pgdump_z0.tree_cpu_s"], m["pgdump_fc.tree_cpu_s"]))
	}
	if v, ok := m["bench.total_s"]; ok {
		r.Notes = append(r.Notes, fmt.Sprintf("the whole run (services, fixtures, every step) took %.1f min.", v/60))
	}
	for k, v := range s {
		if strings.HasPrefix(k, "note.") {
			r.Notes = append(r.Notes, v)
		}
	}
	return r
}

func peakRSS(m map[string]float64, prefix string) (float64, bool) {
	var best float64
	found := false
	for _, step := range []string{"snapshot", "restore", "verify"} {
		if v, ok := m[prefix+step+".rss_sum_kb.dhis2-life"]; ok {
			found = true
			best = math.Max(best, v)
		}
	}
	return best, found
}

// addFunc appends one row: ok judges ours/base against the target (nil: informational).
type addFunc func(measure, unit, target string, ours, base float64, ok func(ratio float64) bool, oursIs, baseIs string, scale float64, extra extraMap)

// growthRows adds the per-GB rates of the scale-4 run against the scale-1 fixture (ratio
// scale4/scale1: 1.0 is linear, below is better) and returns a note projecting 50 GB and
// 200 GB databases from the scale-4 rates.
func growthRows(m map[string]float64, add addFunc) []string {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return false
			}
		}
		return true
	}
	if !has("db_bytes", "s4_db_bytes") || m["db_bytes"] <= 0 || m["s4_db_bytes"] <= 0 {
		return nil
	}
	g1, g4 := gb(m, ""), gb(m, "s4_")
	s1, s4 := m["scale"], m["s4_scale"]
	linear := func(ratio float64) bool { return ratio <= 1.0 }
	const target = "<= 1.0 (linear or better)"
	sizes := extraMap{"db_gb_scale1": round(g1), "db_gb_scale4": round(g4)}
	with := func(e extraMap) extraMap {
		for k, v := range sizes {
			e[k] = v
		}
		return e
	}
	var notes []string
	var proj []string
	if has("snapshot.wall_s", "s4_snapshot.wall_s", "pgdump_fc.wall_s", "s4_pgdump_fc.wall_s") {
		add("snapshot_s_per_gb_scale4", "s/GB", target, m["s4_snapshot.wall_s"]/g4, m["snapshot.wall_s"]/g1, linear,
			fmt.Sprintf("dhis2-life snapshot seconds per GB of database (pg_database_size) at scale %g", s4),
			fmt.Sprintf("the same at scale %g", s1), s4, with(extraMap{
				"pg_dump_s_per_gb_scale1": round(m["pgdump_fc.wall_s"] / g1), "pg_dump_s_per_gb_scale4": round(m["s4_pgdump_fc.wall_s"] / g4)}))
		proj = append(proj, fmt.Sprintf("snapshot %s (pg_dump -Fc %s)", projTime(m["s4_snapshot.wall_s"]/g4), projTime(m["s4_pgdump_fc.wall_s"]/g4)))
	}
	if has("restore.wall_s", "s4_restore.wall_s", "pg_restore.wall_s", "s4_pg_restore.wall_s") {
		add("restore_s_per_gb_scale4", "s/GB", target, m["s4_restore.wall_s"]/g4, m["restore.wall_s"]/g1, linear,
			fmt.Sprintf("dhis2-life restore seconds per GB of database at scale %g", s4),
			fmt.Sprintf("the same at scale %g", s1), s4, with(extraMap{
				"pg_restore_s_per_gb_scale1": round(m["pg_restore.wall_s"] / g1), "pg_restore_s_per_gb_scale4": round(m["s4_pg_restore.wall_s"] / g4)}))
		proj = append(proj, fmt.Sprintf("restore %s (pg_restore -j2 %s)", projTime(m["s4_restore.wall_s"]/g4), projTime(m["s4_pg_restore.wall_s"]/g4)))
	}
	if has("storage.bucket_bytes", "storage.first_bytes", "storage.days", "s4_storage.bucket_bytes", "s4_storage.first_bytes", "s4_storage.days", "storage.fc_bytes", "s4_storage.fc_bytes") &&
		m["storage.days"] > 1 && m["s4_storage.days"] > 1 {
		perDay := func(p string) float64 {
			return (m[p+"storage.bucket_bytes"] - m[p+"storage.first_bytes"]) / (m[p+"storage.days"] - 1) / 1e6 / gb(m, p)
		}
		add("storage_mb_per_gb_scale4", "MB/GB", target, storage30(m, "s4_")/1e6/g4, storage30(m, "")/1e6/g1, linear,
			fmt.Sprintf("stored MB per GB of database for 30 daily snapshots at scale %g (first set + 29 x the mean daily growth of %g measured days)", s4, m["s4_storage.days"]),
			fmt.Sprintf("the same at scale %g (%g measured days)", s1, m["storage.days"]), s4, with(extraMap{
				"days_scale1": m["storage.days"], "days_scale4": m["s4_storage.days"],
				"first_set_mb_per_gb_scale1": round(m["storage.first_bytes"] / 1e6 / g1), "first_set_mb_per_gb_scale4": round(m["s4_storage.first_bytes"] / 1e6 / g4),
				"per_day_mb_per_gb_scale1": round(perDay("")), "per_day_mb_per_gb_scale4": round(perDay("s4_")),
				"one_dump_mb_per_gb_scale1": round(m["storage.fc_bytes"] / 1e6 / g1), "one_dump_mb_per_gb_scale4": round(m["s4_storage.fc_bytes"] / 1e6 / g4)}))
		proj = append(proj, fmt.Sprintf("30-day storage %.0f MB per GB of database (one pg_dump -Fc %.0f MB per GB)",
			storage30(m, "s4_")/1e6/g4, m["s4_storage.fc_bytes"]/1e6/g4))
	}
	if len(proj) > 0 {
		notes = append(notes, fmt.Sprintf("projection from the scale-%g rates (%.2f GB database), linear: per GB %s; see bench/README.md for 50 GB and 200 GB.",
			s4, g4, strings.Join(proj, ", ")))
	}
	return notes
}

// projTime formats a per-GB time as "X s/GB = 50 GB in Y min, 200 GB in Z min".
func projTime(sPerGB float64) string {
	return fmt.Sprintf("%.1f s/GB = 50 GB in %.0f min, 200 GB in %.0f min", sPerGB, sPerGB*50/60, sPerGB*200/60)
}

// setPrefixes are the metric prefixes of the databases measured besides the scale-1 fixture.
var setPrefixes = []string{"s4_", "r244_"}

// maxOf is the largest value of a "STEP.suffix" metric over the scale-1 fixture's steps.
func maxOf(m map[string]float64, suffix string) float64 {
	var best float64
	for k, v := range m {
		if !strings.HasSuffix(k, "."+suffix) {
			continue
		}
		other := false
		for _, p := range setPrefixes {
			other = other || strings.HasPrefix(k, p)
		}
		if !other {
			best = math.Max(best, v)
		}
	}
	return best
}

// resticPeak is the largest concurrent sum of restic's VmHWM over the steps named prefix*,
// in MiB×1024 (kB), and the step where it was reached.
func resticPeak(m map[string]float64, prefix string) (float64, string, bool) {
	var best float64
	step, found := "", false
	for k, v := range m {
		name, ok := strings.CutSuffix(k, ".rss_sum_kb.restic")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		if !found || v > best || (v == best && name < step) {
			best, step, found = v, strings.TrimPrefix(name, prefix), true
		}
	}
	return best, step, found
}

// storage30 is the bytes a DAYS-day storage run under prefix p projects for 30 daily
// snapshots: the first set plus 29 times the average added per day.
func storage30(m map[string]float64, p string) float64 {
	days := m[p+"storage.days"]
	first := m[p+"storage.first_bytes"]
	if days <= 1 {
		return first
	}
	return first + 29*(m[p+"storage.bucket_bytes"]-first)/(days-1)
}

// gb is the database size (pg_database_size) of a run, in GB (1e9 bytes).
func gb(m map[string]float64, p string) float64 { return m[p+"db_bytes"] / 1e9 }

func round(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return math.Round(x*1000) / 1000
}

func machine() map[string]any {
	mach := map[string]any{"cores": runtime.NumCPU(), "os": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				mach["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				mach["memory_gib"] = math.Round(kb/1024/1024*10) / 10
			}
		}
	}
	if h, err := os.Hostname(); err == nil {
		mach["hostname"] = h
	}
	return mach
}

func write(dir string, r result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if r.Rows == nil {
		r.Rows = []Row{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // targets read "<= 0.8", not "\u003c= 0.8"
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), b.Bytes(), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# dhis2-life benchmark results\n\nGenerated %s by `make bench`", r.Generated)
	if r.Quick {
		md.WriteString(" (BENCH_QUICK=1: small scale, few days — harness check, not a result)")
	}
	fmt.Fprintf(&md, ", scale %g.\n\n", r.Scale)
	fmt.Fprintf(&md, "Machine: %v, %v cores, %v GiB. Versions:", r.Machine["cpu"], r.Machine["cores"], r.Machine["memory_gib"])
	for _, k := range []string{"dhis2-life", "restic", "postgres", "pg_dump", "minio", "go"} {
		if v, ok := r.Versions[k]; ok {
			fmt.Fprintf(&md, " %s %s;", k, v)
		}
	}
	md.WriteString("\n\n| measure | dhis2-life | baseline | unit | ratio | target | met? |\n|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %s | %s |\n", row.Measure, num(row.Ours), num(row.Baseline), row.Unit,
			num(row.Ratio), row.Target, metStr(row.Met))
	}
	md.WriteString("\nWhat each row compares:\n\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&md, "- **%s** (scale %g): ours = %s; baseline = %s.", row.Measure, row.Scale, row.OursIs, row.BaselineIs)
		for _, k := range sortedKeys(row.Extra) {
			fmt.Fprintf(&md, " %s=%s", k, num(row.Extra[k]))
		}
		md.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		md.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&md, "- %s\n", n)
		}
	}
	return os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md.String()), 0o644)
}

func sortedKeys(e extraMap) []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func printTable(w io.Writer, r result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tdhis2-life\tbaseline\tunit\tratio\ttarget\tmet?")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Measure, num(row.Ours), num(row.Baseline), row.Unit, num(row.Ratio), row.Target, metStr(row.Met))
	}
	tw.Flush()
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func metStr(b *bool) string {
	switch {
	case b == nil:
		return "-"
	case *b:
		return "yes"
	default:
		return "NO"
	}
}
