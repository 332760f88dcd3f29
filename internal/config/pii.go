package config

import (
	"fmt"
	"regexp"
)

// uidRe is a DHIS2 uid: a letter and ten letters or digits.
var uidRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{10}$`)

// IsUID reports whether s is a well-formed DHIS2 uid.
func IsUID(s string) bool { return uidRe.MatchString(s) }

// validatePII checks a target's pii, pii_keep_attributes and pii_extra_attributes.
func (c *Config) validatePII(k string, t *Target) error {
	switch t.PII {
	case "", "pseudonymise", "keep":
	default:
		return c.errAt(k+".pii", fmt.Sprintf("unknown value %q", t.PII), `use "pseudonymise" or "keep"`)
	}
	seen := map[string]string{}
	for _, l := range []struct {
		key  string
		uids []string
	}{{k + ".pii_keep_attributes", t.PIIKeepAttributes}, {k + ".pii_extra_attributes", t.PIIExtraAttributes}} {
		for _, u := range l.uids {
			if !IsUID(u) {
				return c.errAt(l.key, fmt.Sprintf("%q is not a DHIS2 uid", u), "use the 11-character uid of the tracked entity attribute or data element (a letter, then 10 letters or digits)")
			}
			if prev, ok := seen[u]; ok && prev != l.key {
				return c.errAt(l.key, fmt.Sprintf("uid %s is both kept and extra", u), "list it in only one of pii_keep_attributes and pii_extra_attributes")
			}
			seen[u] = l.key
		}
	}
	return nil
}
