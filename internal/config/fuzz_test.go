package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any text either parses into a configuration whose instance and target names are
// safe to use in paths, tags and database names, or is refused with one *Error naming the file
// and a fix, on one line; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(Example()))
	f.Add([]byte(minimal + "[retention]\nkeep_last = 3\nkeep_within = \"1d12h\"\narchive = [\"monthly\"]\n"))
	f.Add([]byte(strings.Replace(minimal, "[instances.hmis]", "[instances.\"../etc\"]", 1)))
	f.Add([]byte(minimal + "\n[targets.\"a/b\"]\ninstance = \"hmis\"\ndatabase = \"postgres://x@h/y\"\nprofile = \"staging\"\n"))
	f.Add([]byte("state_dir = \"\x00\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("/etc/dhis2-life/fuzz.toml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			if ce.File != "/etc/dhis2-life/fuzz.toml" || ce.Msg == "" {
				t.Fatalf("error does not name file and problem: %#v", ce)
			}
			if strings.ContainsAny(ce.Fix, "\n") {
				t.Fatalf("fix is not one line: %q", ce.Fix)
			}
			return
		}
		for _, n := range c.InstanceNames() {
			if !validName.MatchString(n) {
				t.Fatalf("instance name %q accepted", n)
			}
		}
		for n := range c.Targets {
			if !validName.MatchString(n) {
				t.Fatalf("target name %q accepted", n)
			}
		}
		if r := c.Retention; r != nil && (r.KeepLast < 0 || r.KeepDaily < 0 || r.KeepWeekly < 0 || r.KeepMonthly < 0 || r.KeepYearly < 0 || r.KeepWithin.Duration < 0) {
			t.Fatalf("negative retention accepted: %+v", r)
		}
	})
}

// FuzzParseDuration is the keep_within/rpo parser: accepted values are non-negative and print
// back to a string that parses to the same value.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "36h", "90s", "0d", " 2d ", "1d30m", "", "d", "-1d", "1d-1h", "+5h", "99999999d", "1.5d", "1e3h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 || !strings.Contains(err.Error(), "use e.g.") {
				t.Fatalf("ParseDuration(%q) = %v, %v", s, d, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, but %q parses to %v, %v", s, d, d.String(), back, err)
		}
	})
}

// TestHostileNames: instance and target names with path characters, NUL or a leading '-'/'.'
// are refused with an error naming the key and the fix.
func TestHostileNames(t *testing.T) {
	for _, name := range []string{"../etc", "a/b", `x\u0000y`, "-rf", ".hidden", "..", "a b", `\u00e9t\u00e9`} {
		inst := strings.Replace(minimal, "[instances.hmis]", `[instances."`+name+`"]`, 1)
		tgt := minimal + "\n[targets.\"" + name + "\"]\ninstance = \"hmis\"\ndatabase = \"postgres://x@h/y\"\nprofile = \"staging\"\n"
		for kind, text := range map[string]string{"instance": inst, "target": tgt} {
			_, err := Parse("/c.toml", []byte(text))
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "invalid "+kind+" name") || ce.Fix == "" {
				t.Errorf("%s name %q: %v", kind, name, err)
			}
		}
	}
}
