package retention

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeClock is the test's "now": every set is synthetic and dated by it, never by time.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s+" 02:00")
	if err != nil {
		panic(err)
	}
	return t
}

func gfs() *Policy {
	return &Policy{KeepLast: 3, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 5, Archive: []string{"monthly", "yearly"}}
}

// expectedKeeps is the 3-year table: one set a day at 02:00 UTC from 2023-11-28 to
// 2026-11-27 (a Friday) under keep_last 3, daily 7, weekly 4, monthly 12, yearly 5.
var expectedKeeps = []struct {
	day     string
	reasons string // classes that keep it, in rule order
}{
	{"2023-11-28", "oldest"}, // yearly has 1 of 5 left at the oldest set: restic keeps it
	{"2023-12-31", "yearly"},
	{"2024-12-31", "yearly"},
	{"2025-12-31", "monthly yearly"},
	{"2026-01-31", "monthly"},
	{"2026-02-28", "monthly"},
	{"2026-03-31", "monthly"},
	{"2026-04-30", "monthly"},
	{"2026-05-31", "monthly"},
	{"2026-06-30", "monthly"},
	{"2026-07-31", "monthly"},
	{"2026-08-31", "monthly"},
	{"2026-09-30", "monthly"},
	{"2026-10-31", "monthly"},
	{"2026-11-08", "weekly"},
	{"2026-11-15", "weekly"},
	{"2026-11-21", "daily"},
	{"2026-11-22", "daily weekly"},
	{"2026-11-23", "daily"},
	{"2026-11-24", "daily"},
	{"2026-11-25", "last daily"},
	{"2026-11-26", "last daily"},
	{"2026-11-27", "last daily weekly monthly yearly"},
}

// expectedArchives are the monthly sets no longer kept: archived, then forgotten.
var expectedArchives = []string{
	"2023-11-30",
	"2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30",
	"2024-07-31", "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30",
	"2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31", "2025-06-30",
	"2025-07-31", "2025-08-31", "2025-09-30", "2025-10-31", "2025-11-30",
}

func history(from, to time.Time) []Set {
	var sets []Set
	for t := from; !t.After(to); t = t.AddDate(0, 0, 1) {
		sets = append(sets, Set{ID: t.Format("20060102T150405Z") + "-0000", Instance: "hmis", Time: t})
	}
	return sets
}

func classesOf(reasons []string) string {
	var cl []string
	for _, r := range reasons {
		cl = append(cl, strings.Fields(r)[0])
	}
	return strings.Join(cl, " ")
}

func TestPlanThreeYearHistory(t *testing.T) {
	sets := history(day("2023-11-28"), day("2026-11-27"))
	if len(sets) != 1096 {
		t.Fatalf("history has %d sets", len(sets))
	}
	items := Plan(gfs(), sets, time.UTC)
	checkTable(t, items)
	c := Count(items)
	if c[Keep] != len(expectedKeeps) || c[ArchiveThenForget] != len(expectedArchives) || c[Forget] != 1096-len(expectedKeeps)-len(expectedArchives) {
		t.Errorf("counts %v", c)
	}
	for i := 1; i < len(items); i++ {
		if items[i].Time.Before(items[i-1].Time) {
			t.Fatal("plan is not ordered oldest first")
		}
	}
}

func checkTable(t *testing.T, items []Item) {
	t.Helper()
	var keeps, archives []string
	got := map[string]string{}
	for _, it := range items {
		d := it.Time.Format("2006-01-02")
		switch it.Decision {
		case Keep:
			keeps = append(keeps, d)
			got[d] = classesOf(it.Reasons)
		case ArchiveThenForget:
			archives = append(archives, d)
		}
	}
	var want []string
	for _, k := range expectedKeeps {
		want = append(want, k.day)
		if got[k.day] != k.reasons {
			t.Errorf("%s kept by %q, want %q", k.day, got[k.day], k.reasons)
		}
	}
	if strings.Join(keeps, ",") != strings.Join(want, ",") {
		t.Errorf("keeps:\n got %v\nwant %v", keeps, want)
	}
	if strings.Join(archives, ",") != strings.Join(expectedArchives, ",") {
		t.Errorf("archives:\n got %v\nwant %v", archives, expectedArchives)
	}
}

// TestPlanDailySimulation runs the policy every day for three years on a fake clock, forgetting
// what each plan forgets, and checks that the surviving sets match the table, that every set
// of an archive class was archived before it was forgotten, and that nothing was archived twice.
func TestPlanDailySimulation(t *testing.T) {
	clock := &fakeClock{t: day("2023-11-28")}
	end := day("2026-11-27")
	var live []Set
	archived := map[string]int{}
	for ; !clock.Now().After(end); clock.Advance(24 * time.Hour) {
		live = append(live, Set{ID: clock.Now().Format("20060102T150405Z") + "-0000", Instance: "hmis", Time: clock.Now()})
		items := Plan(gfs(), live, time.UTC)
		var next []Set
		byID := map[string]Item{}
		for _, it := range items {
			byID[it.ID] = it
		}
		for _, s := range live {
			switch it := byID[s.ID]; it.Decision {
			case Keep:
				next = append(next, s)
			case ArchiveThenForget:
				archived[s.Time.Format("2006-01-02")]++
			}
		}
		live = next
	}
	var days []string
	for d, n := range archived {
		if n != 1 {
			t.Errorf("%s archived %d times", d, n)
		}
		days = append(days, d)
	}
	sort.Strings(days)
	if strings.Join(days, ",") != strings.Join(expectedArchives, ",") {
		t.Errorf("archived over the simulation:\n got %v\nwant %v", days, expectedArchives)
	}
	var keeps []string
	for _, s := range live {
		keeps = append(keeps, s.Time.Format("2006-01-02"))
	}
	var want []string
	for _, k := range expectedKeeps {
		want = append(want, k.day)
	}
	if strings.Join(keeps, ",") != strings.Join(want, ",") {
		t.Errorf("survivors:\n got %v\nwant %v", keeps, want)
	}
}

func TestPlanRules(t *testing.T) {
	base := day("2026-06-15")
	var sets []Set
	for i := 0; i < 10; i++ { // every 6 hours
		sets = append(sets, Set{ID: fmt.Sprintf("s%02d", i), Time: base.Add(time.Duration(i) * 6 * time.Hour)})
	}
	t.Run("nil policy keeps all", func(t *testing.T) {
		for _, it := range Plan(nil, sets, time.UTC) {
			if it.Decision != Keep {
				t.Fatal(it)
			}
		}
	})
	t.Run("keep_within is relative to the newest set", func(t *testing.T) {
		items := Plan(&Policy{KeepWithin: 24 * time.Hour}, sets, time.UTC)
		// newest is +54h; strictly within 24h (as restic): +36h .. +54h = 4 sets
		if c := Count(items); c[Keep] != 4 || c[Forget] != 6 {
			t.Fatalf("%v", c)
		}
	})
	t.Run("pinned sets are never forgotten", func(t *testing.T) {
		s := append([]Set(nil), sets...)
		s[0].Pinned = []string{"rollback point p1"}
		items := Plan(&Policy{KeepLast: 1}, s, time.UTC)
		if items[0].Decision != Keep || !strings.Contains(strings.Join(items[0].Reasons, ";"), "rollback point p1") {
			t.Fatalf("%+v", items[0])
		}
		if Count(items)[Keep] != 2 {
			t.Fatal(Count(items))
		}
	})
	t.Run("daily keeps the newest of each day", func(t *testing.T) {
		items := Plan(&Policy{KeepDaily: 2}, sets, time.UTC)
		var kept []string
		for _, it := range items {
			if it.Decision == Keep {
				kept = append(kept, it.ID)
			}
		}
		// days: 15th s00..s03, 16th s04..s07, 17th s08,s09 → newest of 17th and 16th
		if strings.Join(kept, ",") != "s07,s09" {
			t.Fatal(kept)
		}
	})
	t.Run("keeps nothing", func(t *testing.T) {
		p := &Policy{}
		if !p.KeepsNothing() {
			t.Fatal("empty policy should keep nothing")
		}
		ip := &InstancePlan{Instance: "hmis", Policy: p, Items: Plan(p, sets, time.UTC)}
		if err := CheckPlan(ip, false, false); !errors.Is(err, ErrKeepsNothing) || !strings.Contains(err.Error(), "fix [retention]") {
			t.Fatalf("want refusal, got %v", err)
		}
		if err := CheckPlan(ip, false, true); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPlanKeepsOldestWhileARuleHasRoom is restic#3624: a young repository under keep_yearly 5
// keeps its first set, and the plan says why.
func TestPlanKeepsOldestWhileARuleHasRoom(t *testing.T) {
	sets := history(day("2026-01-01"), day("2026-03-31")) // one year only
	items := Plan(&Policy{KeepYearly: 5}, sets, time.UTC)
	if c := Count(items); c[Keep] != 2 {
		t.Fatalf("kept %d, want the newest and the oldest: %v", c[Keep], c)
	}
	first := items[0]
	if first.Decision != Keep || !strings.Contains(strings.Join(first.Reasons, ";"), "oldest set, kept while yearly has 4 of 5 left") {
		t.Fatalf("oldest set: %+v", first)
	}
	// Once the rule is filled the oldest set goes.
	items = Plan(&Policy{KeepYearly: 1}, sets, time.UTC)
	if items[0].Decision != Forget {
		t.Fatalf("keep_yearly 1 filled by the newest set, oldest: %+v", items[0])
	}
}

// TestPlanClockFarInTheFuture: a set stamped by a clock far in the future does not age the
// others out of keep_within (like restic, "newest" is the newest set not after now).
func TestPlanClockFarInTheFuture(t *testing.T) {
	now := day("2026-06-10")
	sets := history(day("2026-06-01"), day("2026-06-09"))
	sets = append(sets, Set{ID: "future", Time: day("2099-01-01")})
	items := PlanAt(&Policy{KeepWithin: 3 * 24 * time.Hour}, sets, time.UTC, now)
	kept := []string{}
	for _, it := range items {
		if it.Decision == Keep {
			kept = append(kept, it.Time.Format("2006-01-02"))
		}
	}
	// within 3 days of 2026-06-09 (strictly): 06-07 .. 06-09, plus the future set itself.
	if strings.Join(kept, ",") != "2026-06-07,2026-06-08,2026-06-09,2099-01-01" {
		t.Fatalf("kept %v", kept)
	}
}
