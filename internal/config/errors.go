package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Severity levels of an Error.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Error is a configuration problem located in a file, with a suggested fix.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key, e.g. "instances.hmis.database"
	Msg  string
	Fix  string
	// Severity is SeverityError (also when empty) or SeverityWarning. Warnings do not make a
	// configuration unusable; Parse and Load only return errors.
	Severity string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	if e.IsWarning() {
		b.WriteString(": warning")
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	if e.Fix != "" {
		fmt.Fprintf(&b, " (%s)", e.Fix)
	}
	return b.String()
}

// IsWarning reports whether the problem is only a warning.
func (e *Error) IsWarning() bool { return e.Severity == SeverityWarning }

// LineOf returns the 1-based line where the dotted key is defined in the config file, or 0.
// It finds the table header of the key's parent ([a.b]) and then the "key =" line in it
// (dotted keys inside a table, "b.c = 1", are understood too). When the key itself is absent
// it returns the line of its table header ([a.b.key] or [a.b]), so "missing" errors point
// at the table that lacks the key.
func (c *Config) LineOf(dotted string) int {
	data := c.data
	if data == nil {
		var err error
		if data, err = os.ReadFile(c.Path); err != nil {
			return 0
		}
	}
	return lineOf(data, dotted)
}

func lineOf(data []byte, dotted string) int {
	dotted = normKey(dotted)
	parent := ""
	if i := strings.LastIndexByte(dotted, '.'); i >= 0 {
		parent = dotted[:i]
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	cur := ""
	n := 0
	tableLine, parentLine := 0, 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		if l[0] == '[' {
			h := l
			if i := strings.Index(h, "#"); i >= 0 {
				h = h[:i]
			}
			cur = normKey(strings.Trim(h, "[] \t"))
			if cur == dotted && tableLine == 0 {
				tableLine = n
			}
			if cur == parent && parentLine == 0 {
				parentLine = n
			}
			continue
		}
		i := strings.Index(l, "=")
		if i <= 0 {
			continue
		}
		k := normKey(l[:i])
		if cur != "" {
			k = cur + "." + k
		}
		if k == dotted {
			return n
		}
	}
	if tableLine > 0 {
		return tableLine
	}
	return parentLine
}

// normKey removes quotes and blanks from a TOML key: `instances."hmis" ` → instances.hmis.
func normKey(k string) string {
	return strings.NewReplacer(`"`, "", "'", "", " ", "", "\t", "").Replace(k)
}

// errAt builds an Error for a key of this config.
func (c *Config) errAt(key, msg, fix string) *Error {
	return &Error{File: c.Path, Line: c.LineOf(key), Key: key, Msg: msg, Fix: fix}
}

// warnAt builds a warning-level Error for a key of this config.
func (c *Config) warnAt(key, msg, fix string) *Error {
	e := c.errAt(key, msg, fix)
	e.Severity = SeverityWarning
	return e
}
