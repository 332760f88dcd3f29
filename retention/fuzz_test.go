package retention

import (
	"math/rand"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
)

const fuzzConfig = `state_dir = "/tmp/x"
[repository]
url = "/srv/repo"
password_file = "/etc/dhis2-life/repository.pass"

[instances.hmis]
database = "postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable"
dhis2_home = "/opt/dhis2"

[retention]
`

// FuzzPolicy parses a [retention] table as the config parser does and plans a random history
// with it: an accepted policy yields a plan that decides every set once, with a reason, oldest
// first, keeps the newest set whenever any rule keeps something, and keeps no more sets than its
// rules allow; a refused one is one config error. Never a panic.
func FuzzPolicy(f *testing.F) {
	f.Add("keep_last = 3\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 12\nkeep_yearly = 5\n", int64(1), uint8(100))
	f.Add("keep_within = \"1d12h\"\narchive = [\"monthly\", \"within\"]\n", int64(2), uint8(40))
	f.Add("keep_yearly = 5\n", int64(3), uint8(3))
	f.Add("keep_daily = -1\n", int64(4), uint8(10))
	f.Add("keep_last = 9223372036854775807\n", int64(5), uint8(1))
	f.Add("keep_within = \"100000d\"\n", int64(6), uint8(0))
	f.Fuzz(func(t *testing.T, table string, seed int64, n uint8) {
		c, err := config.Parse("/fuzz.toml", []byte(fuzzConfig+table))
		if err != nil {
			if _, ok := err.(*config.Error); !ok {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		p := PolicyFrom(c.RetentionFor("hmis"))
		if p == nil {
			return
		}
		r := rand.New(rand.NewSource(seed))
		end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		sets := make([]Set, n)
		for i := range sets {
			sets[i] = Set{ID: string(rune('a'+i%26)) + time.Duration(i).String(), Time: end.Add(-time.Duration(r.Int63n(int64(3 * 365 * 24 * time.Hour))))}
		}
		items := PlanAt(p, sets, time.UTC, end)
		if len(items) != len(sets) {
			t.Fatalf("%d items for %d sets", len(items), len(sets))
		}
		kept := 0
		for i, it := range items {
			if len(it.Reasons) == 0 || (it.Decision != Keep && it.Decision != Forget && it.Decision != ArchiveThenForget) {
				t.Fatalf("item %+v", it)
			}
			if i > 0 && it.Time.Before(items[i-1].Time) {
				t.Fatal("plan not ordered oldest first")
			}
			if it.Decision == Keep {
				kept++
			}
		}
		if len(items) > 0 && !p.KeepsNothing() && items[len(items)-1].Decision != Keep {
			t.Fatalf("newest set not kept under %+v", p)
		}
		if p.KeepWithin == 0 {
			max := p.KeepLast + p.KeepDaily + p.KeepWeekly + p.KeepMonthly + p.KeepYearly + 4 // + an oldest per calendar rule
			if max >= 0 && kept > max {
				t.Fatalf("kept %d sets, rules allow %d: %+v", kept, max, p)
			}
		}
	})
}
