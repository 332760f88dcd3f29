package retention

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
)

// Decisions of a plan (contract: `retention plan --json`).
const (
	Keep              = "keep"
	ArchiveThenForget = "archive-then-forget"
	Forget            = "forget"
)

// Policy is a GFS policy. Zero counts disable a rule; a set kept by any rule is kept.
type Policy struct {
	KeepLast    int
	KeepDaily   int
	KeepWeekly  int
	KeepMonthly int
	KeepYearly  int
	KeepWithin  time.Duration
	// Archive lists the classes (last, daily, weekly, monthly, yearly, within) whose sets must be
	// archived before they may be forgotten.
	Archive []string
}

// PolicyFrom converts the configuration's retention table; nil means no policy.
func PolicyFrom(r *config.Retention) *Policy {
	if r == nil {
		return nil
	}
	return &Policy{KeepLast: r.KeepLast, KeepDaily: r.KeepDaily, KeepWeekly: r.KeepWeekly,
		KeepMonthly: r.KeepMonthly, KeepYearly: r.KeepYearly, KeepWithin: r.KeepWithin.Duration,
		Archive: r.Archive}
}

// KeepsNothing reports whether the policy keeps no set at all.
func (p *Policy) KeepsNothing() bool {
	return p.KeepLast == 0 && p.KeepDaily == 0 && p.KeepWeekly == 0 && p.KeepMonthly == 0 &&
		p.KeepYearly == 0 && p.KeepWithin == 0
}

func (p *Policy) archives(class string) bool {
	for _, a := range p.Archive {
		if a == class {
			return true
		}
	}
	return false
}

// Set is one snapshot set as retention sees it.
type Set struct {
	ID       string
	Instance string
	Time     time.Time // the set's data time (manifest time), never anything PostgreSQL resets
	// Pinned lists why the set must never be forgotten (rollback points, keep marks).
	Pinned []string
	// Archived is the object of the set's recorded archive ("" = none).
	Archived string
}

// Item is one set's line of a plan (contract: id, time, decision, reasons).
type Item struct {
	ID       string    `json:"id"`
	Instance string    `json:"instance"`
	Time     time.Time `json:"time"`
	Decision string    `json:"decision"`
	Reasons  []string  `json:"reasons"`
	// Classes are the archive classes the set represents (e.g. "monthly 2025-11").
	Classes []string `json:"archive_classes,omitempty"`
	// Archived is the set's recorded archive object, if any.
	Archived string `json:"archived,omitempty"`
}

type rule struct {
	class string
	count int
	key   func(t time.Time) string
}

func calendarRules(p *Policy) []rule {
	return []rule{
		{"daily", p.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.KeepWeekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%04d-W%02d", y, w) }},
		{"monthly", p.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.KeepYearly, func(t time.Time) string { return t.Format("2006") }},
	}
}

// Plan decides every set of one instance as PlanAt does, with now = time.Now().
func Plan(p *Policy, sets []Set, loc *time.Location) []Item {
	return PlanAt(p, sets, loc, time.Now())
}

// PlanAt decides every set of one instance. Semantics follow restic's `forget --keep-*`
// (internal/restic/snapshot_policy.go): sets are walked newest first; keep_last keeps the newest
// N; each calendar rule keeps the newest set of each of the newest N periods (days, ISO weeks,
// months, years, in loc) that hold a set; a rule that has not filled its count when the walk
// reaches the oldest set keeps that oldest set too (restic#3624), so a young repository does not
// lose its first set; keep_within keeps sets strictly within the duration before the newest set
// that is not after now (not before now, so a stopped backup never ages everything out, and a
// set stamped by a clock far in the future cannot age out the others). Rules are ORed. Pinned
// sets are always kept. A set that is not kept but is the newest of its period for an archive
// class (or within/last when those are archive classes) is archive-then-forget. The plan is
// ordered oldest first. A nil policy keeps everything.
func PlanAt(p *Policy, sets []Set, loc *time.Location, now time.Time) []Item {
	if loc == nil {
		loc = time.Local
	}
	s := append([]Set(nil), sets...)
	sort.SliceStable(s, func(i, j int) bool {
		if !s[i].Time.Equal(s[j].Time) {
			return s[i].Time.After(s[j].Time)
		}
		return s[i].ID > s[j].ID
	})
	items := make([]Item, len(s))
	for i, set := range s {
		items[i] = Item{ID: set.ID, Instance: set.Instance, Time: set.Time.UTC(), Archived: set.Archived, Reasons: []string{}}
	}
	if p == nil {
		for i := range items {
			items[i].Decision = Keep
			items[i].Reasons = append(items[i].Reasons, "no retention policy configured")
		}
		return reverse(items)
	}
	kept := make([]bool, len(s))
	keep := func(i int, reason string) {
		kept[i] = true
		items[i].Reasons = append(items[i].Reasons, reason)
	}
	// keep_last
	for i := 0; i < len(s) && i < p.KeepLast; i++ {
		keep(i, fmt.Sprintf("last %d/%d", i+1, p.KeepLast))
	}
	// calendar rules
	for _, r := range calendarRules(p) {
		left := r.count
		prev := ""
		n := 0
		for i, set := range s {
			k := r.key(set.Time.In(loc))
			if k == prev {
				continue
			}
			prev = k
			n++
			// set is the newest of period k.
			if left > 0 {
				keep(i, fmt.Sprintf("%s %s (%d/%d)", r.class, k, n, r.count))
				left--
			}
			if p.archives(r.class) {
				items[i].Classes = append(items[i].Classes, r.class+" "+k)
			}
		}
		// restic keeps the oldest set as well while the rule has counts left, which keeps
		// the longest history a young repository can offer.
		if left > 0 && oldestNotNewest(r, s, loc) {
			keep(len(s)-1, fmt.Sprintf("oldest set, kept while %s has %d of %d left (restic's rule)", r.class, left, r.count))
		}
	}
	// keep_within, relative to the newest set
	if p.KeepWithin > 0 && len(s) > 0 {
		// Like restic: the newest set that is not in the future (zero if all are).
		var newest time.Time
		for _, set := range s {
			if set.Time.After(newest) && set.Time.Before(now) {
				newest = set.Time
			}
		}
		for i, set := range s {
			if set.Time.After(newest.Add(-p.KeepWithin)) {
				keep(i, "within "+fmtDur(p.KeepWithin)+" of the newest set")
				if p.archives("within") {
					items[i].Classes = append(items[i].Classes, "within")
				}
			}
		}
	}
	if p.archives("last") {
		for i := 0; i < len(s) && i < p.KeepLast; i++ {
			items[i].Classes = append(items[i].Classes, "last")
		}
	}
	for i, set := range s {
		for _, why := range set.Pinned {
			keep(i, "pinned: "+why)
		}
		switch {
		case kept[i]:
			items[i].Decision = Keep
		case len(items[i].Classes) > 0:
			items[i].Decision = ArchiveThenForget
			if set.Archived != "" {
				items[i].Reasons = append(items[i].Reasons, "no keep rule matches; archive recorded ("+set.Archived+"), "+strings.Join(items[i].Classes, ", "))
			} else {
				items[i].Reasons = append(items[i].Reasons, "no keep rule matches; archived first as "+strings.Join(items[i].Classes, ", "))
			}
		default:
			items[i].Decision = Forget
			items[i].Reasons = append(items[i].Reasons, "no keep rule matches")
		}
	}
	return reverse(items)
}

// oldestNotNewest reports whether the oldest set shares its period with a newer set (when it does
// not, the walk already reached it as the newest of its own period).
func oldestNotNewest(r rule, s []Set, loc *time.Location) bool {
	n := len(s)
	return n >= 2 && r.key(s[n-1].Time.In(loc)) == r.key(s[n-2].Time.In(loc))
}

func reverse(items []Item) []Item {
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	return items
}

func fmtDur(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Count returns how many items have each decision.
func Count(items []Item) map[string]int {
	m := map[string]int{Keep: 0, ArchiveThenForget: 0, Forget: 0}
	for _, it := range items {
		m[it.Decision]++
	}
	return m
}
