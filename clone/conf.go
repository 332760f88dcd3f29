package clone

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/dhisconf"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// ConfChange is one dhis.conf rewrite.
type ConfChange struct {
	Key    string `json:"key"`
	Action string `json:"action"`
}

// RewriteConf turns production's dhis.conf (restored from the set) into the clone's: its own
// connection, base URL, no production bucket, no redis, no monitoring URL. encryption.password
// stays unchanged (the encrypted settings must stay readable). password is the clone role's
// password, or "" to keep production's when the role is the same.
func RewriteConf(path string, target pg.Conn, password, baseURL string) ([]ConfChange, error) {
	c, err := dhisconf.Read(path)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(target.DSN)
	if err != nil {
		return nil, fmt.Errorf("parsing the clone's DSN: %v", err)
	}
	var out []ConfChange
	set := func(k, v, shown string) {
		c.Set(k, v)
		out = append(out, ConfChange{Key: k, Action: "set to " + shown})
	}
	del := func(prefix, why string) {
		if n := c.Delete(prefix, why); n > 0 {
			out = append(out, ConfChange{Key: prefix + "*", Action: fmt.Sprintf("commented out (%d lines): %s", n, why)})
		}
	}
	host := cfg.Host
	if strings.HasPrefix(host, "/") || host == "" {
		host = "localhost"
	}
	url := fmt.Sprintf("jdbc:postgresql://%s:%d/%s", host, cfg.Port, cfg.Database)
	set("connection.url", url, url)
	prodUser := c.Get("connection.username")
	set("connection.username", cfg.User, cfg.User)
	switch {
	case password != "":
		set("connection.password", password, "the password of targets.database_password_file")
	case prodUser != "" && prodUser != cfg.User:
		del("connection.password", "production's password of role "+prodUser+"; set targets.NAME.database_password_file")
	}
	if baseURL != "" {
		set("server.base.url", baseURL, baseURL)
	} else {
		del("server.base.url", "production's URL; set targets.NAME.base_url")
	}
	switch p := strings.ToLower(c.Get("filestore.provider")); p {
	case "aws-s3", "s3", "transient":
		del("filestore.", "production's "+p+" bucket must never be used by a clone")
		set("filestore.provider", "filesystem", "filesystem")
		set("filestore.container", "files", "files")
	}
	del("redis.", "production's redis must not be shared with a clone")
	del("system.monitoring.", "a clone must not report to production's monitoring")
	if err := c.Write(path); err != nil {
		return nil, err
	}
	return out, nil
}

// VerifyConf checks a clone's dhis.conf against the rules of RewriteConf.
func VerifyConf(path string, target pg.Conn, encryption string) []Check {
	c, err := dhisconf.Read(path)
	if err != nil {
		return []Check{{Rule: "dhis.conf", Detail: err.Error(), Violations: 1}}
	}
	cfg, _ := pgx.ParseConfig(target.DSN)
	var checks []Check
	add := func(rule string, ok bool, detail string) {
		ch := Check{Rule: rule, OK: ok}
		if !ok {
			ch.Violations, ch.Detail = 1, detail
		}
		checks = append(checks, ch)
	}
	url := c.Get("connection.url")
	add("dhis.conf.connection", cfg != nil && strings.HasSuffix(url, "/"+cfg.Database) && c.Get("connection.username") == cfg.User,
		"connection.url/username do not name the clone database "+target.Database())
	p := strings.ToLower(c.Get("filestore.provider"))
	add("dhis.conf.filestore", p == "" || p == "filesystem", "filestore.provider is "+p)
	var redis []string
	for _, k := range c.Keys() {
		if strings.HasPrefix(k, "redis.") || strings.HasPrefix(k, "system.monitoring.") {
			redis = append(redis, k)
		}
	}
	add("dhis.conf.redis_monitoring", len(redis) == 0, "still set: "+strings.Join(redis, ", "))
	add("dhis.conf.encryption", c.Get("encryption.password") == encryption, "encryption.password differs from production's")
	st, err := statMode(path)
	add("dhis.conf.mode", err == nil && st&0o077 == 0, fmt.Sprintf("mode %04o, want 0600", st))
	return checks
}

// confPath is dhis.conf in a home.
func confPath(home string) string { return filepath.Join(home, "dhis.conf") }
