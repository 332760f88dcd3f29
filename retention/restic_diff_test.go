package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

// The differential test: the same generated histories go to real restic (one snapshot per set,
// dated with --time, tagged with the set ID, one host per history) and to Plan; restic's own
// `forget --dry-run --json` under each random policy must agree with Plan on every set.
const (
	diffSeed      = 20261203
	diffHistories = 3  // one restic host each, 40–120 sets over up to 3 years
	diffPolicies  = 30 // each applied to every history: 90 history×policy comparisons
)

var diffEnd = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) // in the past, so "latest" is the newest set

type diffHistory struct {
	host string
	sets []Set
}

// genHistories draws histories of three shapes: uniform, one-a-day with gaps and bursts.
func genHistories(r *rand.Rand) []diffHistory {
	var hs []diffHistory
	for h := 0; h < diffHistories; h++ {
		n := 40 + r.Intn(81)
		span := time.Duration(1+r.Intn(3*365)) * 24 * time.Hour
		start := diffEnd.Add(-span)
		seen := map[int64]bool{}
		var times []time.Time
		add := func(t time.Time) {
			t = t.Truncate(time.Second)
			if t.After(diffEnd) || t.Before(start) || seen[t.Unix()] {
				return
			}
			seen[t.Unix()] = true
			times = append(times, t)
		}
		shape := h % 3
		for len(times) < n {
			switch shape {
			case 0: // uniform over the span
				add(start.Add(time.Duration(r.Int63n(int64(span)))))
			case 1: // daily at 02:00 ± jitter, skipping days at random
				d := time.Duration(r.Intn(int(span/(24*time.Hour))+1)) * 24 * time.Hour
				add(start.Truncate(24 * time.Hour).Add(d + 2*time.Hour + time.Duration(r.Intn(3600))*time.Second))
			default: // bursts: a few sets within hours of each other
				c := start.Add(time.Duration(r.Int63n(int64(span))))
				for k := 0; k < 1+r.Intn(5) && len(times) < n; k++ {
					add(c.Add(time.Duration(r.Intn(6*3600)) * time.Second))
				}
			}
		}
		host := fmt.Sprintf("h%d", h)
		sets := make([]Set, len(times))
		for i, t := range times {
			sets[i] = Set{ID: fmt.Sprintf("%s-%03d", host, i), Instance: host, Time: t}
		}
		hs = append(hs, diffHistory{host: host, sets: sets})
	}
	return hs
}

// genPolicies draws non-empty keep-* policies; keep_within is whole days and hours, as restic
// spells it.
func genPolicies(r *rand.Rand) []*Policy {
	var ps []*Policy
	for len(ps) < diffPolicies {
		p := &Policy{}
		pick := func(max int) int {
			if r.Intn(2) == 0 {
				return 0
			}
			return 1 + r.Intn(max)
		}
		p.KeepLast = pick(10)
		p.KeepDaily = pick(14)
		p.KeepWeekly = pick(8)
		p.KeepMonthly = pick(24)
		p.KeepYearly = pick(6)
		if r.Intn(4) == 0 {
			p.KeepWithin = time.Duration(r.Intn(400))*24*time.Hour + time.Duration(r.Intn(24))*time.Hour
		}
		if !p.KeepsNothing() {
			ps = append(ps, p)
		}
	}
	return ps
}

func resticArgs(p *Policy) []string {
	var a []string
	for _, f := range []struct {
		flag string
		n    int
	}{{"--keep-last", p.KeepLast}, {"--keep-daily", p.KeepDaily}, {"--keep-weekly", p.KeepWeekly},
		{"--keep-monthly", p.KeepMonthly}, {"--keep-yearly", p.KeepYearly}} {
		if f.n > 0 {
			a = append(a, f.flag, fmt.Sprint(f.n))
		}
	}
	if p.KeepWithin > 0 {
		d := p.KeepWithin / (24 * time.Hour)
		h := (p.KeepWithin % (24 * time.Hour)) / time.Hour
		a = append(a, "--keep-within", fmt.Sprintf("%dd%dh", d, h))
	}
	return a
}

type resticRepo struct {
	bin, dir string
	env      []string
}

func (rr *resticRepo) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, rr.bin, args...)
	cmd.Env = rr.env
	cmd.Dir = rr.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("restic %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// parallel runs f(0..n-1) on a few workers and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return ferr
}

type forgetGroup struct {
	Host   string                    `json:"host"`
	Keep   []struct{ Tags []string } `json:"keep"`
	Remove []struct{ Tags []string } `json:"remove"`
}

// TestPlanMatchesResticForget compares every keep/forget decision of Plan with restic's forget.
func TestPlanMatchesResticForget(t *testing.T) {
	bin := testenv.Restic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started := time.Now()
	r := rand.New(rand.NewSource(diffSeed))
	hs := genHistories(r)
	ps := genPolicies(r)

	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("differential-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	rr := &resticRepo{bin: bin, dir: dir, env: []string{
		"TZ=UTC", "HOME=" + dir, "RESTIC_CACHE_DIR=" + filepath.Join(dir, "cache"),
		"RESTIC_REPOSITORY=" + filepath.Join(dir, "repo"), "RESTIC_PASSWORD_FILE=" + pw,
	}}
	if _, err := rr.run(ctx, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	// Each restic command would spend ~0.5 s deriving the key; a cheap key for the same
	// password makes the few hundred commands below take seconds.
	if err := testenv.CheapResticKey(filepath.Join(dir, "repo"), "differential-test"); err != nil {
		t.Fatal(err)
	}
	var all []Set
	for _, h := range hs {
		all = append(all, h.sets...)
	}
	// One real backup gives a tree; the sets' snapshots are written next to it as restic
	// stores them (forget reads only their time, host and tags), instead of one backup each.
	if _, err := rr.run(ctx, "backup", "-q", "--no-scan", "--host", "seed", "f"); err != nil {
		t.Fatal(err)
	}
	var seed []struct {
		Tree  string   `json:"tree"`
		Paths []string `json:"paths"`
	}
	out, err := rr.run(ctx, "snapshots", "--json", "--no-lock")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &seed); err != nil || len(seed) != 1 {
		t.Fatalf("restic snapshots: %v: %s", err, out)
	}
	snaps := make([]testenv.ResticSnapshot, len(all))
	for i, s := range all {
		snaps[i] = testenv.ResticSnapshot{Time: s.Time.UTC(), Tree: seed[0].Tree, Paths: seed[0].Paths,
			Hostname: s.Instance, Username: "test", Tags: []string{s.ID}}
	}
	if err := testenv.WriteResticSnapshots(filepath.Join(dir, "repo"), "differential-test", snaps); err != nil {
		t.Fatal(err)
	}
	if out, err := rr.run(ctx, "snapshots", "--json", "--no-lock"); err != nil || strings.Count(string(out), `"tree"`) != len(all)+1 {
		t.Fatalf("restic does not list the %d written snapshots: %v", len(all), err)
	}
	built := time.Since(started)

	results := make([][]forgetGroup, len(ps))
	if err := parallel(len(ps), 3, func(i int) error {
		out, err := rr.run(ctx, append([]string{"forget", "--no-lock", "--dry-run", "--json", "--group-by", "host"}, resticArgs(ps[i])...)...)
		if err != nil {
			return err
		}
		return json.Unmarshal(out, &results[i])
	}); err != nil {
		t.Fatal(err)
	}

	compared, differing := 0, 0
	for pi, p := range ps {
		groups := map[string]forgetGroup{}
		for _, g := range results[pi] {
			groups[g.Host] = g
		}
		for _, h := range hs {
			g, ok := groups[h.host]
			if !ok {
				t.Fatalf("restic forget %v returned no group for host %s", resticArgs(p), h.host)
			}
			restic := map[string]bool{}
			for _, s := range g.Keep {
				restic[s.Tags[0]] = true
			}
			for _, s := range g.Remove {
				restic[s.Tags[0]] = false
			}
			if len(restic) != len(h.sets) {
				t.Fatalf("restic decided %d of %d sets of %s", len(restic), len(h.sets), h.host)
			}
			var diffs []string
			for _, it := range PlanAt(p, h.sets, time.UTC, diffEnd.Add(24*time.Hour)) {
				if ours := it.Decision == Keep; ours != restic[it.ID] {
					diffs = append(diffs, fmt.Sprintf("%s %s: plan %s %v, restic keep=%v", it.ID,
						it.Time.Format(time.RFC3339), it.Decision, it.Reasons, restic[it.ID]))
				}
			}
			compared++
			if len(diffs) > 0 {
				differing++
				sort.Strings(diffs)
				t.Errorf("policy %v on %s (%d sets) differs from restic:\n  %s", resticArgs(p), h.host,
					len(h.sets), strings.Join(diffs, "\n  "))
			}
		}
	}
	t.Logf("%d sets, %d policies, %d history×policy comparisons, %d differing; repository built in %s, total %s",
		len(all), len(ps), compared, differing, built.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
}
