package config

import (
	"errors"
	"strings"
	"testing"
)

func TestSlotErrors(t *testing.T) {
	app := minimal + "\n[instances.hmis.app]\nstop = \"s\"\nstart = \"s\"\nurl = \"http://127.0.0.1:8080\"\n"
	green := "\n[instances.hmis.app.green]\nstop = \"s\"\nstart = \"s\"\nurl = \"http://127.0.0.1:8081\"\ndhis2_home = \"/opt/g\"\n"
	tests := []struct{ name, text, key, contains string }{
		{"unknown proxy", app + "proxy = \"apache\"\n", "instances.hmis.app.proxy", `unknown proxy "apache"`},
		{"nginx without upstream file", app + "proxy = \"nginx\"\n", "instances.hmis.app.upstream_file", "missing"},
		{"hook without command", app + "proxy = \"hook\"\n", "instances.hmis.app.proxy_hook", "missing"},
		{"bad proxy url", app + "proxy_url = \"hmis.example.org\"\n", "instances.hmis.app.proxy_url", "not an http(s) URL"},
		{"green without url", app + strings.Replace(green, "url = \"http://127.0.0.1:8081\"\n", "", 1), "instances.hmis.app.green.url", "missing"},
		{"green without hooks", app + strings.Replace(green, "stop = \"s\"\n", "", 1), "instances.hmis.app.green.start", "required"},
		{"green relative home", app + strings.Replace(green, "/opt/g", "g", 1), "instances.hmis.app.green.dhis2_home", "not absolute"},
		{"green database with password", app + green + "database = \"postgres://dhis:pw@h/dhis2_green\"\n", "instances.hmis.app.green.database", "contains a password"},
		{"staging slot without url", minimal + "\n[targets.staging]\ninstance = \"hmis\"\ndatabase = \"postgres://dhis@h/s\"\nprofile = \"staging\"\ndhis2_home = \"/opt/s\"\n[targets.staging.app]\nstart = \"s\"\nstop = \"s\"\n", "targets.staging.app.url", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("/etc/dhis2-life/test.toml", []byte(tt.text))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *Error, got %T %v", err, err)
			}
			if ce.Key != tt.key || !strings.Contains(ce.Msg, tt.contains) || ce.Fix == "" {
				t.Fatalf("got key %q msg %q fix %q; want key %q msg containing %q", ce.Key, ce.Msg, ce.Fix, tt.key, tt.contains)
			}
			if strings.Contains(err.Error(), ":pw@") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
	// A complete blue-green setup parses; the staging slot's home defaults to the target's.
	ok := app + "proxy = \"nginx\"\nupstream_file = \"/etc/nginx/u.inc\"\n" + green +
		"\n[targets.staging]\ninstance = \"hmis\"\ndatabase = \"postgres://dhis@h/s\"\nprofile = \"staging\"\ndhis2_home = \"/opt/s\"\n[targets.staging.app]\nstart = \"s\"\nstop = \"s\"\nurl = \"http://127.0.0.1:8082\"\n"
	c, err := Parse("c.toml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.Instances["hmis"].App.Green.DHIS2Home != "/opt/g" || c.Targets["staging"].App.DHIS2Home != "/opt/s" {
		t.Fatalf("slots: %+v %+v", c.Instances["hmis"].App.Green, c.Targets["staging"].App)
	}
}
