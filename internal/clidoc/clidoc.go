package clidoc

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Section is an extra man page section (e.g. EXIT STATUS, FILES) of the main page.
type Section struct {
	Title string
	Text  string
	// Items are tagged paragraphs after Text: {tag, text}.
	Items [][2]string
}

// Man returns the man pages of app, keyed by file name: "<app>.1" for the program and
// "<app>-<command>.1" for each visible top-level command, whose page also documents its
// subcommands. date is the page date (e.g. "2026-12-03"); extra sections go on the main page.
func Man(app *cli.App, date string, extra ...Section) map[string]string {
	pages := map[string]string{}
	name := app.Name
	var b strings.Builder
	header(&b, name, name, date, app.Version)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", esc(name), esc(app.Usage))
	fmt.Fprintf(&b, ".SH SYNOPSIS\n.B %s\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]\n", esc(name))
	if app.Description != "" {
		b.WriteString(".SH DESCRIPTION\n" + text(app.Description))
	}
	if len(app.Flags) > 0 {
		b.WriteString(".SH GLOBAL OPTIONS\n" + flags(app.Flags))
	}
	b.WriteString(".SH COMMANDS\n")
	var seeAlso []string
	for _, c := range visible(app.Commands) {
		page := name + "-" + c.Name
		fmt.Fprintf(&b, ".TP\n.B %s\n%s See \\fB%s\\fR(1).\n", esc(strings.Join(c.Names(), ", ")), esc(sentence(c.Usage)), esc(page))
		seeAlso = append(seeAlso, page)
		pages[page+".1"] = commandPage(app, c, date)
	}
	for _, s := range extra {
		fmt.Fprintf(&b, ".SH %s\n", esc(strings.ToUpper(s.Title)))
		if s.Text != "" {
			b.WriteString(text(s.Text))
		}
		for _, it := range s.Items {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", esc(it[0]), esc(it[1]))
		}
	}
	b.WriteString(".SH SEE ALSO\n" + refs(seeAlso) + "\n")
	pages[name+".1"] = b.String()
	return pages
}

func commandPage(app *cli.App, c *cli.Command, date string) string {
	var b strings.Builder
	page := app.Name + "-" + c.Name
	header(&b, page, app.Name, date, app.Version)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", esc(page), esc(c.Usage))
	b.WriteString(".SH SYNOPSIS\n")
	synopsis(&b, app.Name+" "+c.Name, c)
	for _, s := range visible(c.Subcommands) {
		synopsis(&b, app.Name+" "+c.Name+" "+s.Name, s)
	}
	if c.Description != "" {
		b.WriteString(".SH DESCRIPTION\n" + text(c.Description))
	}
	if len(c.Flags) > 0 {
		b.WriteString(".SH OPTIONS\n" + flags(c.Flags))
	}
	if subs := visible(c.Subcommands); len(subs) > 0 {
		b.WriteString(".SH COMMANDS\n")
		var walk func(prefix string, cs []*cli.Command)
		walk = func(prefix string, cs []*cli.Command) {
			for _, s := range cs {
				full := prefix + " " + s.Name
				fmt.Fprintf(&b, ".SS \"%s\"\n%s\n", esc(strings.TrimSpace(full+" "+s.ArgsUsage)), esc(sentence(s.Usage)))
				if s.Description != "" {
					b.WriteString(".PP\n" + text(s.Description))
				}
				if len(s.Flags) > 0 {
					b.WriteString(".PP\nOptions:\n" + flags(s.Flags))
				}
				walk(full, visible(s.Subcommands))
			}
		}
		walk(app.Name+" "+c.Name, subs)
	}
	fmt.Fprintf(&b, ".SH SEE ALSO\n\\fB%s\\fR(1)\n", esc(app.Name))
	return b.String()
}

func header(b *strings.Builder, page, program, date, version string) {
	b.WriteString(".\\\" Generated from the program's own command definitions; do not edit.\n")
	fmt.Fprintf(b, ".TH %s 1 \"%s\" \"%s %s\" \"User Commands\"\n", esc(strings.ToUpper(page)), date, esc(program), esc(version))
}

func synopsis(b *strings.Builder, full string, c *cli.Command) {
	fmt.Fprintf(b, ".B %s\n", esc(full))
	if len(c.Flags) > 0 {
		b.WriteString("[\\fIOPTIONS\\fR]\n")
	}
	if c.ArgsUsage != "" {
		b.WriteString(esc(c.ArgsUsage) + "\n")
	} else if len(visible(c.Subcommands)) > 0 {
		b.WriteString("\\fICOMMAND\\fR\n")
	}
	b.WriteString(".br\n")
}

// flags renders flags as a tagged list: names, value placeholder, usage and default.
func flags(fs []cli.Flag) string {
	var b strings.Builder
	for _, f := range fs {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		placeholder, usage := unquote(df.GetUsage())
		if df.TakesValue() && placeholder == "" {
			placeholder = "value"
		}
		var names []string
		for _, n := range f.Names() {
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			names = append(names, `\fB`+esc(dash+n)+`\fR`)
		}
		tag := strings.Join(names, ", ")
		if df.TakesValue() {
			tag += ` \fI` + esc(placeholder) + `\fR`
		}
		def := df.GetDefaultText()
		if def == "" && df.TakesValue() {
			def = df.GetValue()
		}
		if def != "" && def != `""` && def != "false" && def != "0" {
			usage += " (default: " + def + ")"
		}
		fmt.Fprintf(&b, ".TP\n%s\n%s\n", tag, esc(usage))
	}
	return b.String()
}

// text renders a description: indented lines stay verbatim, other lines form paragraphs;
// a line ending in ':' in capitals (EXAMPLES:) becomes a bold label.
func text(s string) string {
	var b strings.Builder
	inPre := false
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		pre := strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "\t")
		switch {
		case pre && !inPre:
			b.WriteString(".PP\n.RS 4\n.nf\n")
			inPre = true
		case !pre && inPre:
			b.WriteString(".fi\n.RE\n")
			inPre = false
		}
		if inPre {
			b.WriteString(esc(strings.TrimPrefix(strings.TrimPrefix(l, "   "), "\t")) + "\n")
			continue
		}
		t := strings.TrimSpace(l)
		switch {
		case t == "":
			b.WriteString(".PP\n")
		case strings.HasSuffix(t, ":") && t == strings.ToUpper(t):
			fmt.Fprintf(&b, ".PP\n.B %s\n", esc(strings.TrimSuffix(t, ":")))
		default:
			b.WriteString(esc(t) + "\n")
		}
	}
	if inPre {
		b.WriteString(".fi\n.RE\n")
	}
	return b.String()
}

// esc escapes text for roff: backslashes, minus signs, and a leading control character.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func unquote(usage string) (string, string) {
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
			name := usage[i+1 : i+1+j]
			return name, usage[:i] + name + usage[i+2+j:]
		}
	}
	return "", usage
}

func visible(cs []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cs {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func refs(pages []string) string {
	out := make([]string, len(pages))
	for i, p := range pages {
		out[i] = `\fB` + esc(p) + `\fR(1)`
	}
	return strings.Join(out, ",\n")
}
