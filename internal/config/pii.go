package config

import (
	"context"
	"fmt"
	"regexp"
	"strings"
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

// checkPIIUIDs looks up the targets' pii uids in their instance's database (when it answered
// the database probe).
func (c *Config) checkPIIUIDs(ctx context.Context, p Probes, bad map[string]bool) []*Error {
	if p.UIDs == nil || p.Database == nil {
		return nil
	}
	var errs []*Error
	for _, name := range sortedKeys(c.Targets) {
		t := c.Targets[name]
		in, ok := c.Instances[t.Instance]
		if !ok || bad["instances."+t.Instance+".database"] || bad["instances."+t.Instance+".database_password_file"] || ctx.Err() != nil {
			continue
		}
		for _, l := range []struct {
			key  string
			uids []string
		}{{"targets." + name + ".pii_keep_attributes", t.PIIKeepAttributes}, {"targets." + name + ".pii_extra_attributes", t.PIIExtraAttributes}} {
			if len(l.uids) == 0 {
				continue
			}
			missing, err := p.UIDs(ctx, in, l.uids)
			if err != nil {
				errs = append(errs, c.warnAt(l.key, "uids not checked: "+err.Error(), "check that the instance's database is a DHIS2 database"))
				continue
			}
			if len(missing) > 0 {
				errs = append(errs, c.errAt(l.key, fmt.Sprintf("no tracked entity attribute or data element has uid %s in instance %s", strings.Join(missing, ", "), t.Instance),
					"copy the uid from the maintenance app (or /api/trackedEntityAttributes) of that instance"))
			}
		}
	}
	return errs
}
