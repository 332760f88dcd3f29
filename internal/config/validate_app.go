package config

import (
	"fmt"
	"net/url"
	"path/filepath"
)

// validateSlots checks the blue-green keys of [instances.NAME.app] (DHIS2 upgrades).
func (c *Config) validateSlots(k string, in *Instance) error {
	h := in.App
	if h == nil {
		return nil
	}
	k += ".app"
	switch h.Proxy {
	case "":
	case "nginx":
		if h.UpstreamFile == "" || !filepath.IsAbs(h.UpstreamFile) {
			return c.errAt(k+".upstream_file", "missing or not absolute for proxy = \"nginx\"", `name the file included in the site's upstream block, e.g. "/etc/nginx/conf.d/dhis2-upstream.inc"`)
		}
	case "hook":
		if h.ProxyHook == "" {
			return c.errAt(k+".proxy_hook", "missing for proxy = \"hook\"", `set the command that points the proxy at $DHIS2_LIFE_UPSTREAM (host:port)`)
		}
	default:
		return c.errAt(k+".proxy", fmt.Sprintf("unknown proxy %q", h.Proxy), `use "nginx" (upstream_file) or "hook" (proxy_hook)`)
	}
	if h.ProxyURL != "" {
		if err := checkHTTPURL(h.ProxyURL); err != nil {
			return c.errAt(k+".proxy_url", err.Error(), `use the public URL through the proxy, e.g. "https://hmis.example.org"`)
		}
	}
	if g := h.Green; g != nil {
		if err := c.validateSlot(k+".green", g); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateSlot(k string, s *AppSlot) error {
	if s.URL == "" {
		return c.errAt(k+".url", "missing", `set the slot's own base URL, e.g. "http://127.0.0.1:8081"`)
	}
	if err := checkHTTPURL(s.URL); err != nil {
		return c.errAt(k+".url", err.Error(), `use the slot's base URL, e.g. "http://127.0.0.1:8081"`)
	}
	if s.Start == "" || s.Stop == "" {
		return c.errAt(k+".start", "start and stop hooks are required", `set e.g. start = "systemctl start tomcat9@green" and stop = "systemctl stop tomcat9@green"`)
	}
	if s.DHIS2Home == "" || !filepath.IsAbs(s.DHIS2Home) {
		return c.errAt(k+".dhis2_home", "missing or not absolute", `set the slot's DHIS2_HOME, e.g. "/opt/dhis2-green"`)
	}
	if s.Database != "" {
		if err := checkDSN(s.Database); err != nil {
			return c.errAt(k+".database", err.Error(), `use a DSN like "postgres://dhis@127.0.0.1:5432/dhis2_green?sslmode=disable"`)
		}
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}
