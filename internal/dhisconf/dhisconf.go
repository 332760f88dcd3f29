package dhisconf

import (
	"fmt"
	"os"
	"strings"
)

// Conf is a parsed dhis.conf.
type Conf struct {
	lines []string
}

// Read parses a dhis.conf file.
func Read(path string) (*Conf, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading dhis.conf: %w", err)
	}
	return Parse(string(b)), nil
}

// Parse parses dhis.conf text.
func Parse(s string) *Conf {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return &Conf{lines: strings.Split(strings.TrimSuffix(s, "\n"), "\n")}
}

func splitLine(l string) (key, value string, ok bool) {
	t := strings.TrimSpace(l)
	if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "!") {
		return "", "", false
	}
	i := strings.IndexAny(t, "=:")
	if i < 0 {
		return "", "", false
	}
	return strings.TrimSpace(t[:i]), strings.TrimSpace(t[i+1:]), true
}

// Get returns a key's value ("" when absent).
func (c *Conf) Get(key string) string {
	v := ""
	for _, l := range c.lines {
		if k, val, ok := splitLine(l); ok && k == key {
			v = val
		}
	}
	return v
}

// Keys returns the keys in file order.
func (c *Conf) Keys() []string {
	var out []string
	for _, l := range c.lines {
		if k, _, ok := splitLine(l); ok {
			out = append(out, k)
		}
	}
	return out
}

// Set replaces every line defining key with "key = value", or appends one.
func (c *Conf) Set(key, value string) {
	found := false
	for i, l := range c.lines {
		if k, _, ok := splitLine(l); ok && k == key {
			if found {
				c.lines[i] = "# " + l + "  # (duplicate, disabled by dhis2-life)"
				continue
			}
			c.lines[i] = key + " = " + value
			found = true
		}
	}
	if !found {
		c.lines = append(c.lines, key+" = "+value)
	}
}

// Delete comments out every line defining a key matching the prefix (e.g. "redis.").
func (c *Conf) Delete(prefix, why string) int {
	n := 0
	for i, l := range c.lines {
		if k, _, ok := splitLine(l); ok && strings.HasPrefix(k, prefix) {
			c.lines[i] = "# " + l + "  # " + why
			n++
		}
	}
	return n
}

// String renders the file.
func (c *Conf) String() string { return strings.Join(c.lines, "\n") + "\n" }

// Write writes the file with mode 0600 (it holds the database password).
func (c *Conf) Write(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(c.String()), 0o600); err != nil {
		return fmt.Errorf("writing dhis.conf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing dhis.conf: %w", err)
	}
	return nil
}
