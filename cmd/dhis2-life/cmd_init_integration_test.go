package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestInitIdempotent: init creates the repository once, then says it exists.
func TestInitIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	r := e.mustRun("init")
	if !strings.Contains(r.stdout, "created repository") {
		t.Errorf("first init: %s", r.stdout)
	}
	r = e.mustRun("init")
	if !strings.Contains(r.stdout, "exists") {
		t.Errorf("second init: %s", r.stdout)
	}
}

// TestWrongRepositoryPassword: exit 1 with a message about the password.
func TestWrongRepositoryPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.init()
	writeFile(t, e.passFile, "not the password\n", 0o600)
	for _, args := range [][]string{{"init"}, {"snapshot"}, {"catalog", "rebuild"}} {
		r := e.run(args...)
		oneLineError(t, r, 1, "password")
	}
	if got := e.snapshotsJSON(); len(got) != 0 {
		t.Errorf("%d sets recorded", len(got))
	}
}

// TestUnreachableS3: a port with nothing listening fails in bounded time.
func TestUnreachableS3(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.repoURL = fmt.Sprintf("s3:http://127.0.0.1:%d/nobucket/repo", closedPort(t))
	e.writeConfig()
	for _, args := range [][]string{{"init"}, {"snapshot"}, {"catalog", "rebuild"}} {
		r := e.run(args...)
		oneLineError(t, r, 1, "unreachable", e.repoURL[len("s3:http://"):strings.Index(e.repoURL, "/nobucket")])
		if r.dur > 15*time.Second {
			t.Errorf("%v took %s, want < 15s", args, r.dur)
		}
	}
}

// TestUnansweringS3: an endpoint that accepts connections but never answers fails in bounded time.
func TestUnansweringS3(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	e := newEnv(t, "")
	e.repoURL = fmt.Sprintf("s3:http://%s/bucket/repo", l.Addr())
	e.writeConfig()
	r := e.run("snapshot")
	oneLineError(t, r, 1, l.Addr().String())
	if r.dur > 25*time.Second {
		t.Errorf("took %s, want about the 10s probe timeout", r.dur)
	}
}

// TestWrongS3Credentials: a wrong secret key (and a wrong access key) are named.
func TestWrongS3Credentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.init()
	writeFile(t, e.envFile, fmt.Sprintf("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=wrong-secret-key\n", e.s3.AccessKey), 0o600)
	for _, args := range [][]string{{"init"}, {"snapshot"}} {
		r := e.run(args...)
		oneLineError(t, r, 1, "secret key")
		if r.dur > 15*time.Second {
			t.Errorf("%v took %s", args, r.dur)
		}
	}
	writeFile(t, e.envFile, "AWS_ACCESS_KEY_ID=nobody\nAWS_SECRET_ACCESS_KEY=wrong-secret-key\n", 0o600)
	oneLineError(t, e.run("snapshot"), 1, "access key")
}

// TestConfigErrors: exit 2 naming file, line and key.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	good, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(good), "\n")
	lineOf := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i + 1
			}
		}
		t.Fatalf("no line %q in the config", prefix)
		return 0
	}
	cases := []struct {
		name, from, to, key string
	}{
		{"bad duration", `timeout = "2m"`, `timeout = "two minutes"`, "repository.timeout"},
		{"bad dsn", "database = ", "database = \"postgres://dhis@127.0.0.1:notaport/x\"\n#", "instances.hmis.database"},
		{"wrong type", `timeout = "2m"`, `timeout = 5`, "repository.timeout"},
		{"unknown key", `timeout = "2m"`, "timeout = \"2m\"\ntimout = \"3m\"", "repository.timout"},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			line := lineOf(c.from[:strings.Index(c.from, " ")])
			if c.key == "repository.timout" {
				line++
			}
			var out []string
			done := false
			for _, l := range lines {
				if !done && strings.HasPrefix(l, c.from) {
					l = c.to
					if strings.HasSuffix(c.to, "#") {
						l = c.to + strings.TrimPrefix(lines[line-1], c.from)
					}
					done = true
				}
				out = append(out, l)
			}
			writeFile(t, e.cfgPath, strings.Join(out, "\n"), 0o600)
			for _, args := range [][]string{{"snapshot"}, {"config", "check"}} {
				r := e.run(args...)
				if r.code != 2 {
					t.Fatalf("%v: exit %d, want 2\n%s", args, r.code, r)
				}
				want := fmt.Sprintf("%s:%d: %s", e.cfgPath, line, c.key)
				if !strings.Contains(r.stderr+r.stdout, want) {
					t.Errorf("%v: output does not name %q\n%s", args, want, r)
				}
			}
		})
	}
	// A secret file readable by others is a config error too.
	writeFile(t, e.cfgPath, string(good), 0o600)
	if err := os.Chmod(e.passFile, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run("config", "check")
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, "password_file") {
		t.Errorf("password file mode 0644: exit %d\n%s", r.code, r)
	}
	// A missing config file names the file.
	r = runCLI(t, time.Minute, "--config", e.cfgPath+".missing", "snapshot")
	oneLineError(t, r, 2, e.cfgPath+".missing")
}
