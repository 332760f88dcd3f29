package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metricsOf builds the numeric and string maps readMetrics returns from KEY VALUE lines.
func metricsOf(t *testing.T, text string) (map[string]float64, map[string]string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "metrics.txt")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m, s, err := readMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// fullRun is a metrics file with every step of a full run: scale 1, real 2.44, scale 4.
const fullRun = `quick 0
scale 1.0
storage.scale 1.0
storage.days 30
db_bytes 2000000000
pgdump_fc.wall_s 10
snapshot.wall_s 6
snapshot.rss_sum_kb.dhis2-life 40000
snapshot.rss_sum_kb.restic 150000
snapshot.rss_kb.restic 150000
r244_day1.rss_kb.restic 900000
restore.wall_s 9
restore.rss_sum_kb.dhis2-life 30000
pg_restore.wall_s 10
storage.fc_bytes 60000000
storage.gz_bytes 61000000
storage.first_bytes 70000000
storage.bucket_bytes 128000000
storage.snapshots 30
r244_scale 1.0
r244_generation 2.44
r244_db_bytes 1500000000
r244_pgdump_fc.wall_s 8
r244_snapshot.wall_s 6
r244_restore.wall_s 15
r244_pg_restore.wall_s 12
r244_storage.fc_bytes 40000000
r244_storage.first_bytes 45000000
r244_storage.bucket_bytes 90000000
r244_storage.days 30
r244_storage.snapshots 30
r244_day1.rss_sum_kb.restic 900000
scale4 4
s4_scale 4
s4_db_bytes 8000000000
s4_pgdump_fc.wall_s 40
s4_snapshot.wall_s 28
s4_snapshot.rss_sum_kb.dhis2-life 41000
s4_snapshot.rss_sum_kb.restic 180000
s4_restore.wall_s 38
s4_restore.rss_sum_kb.dhis2-life 31000
s4_restore.rss_sum_kb.restic 200000
s4_day3.rss_sum_kb.restic 210000
s4_pg_restore.wall_s 40
s4_storage.fc_bytes 240000000
s4_storage.first_bytes 280000000
s4_storage.bucket_bytes 352000000
s4_storage.days 10
s4_storage.snapshots 10
clone_train_keep.wall_s 20
clone_training.wall_s 23
clone_training.pii_seconds 1.5
clone_training.scan_seconds 1.25
`

func rowsByName(r result) map[string]Row {
	rows := map[string]Row{}
	for _, row := range r.Rows {
		rows[row.Measure] = row
	}
	return rows
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

func TestBuildSetRowsAndTargets(t *testing.T) {
	r := build(metricsOf(t, fullRun))
	rows := rowsByName(r)
	cases := []struct {
		name        string
		ours, base  float64
		ratio       float64
		target      string
		met         bool
		scale       float64
		oursContain string
	}{
		{"snapshot_vs_pg_dump", 6, 10, 0.6, "<= 0.7", true, 1, "DB stream"},
		{"restore_vs_pg_restore", 9, 10, 0.9, "<= 1.0", true, 1, "fresh DB"},
		{"storage_30d_vs_full", 128, 1800, 0.071, "<= 0.06667 (= 2.0 x one full dump at 30 days)", false, 1, "30 daily snapshots"},
		{"snapshot_vs_pg_dump_real244", 6, 8, 0.75, "<= 0.7", false, 1, "real DHIS2 2.44 schema"},
		{"restore_vs_pg_restore_real244", 15, 12, 1.25, "<= 1.0", false, 1, "real DHIS2 2.44 schema"},
		{"storage_30d_vs_full_real244", 90, 1200, 0.075, "<= 0.06667 (= 2.0 x one full dump at 30 days)", false, 1, "real DHIS2 2.44 schema"},
		{"snapshot_vs_pg_dump_scale4", 28, 40, 0.7, "<= 0.7", true, 4, "at scale 4"},
		{"restore_vs_pg_restore_scale4", 38, 40, 0.95, "<= 1.0", true, 4, "at scale 4"},
		{"storage_30d_vs_full_scale4", 352, 2400, 0.147, "<= 0.2 (= 2.0 x one full dump at 10 days)", true, 4, "10 daily snapshots"},
		{"clone_pii_vs_keep", 23, 20, 1.15, "<= 1.2", true, 1, "pseudonymise"},
	}
	for _, c := range cases {
		row, ok := rows[c.name]
		if !ok {
			t.Errorf("row %s missing; rows: %v", c.name, r.Rows)
			continue
		}
		if !near(row.Ours, c.ours) || !near(row.Baseline, c.base) || !near(row.Ratio, c.ratio) {
			t.Errorf("%s: ours %v baseline %v ratio %v, want %v %v %v", c.name, row.Ours, row.Baseline, row.Ratio, c.ours, c.base, c.ratio)
		}
		if row.Target != c.target || row.Met == nil || *row.Met != c.met {
			t.Errorf("%s: target %q met %v, want %q %v", c.name, row.Target, metStr(row.Met), c.target, c.met)
		}
		if row.Scale != c.scale || !strings.Contains(row.OursIs, c.oursContain) {
			t.Errorf("%s: scale %v ours_is %q, want scale %v and %q", c.name, row.Scale, row.OursIs, c.scale, c.oursContain)
		}
	}
	// 10 days at scale 4: 280 MB first + 9 days of 8 MB; 30 days project 280 + 29*8 = 512 MB.
	if got := rows["storage_30d_vs_full_scale4"].Extra["projected_30d_ratio_vs_one_full_dump"]; !near(got, 512.0/240) {
		t.Errorf("projected 30-day ratio at scale 4 = %v, want %v", got, 512.0/240)
	}
	if _, ok := rows["storage_30d_vs_full"].Extra["projected_30d_ratio_vs_one_full_dump"]; ok {
		t.Error("a 30-day run got a projection")
	}
	if e := rows["clone_pii_vs_keep"].Extra; !near(e["pii_clone_pii_seconds"], 1.5) || !near(e["pii_clone_scan_seconds"], 1.25) {
		t.Errorf("clone_pii_vs_keep extras: %v", e)
	}
	// The dst row stays a scale-1-only row.
	for name := range rows {
		if strings.HasPrefix(name, "snapshot_vs_dst_practice_") {
			t.Errorf("unexpected row %s", name)
		}
	}
}

func TestBuildGrowthRows(t *testing.T) {
	r := build(metricsOf(t, fullRun))
	rows := rowsByName(r)
	// scale 1: 2 GB; scale 4: 8 GB.
	cases := []struct {
		name       string
		ours, base float64
		met        bool
	}{
		{"snapshot_s_per_gb_scale4", 3.5, 3, false},   // 28/8 vs 6/2: worse than linear
		{"restore_s_per_gb_scale4", 4.75, 4.5, false}, // 38/8 vs 9/2
		{"storage_mb_per_gb_scale4", 64, 64, true},    // (280+29*8)/8 vs 128/2
	}
	for _, c := range cases {
		row, ok := rows[c.name]
		if !ok {
			t.Fatalf("row %s missing", c.name)
		}
		if !near(row.Ours, c.ours) || !near(row.Baseline, c.base) || row.Met == nil || *row.Met != c.met || row.Target != "<= 1.0 (linear or better)" {
			t.Errorf("%s: ours %v baseline %v met %s target %q, want %v %v %v", c.name, row.Ours, row.Baseline, metStr(row.Met), row.Target, c.ours, c.base, c.met)
		}
	}
	st := rows["storage_mb_per_gb_scale4"].Extra
	if !near(st["per_day_mb_per_gb_scale4"], 1) || !near(st["per_day_mb_per_gb_scale1"], 1) || st["days_scale4"] != 10 {
		t.Errorf("storage growth extras: %v", st)
	}
	if !near(rows["restore_s_per_gb_scale4"].Extra["pg_restore_s_per_gb_scale4"], 5) {
		t.Errorf("pg_restore rate at scale 4: %v", rows["restore_s_per_gb_scale4"].Extra)
	}
	found := false
	for _, n := range r.Notes {
		if strings.Contains(n, "projection from the scale-4 rates") && strings.Contains(n, "snapshot 3.5 s/GB = 50 GB in 3 min, 200 GB in 12 min") {
			found = true
		}
	}
	if !found {
		t.Errorf("projection note missing: %q", r.Notes)
	}
}

func TestBuildResticPeak(t *testing.T) {
	r := build(metricsOf(t, fullRun))
	row, ok := rowsByName(r)["restic_peak_mb_scale4"]
	if !ok {
		t.Fatal("restic_peak_mb_scale4 missing")
	}
	// The largest scale-4 step (day3, 210000 kB), not the 2.44 run's 900000 kB.
	if !near(row.Ours, 210000.0/1024) || row.Baseline != 256 || row.Met == nil || !*row.Met || !strings.Contains(row.OursIs, "day3") {
		t.Errorf("restic peak row: %+v", row)
	}
	if got := row.Extra["restic_peak_mb_scale1"]; !near(got, 150000.0/1024) {
		t.Errorf("restic_peak_mb_scale1 = %v (must leave out the r244_ and s4_ steps)", got)
	}
	// The scale-1 row's restic peak also leaves out the other databases' steps.
	if got := rowsByName(r)["peak_rss_mb_scale1"].Extra["restic_peak_mb"]; !near(got, 150000.0/1024) {
		t.Errorf("peak_rss_mb_scale1 restic_peak_mb = %v", got)
	}
	over := fullRun + "s4_restore.rss_sum_kb.restic 300000\n"
	row = rowsByName(build(metricsOf(t, over)))["restic_peak_mb_scale4"]
	if row.Met == nil || *row.Met {
		t.Errorf("a 293 MB restic peak met the 256 MB target: %+v", row)
	}
}

func TestBuildLeavesOutMissingSets(t *testing.T) {
	// A scale-1-only run (BENCH_REAL244=0 BENCH_SCALE4=0): no 2.44, scale-4 or growth rows.
	var lines []string
	for _, l := range strings.Split(fullRun, "\n") {
		if !strings.HasPrefix(l, "r244_") && !strings.HasPrefix(l, "s4_") && !strings.HasPrefix(l, "scale4") {
			lines = append(lines, l)
		}
	}
	r := build(metricsOf(t, strings.Join(lines, "\n")))
	for _, row := range r.Rows {
		if strings.HasSuffix(row.Measure, "_real244") || strings.HasSuffix(row.Measure, "_scale4") {
			t.Errorf("row %s built without its measurements", row.Measure)
		}
	}
	if len(r.Rows) == 0 {
		t.Fatal("no scale-1 rows")
	}
}

func TestWriteJSONContract(t *testing.T) {
	dir := t.TempDir()
	if err := write(dir, build(metricsOf(t, fullRun))); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Rows) == 0 {
		t.Fatal("no rows in latest.json")
	}
	for _, row := range doc.Rows {
		for _, k := range []string{"measure", "ours", "baseline", "unit", "ratio", "target"} {
			if _, ok := row[k]; !ok {
				t.Errorf("row %v lacks %q (DESIGN.md contract)", row["measure"], k)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "latest.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| restore_vs_pg_restore_real244 |") || !strings.Contains(string(md), "| restic_peak_mb_scale4 |") {
		t.Errorf("latest.md lacks the new rows:\n%s", md)
	}
}

// TestBuildRounds: a pair timed in interleaved rounds keeps the median wall time bench.sh
// wrote last (later lines win) and shows every round of both sides in the row's extra.
func TestBuildRounds(t *testing.T) {
	r := build(metricsOf(t, fullRun+`restore.wall_s 9.5
restore.round_1_s 9.5
pg_restore.wall_s 11
pg_restore.round_1_s 11
restore.wall_s 12
restore.round_2_s 12
pg_restore.wall_s 10
pg_restore.round_2_s 10
restore.wall_s 8
restore.round_3_s 8
pg_restore.wall_s 10.5
pg_restore.round_3_s 10.5
restore.wall_s 9.5
pg_restore.wall_s 10.5
`))
	row := rowsByName(r)["restore_vs_pg_restore"]
	if !near(row.Ours, 9.5) || !near(row.Baseline, 10.5) || !near(row.Ratio, 0.905) {
		t.Errorf("restore row: ours %v baseline %v ratio %v, want the medians 9.5, 10.5 and 0.905", row.Ours, row.Baseline, row.Ratio)
	}
	want := extraMap{"rounds": 3, "ours_round1_s": 9.5, "ours_round2_s": 12, "ours_round3_s": 8,
		"baseline_round1_s": 11, "baseline_round2_s": 10, "baseline_round3_s": 10.5}
	for k, v := range want {
		if got, ok := row.Extra[k]; !ok || !near(got, v) {
			t.Errorf("extra %s = %v (present %v), want %v; extra: %v", k, got, ok, v, row.Extra)
		}
	}
	if _, ok := rowsByName(r)["snapshot_vs_pg_dump"].Extra["rounds"]; ok {
		t.Error("a step timed once got rounds")
	}
}
