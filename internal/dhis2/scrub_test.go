package dhis2

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestScrubRulesComplete: every rule of every profile carries its apply side and its
// verification, and the profiles have their defining rules.
func TestScrubRulesComplete(t *testing.T) {
	for _, r := range scrubRules {
		if err := r.Validate(); err != nil {
			t.Error(err)
		}
		for _, q := range []string{r.Apply, r.Verify} {
			if strings.Count(q, "$") > 0 && r.Args == nil {
				t.Errorf("rule %s has parameters but no Args", r.Name)
			}
		}
	}
	for profile, want := range map[string][]string{
		ProfileStaging:  {"jobs.outward", "settings.email", "route", "api_token", "banner"},
		ProfileTraining: {"jobs.all", "settings.email", "banner", "users.anonymised", "previouspasswords"},
	} {
		have := map[string]bool{}
		for _, r := range ScrubRules(profile) {
			have[r.Name] = true
		}
		for _, w := range want {
			if !have[w] {
				t.Errorf("profile %s lacks rule %s", profile, w)
			}
		}
	}
	if ScrubRules("production") != nil {
		t.Error("an unknown profile has rules")
	}
}

// TestScrubRuleValidate: a rule lacking its statement or its verification is refused.
func TestScrubRuleValidate(t *testing.T) {
	ok := ScrubRule{Name: "x", Profiles: both, Apply: "DELETE FROM x", What: "x deleted", Verify: "SELECT count(*) FROM x", Violation: "rows in x"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("complete rule: %v", err)
	}
	noVerify := ok
	noVerify.Verify = ""
	noApply := ok
	noApply.Apply = ""
	noViolation := ok
	noViolation.Violation = ""
	goApply := noApply
	goApply.ApplyFunc = func(context.Context, pgx.Tx, *Schema, *Scrub) ([]Change, error) { return nil, nil }
	for name, r := range map[string]ScrubRule{"no verification": noVerify, "no apply": noApply, "no violation text": noViolation} {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := goApply.Validate(); err != nil {
		t.Errorf("apply in Go with an SQL verification: %v", err)
	}
}
