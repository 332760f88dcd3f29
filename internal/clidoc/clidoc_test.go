package clidoc_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// build compiles dhis2-life into dir.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "dhis2-life")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/dhis2-life/dhis2-life/cmd/dhis2-life").CombinedOutput()
	if err != nil {
		t.Fatalf("building dhis2-life: %v\n%s", err, out)
	}
	return bin
}

var (
	helpCommand = regexp.MustCompile(`^   ([a-z][a-z0-9-]*)(?:, [a-z0-9-]+)*  `)
	helpFlag    = regexp.MustCompile(`(?:^|[ ,])(--[a-z][a-z0-9-]*)`)
	formatting  = regexp.MustCompile("[^\b]\b|\x1b\\[[0-9;]*m")
)

// help runs "dhis2-life ARGS --help" and returns its subcommands and flags.
func help(t *testing.T, bin string, args ...string) (cmds, flags []string) {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", strings.Join(args, " "), err, out)
	}
	section := ""
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, " ") {
			section = l
			continue
		}
		switch {
		case strings.HasPrefix(section, "COMMANDS"):
			if m := helpCommand.FindStringSubmatch(l); m != nil && m[1] != "help" {
				cmds = append(cmds, m[1])
			}
		case strings.HasPrefix(section, "OPTIONS") || strings.HasPrefix(section, "GLOBAL OPTIONS"):
			// The flag names come before the usage text (two spaces or more).
			names, _, _ := strings.Cut(strings.TrimSpace(l), "  ")
			for _, m := range helpFlag.FindAllStringSubmatch(" "+names, -1) {
				if m[1] != "--help" {
					flags = append(flags, m[1])
				}
			}
		}
	}
	return cmds, flags
}

// render formats a man page with man(1), as a user would read it, and fails on roff warnings.
func render(t *testing.T, page string) string {
	t.Helper()
	cmd := exec.Command("man", "--warnings", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=200", "MAN_KEEP_FORMATTING=0", "LANG=C.UTF-8")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l %s: %v\n%s (apt-get install man-db; scripts/deps.sh does)", page, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("man --warnings %s:\n%s", filepath.Base(page), stderr.String())
	}
	// Drop overstrike and SGR formatting, man's hyphenation at line ends and the Unicode
	// hyphen groff may print.
	s := formatting.ReplaceAllString(string(out), "")
	s = strings.ReplaceAll(s, "‐\n", "")
	s = strings.ReplaceAll(s, "‐", "-")
	return strings.Join(strings.Fields(s), " ")
}

// TestManPagesMatchHelp: every command of `dhis2-life --help` has a man page, and each page
// names every flag that the command and its subcommands print in --help.
func TestManPagesMatchHelp(t *testing.T) {
	dir := t.TempDir()
	bin := build(t, dir)
	doc := filepath.Join(dir, "doc")
	if out, err := exec.Command(bin, "gendoc", "--dir", doc, "--date", "2026-12-03").CombinedOutput(); err != nil {
		t.Fatalf("gendoc: %v\n%s", err, out)
	}
	man := func(name string) string { return filepath.Join(doc, "man1", name+".1") }
	cmds, global := help(t, bin)
	if len(cmds) < 15 || len(global) < 3 {
		t.Fatalf("parsed %d commands and %d global flags from --help: the help format changed?", len(cmds), len(global))
	}
	main := render(t, man("dhis2-life"))
	for _, f := range global {
		if !strings.Contains(main, f) {
			t.Errorf("dhis2-life.1 lacks global flag %s", f)
		}
	}
	var pages []string
	for _, c := range cmds {
		pages = append(pages, "dhis2-life-"+c+".1")
		if !strings.Contains(main, "dhis2-life-"+c+"(1)") {
			t.Errorf("dhis2-life.1 does not refer to dhis2-life-%s(1)", c)
		}
		text := render(t, man("dhis2-life-"+c))
		var walk func(path []string)
		walk = func(path []string) {
			subs, flags := help(t, bin, path...)
			if len(path) > 1 && !strings.Contains(text, "dhis2-life "+strings.Join(path, " ")) {
				t.Errorf("dhis2-life-%s.1 does not document %q", c, strings.Join(path, " "))
			}
			for _, f := range flags {
				if !strings.Contains(text, f+" ") && !strings.Contains(text, f+",") {
					t.Errorf("dhis2-life-%s.1 lacks flag %s of %q", c, f, strings.Join(path, " "))
				}
			}
			for _, s := range subs {
				walk(append(append([]string{}, path...), s))
			}
		}
		walk([]string{c})
	}
	// No page for a command that no longer exists (hidden ones included).
	got, _ := filepath.Glob(filepath.Join(doc, "man1", "dhis2-life-*.1"))
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	sort.Strings(got)
	sort.Strings(pages)
	if strings.Join(got, " ") != strings.Join(pages, " ") {
		t.Errorf("man pages %v, commands in --help %v", got, pages)
	}
}

// TestBashCompletion completes commands, subcommands and flags through the generated script
// and the real binary.
func TestBashCompletion(t *testing.T) {
	dir := t.TempDir()
	bin := build(t, dir)
	doc := filepath.Join(dir, "doc")
	if out, err := exec.Command(bin, "gendoc", "--dir", doc).CombinedOutput(); err != nil {
		t.Fatalf("gendoc: %v\n%s", err, out)
	}
	for _, tc := range []struct{ line, want string }{
		{"dhis2-life cl", "clone clones"},
		{"dhis2-life clone --t", "--to --terminate"},
		{"dhis2-life systemd u", "unit"},
		{"dhis2-life snapshot --j", "--json"},
	} {
		words := strings.Fields(tc.line)
		script := `source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dhis2_life_complete; echo "${COMPREPLY[*]}"`
		cmd := exec.Command("bash", append([]string{"-c", script, filepath.Join(doc, "bash-completion", "dhis2-life")}, words...)...)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("completing %q: %q %v, want %q", tc.line, out, err, tc.want)
		}
	}
	z, err := os.ReadFile(filepath.Join(doc, "zsh", "_dhis2-life"))
	if err != nil || !strings.HasPrefix(string(z), "#compdef dhis2-life\n") || !strings.Contains(string(z), "--generate-bash-completion") {
		t.Errorf("zsh completion: %v\n%s", err, z)
	}
}
