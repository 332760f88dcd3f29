package sysunit

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
)

// DefaultUser is the system user the units run as (the .deb's postinst creates it).
const DefaultUser = "dhis2-life"

// unitPATH is the PATH systemd gives services; hooks named without a slash are looked up in it.
const unitPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Sandbox is the file-system view of the service: what it reads, what it writes, and what
// the configured hooks need.
type Sandbox struct {
	User, Group string
	// ReadOnly are the directories and files the service reads that are worth naming: the
	// config directory, every instance's dhis2_home, secret files outside the config directory.
	ReadOnly []string
	// ReadWrite are the directories it writes: state_dir, temp_dir, textfile_dir, a local
	// repository, the parent directory of each clone target's dhis2_home (clones are swapped
	// in by renaming a sibling directory, so the parent must be writable).
	ReadWrite []string
	// ProtectHome is "yes", or "read-only" when a path the service uses lies under /home,
	// /root or /run/user.
	ProtectHome string
	// PrivateTmp is false when a configured path lies under /tmp or /var/tmp.
	PrivateTmp bool
	// Sudo is set when a hook runs through sudo: the unit then allows privilege changes.
	Sudo bool
	// SudoRules are sudoers lines that let the service user run the sudo hooks.
	SudoRules []string
	// Warnings name things to fix on the host before the unit can work (missing or
	// unwritable directories, hooks that cannot be found or lack privileges).
	Warnings []string
}

// Plan derives the sandbox from a loaded configuration. userName "" means DefaultUser.
func Plan(cfg *config.Config, userName string) (*Sandbox, error) {
	if userName == "" {
		userName = DefaultUser
	}
	s := &Sandbox{User: userName, Group: userName, ProtectHome: "yes", PrivateTmp: true}
	var ro, rw []string
	ro = append(ro, filepath.Dir(cfg.Path))
	for _, n := range cfg.InstanceNames() {
		if h := cfg.Instances[n].DHIS2Home; h != "" {
			ro = append(ro, h)
		}
	}
	rw = append(rw, cfg.StateDir)
	if d := cfg.Tuning.TempDir; d != "" {
		rw = append(rw, d)
	}
	if d := cfg.Daemon.TextfileDir; d != "" {
		rw = append(rw, d)
	}
	if p, ok := localRepository(cfg.Repository.URL); ok {
		rw = append(rw, p)
	}
	var targets []string
	for n := range cfg.Targets {
		targets = append(targets, n)
	}
	sort.Strings(targets)
	var hooks [][]string
	for _, n := range targets {
		t := cfg.Targets[n]
		if t.DHIS2Home != "" {
			parent := filepath.Dir(t.DHIS2Home)
			rw = append(rw, parent)
			if strings.Count(parent, "/") < 2 {
				s.Warnings = append(s.Warnings, fmt.Sprintf("targets.%s.dhis2_home %s: its parent %s becomes writable for the service (clones are swapped in by renaming a sibling); put clone homes in a directory of their own, e.g. /srv/dhis2-clones/%s, owned by %s", n, t.DHIS2Home, parent, n, userName))
			}
		}
		for _, h := range [][]string{t.BeforeHook, t.AfterHook} {
			if len(h) > 0 {
				hooks = append(hooks, h)
			}
		}
	}
	// Files read that may lie outside the directories above (only they decide ProtectHome
	// and get a ReadOnlyPaths entry of their own).
	files := []string{cfg.Repository.PasswordFile, cfg.Repository.EnvFile}
	if filepath.IsAbs(cfg.Repository.Restic) {
		files = append(files, cfg.Repository.Restic)
	}
	for _, n := range cfg.InstanceNames() {
		in := cfg.Instances[n]
		files = append(files, in.DatabasePasswordFile, in.AdminPasswordFile, in.PGBinDir)
	}
	for _, n := range targets {
		t := cfg.Targets[n]
		files = append(files, t.DatabasePasswordFile, t.KeepPasswordFile)
		for _, q := range t.ScrubSQL { // .sql files, relative to the config's directory
			if q = strings.TrimSpace(q); strings.HasSuffix(strings.ToLower(q), ".sql") && !strings.ContainsAny(q, " \t\n;") {
				if !filepath.IsAbs(q) {
					q = filepath.Join(filepath.Dir(cfg.Path), q)
				}
				files = append(files, q)
			}
		}
	}
	if a := cfg.Archive; a != nil {
		files = append(files, a.RecipientsFile)
	}
	for _, w := range []*config.Webhook{cfg.Notify.Webhook, cfg.Notify.Slack} {
		if w != nil {
			files = append(files, w.URLFile)
		}
	}
	if m := cfg.Notify.SMTP; m != nil {
		files = append(files, m.PasswordFile)
	}
	if tg := cfg.Notify.Telegram; tg != nil {
		files = append(files, tg.TokenFile)
	}
	for _, h := range hooks {
		if err := s.hook(h, &files); err != nil {
			return nil, err
		}
	}
	for _, p := range append(append([]string{}, ro...), rw...) {
		if err := unitPath(p); err != nil {
			return nil, err
		}
	}
	s.ReadWrite = nest(dedupe(rw))
	s.ReadOnly = nest(dedupe(ro))
	for _, f := range files {
		if f == "" {
			continue
		}
		if err := unitPath(f); err != nil {
			return nil, err
		}
		if !under(f, s.ReadOnly) && !under(f, s.ReadWrite) && inHome(f) {
			s.ReadOnly = append(s.ReadOnly, f)
		}
		if inHome(f) {
			s.ProtectHome = "read-only"
		}
	}
	for _, p := range append(append([]string{}, s.ReadOnly...), s.ReadWrite...) {
		if inHome(p) {
			s.ProtectHome = "read-only"
		}
		if under(p, []string{"/tmp", "/var/tmp"}) {
			s.PrivateTmp = false
		}
	}
	if !s.PrivateTmp {
		s.Warnings = append(s.Warnings, "a configured path lies under /tmp or /var/tmp: the unit keeps the host's /tmp (no PrivateTmp); move it elsewhere for a private /tmp")
	}
	s.checkDirs(cfg)
	return s, nil
}

// hook inspects one hook command: it must be found, and sudo hooks get sudoers lines.
func (s *Sandbox) hook(argv []string, files *[]string) error {
	bin, err := lookPath(argv[0])
	if err != nil {
		s.Warnings = append(s.Warnings, fmt.Sprintf("hook %q: %s is not an executable file on the service's PATH (%s): use an absolute path", strings.Join(argv, " "), argv[0], unitPATH))
		return nil
	}
	*files = append(*files, bin)
	switch filepath.Base(bin) {
	case "sudo":
		s.Sudo = true
		rest := argv[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return fmt.Errorf("hook %q runs sudo without a command", strings.Join(argv, " "))
		}
		cmd, err := lookPath(rest[0])
		if err != nil {
			cmd = rest[0]
			s.Warnings = append(s.Warnings, fmt.Sprintf("hook %q: %s is not on the service's PATH: sudoers needs its absolute path", strings.Join(argv, " "), rest[0]))
		}
		line := fmt.Sprintf("%s ALL=(root) NOPASSWD: %s", s.User, strings.Join(append([]string{cmd}, rest[1:]...), " "))
		if !contains(s.SudoRules, line) {
			s.SudoRules = append(s.SudoRules, line)
		}
	case "systemctl", "service":
		s.Warnings = append(s.Warnings, fmt.Sprintf("hook %q runs %s as %s, which may not start or stop units: write it as [\"sudo\", %q, ...] and install the sudoers lines this command prints", strings.Join(argv, " "), filepath.Base(bin), s.User, bin))
	}
	return nil
}

// checkDirs warns about read-write directories that are missing or not owned by the user,
// and (when run as root) about a DHIS2_HOME the user cannot read: a snapshot would then
// hold no file store.
func (s *Sandbox) checkDirs(cfg *config.Config) {
	u, err := user.Lookup(s.User)
	if err != nil {
		s.Warnings = append(s.Warnings, fmt.Sprintf("user %s does not exist yet: the .deb creates it, or run useradd --system --home-dir /var/lib/dhis2-life --shell /usr/sbin/nologin %s", s.User, s.User))
		return
	}
	uid, _ := strconv.Atoi(u.Uid)
	for _, d := range s.ReadWrite {
		st, err := os.Stat(d)
		if err != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s does not exist: create it before starting the unit: install -d -m 0750 -o %s -g %s %s", d, s.User, s.Group, d))
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != uid && st.Mode().Perm()&0o002 == 0 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s is not owned by %s: the service cannot write it; run chown %s: %s", d, s.User, s.User, d))
		}
	}
	if os.Geteuid() != 0 {
		return // cannot act as the user
	}
	for _, n := range cfg.InstanceNames() {
		h := cfg.Instances[n].DHIS2Home
		if h == "" {
			continue
		}
		for _, p := range []string{filepath.Join(h, "dhis.conf"), filepath.Join(h, "files")} {
			if _, err := os.Stat(p); err != nil {
				continue // config check reports a missing one
			}
			if !readableBy(u, p) {
				s.Warnings = append(s.Warnings, fmt.Sprintf("%s cannot read %s, so snapshots of %s would hold no file store: run setfacl -R -m u:%s:rX %s (and setfacl -m u:%s:x on each parent directory it cannot enter)", s.User, p, n, s.User, h, s.User))
			}
		}
	}
}

// readableBy runs test(1) as the user: p can be read (and, for a directory, entered).
func readableBy(u *user.User, p string) bool {
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if v, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(v))
			}
		}
	}
	cmd := exec.Command("/usr/bin/test", "-r", p, "-a", "(", "!", "-d", p, "-o", "-x", p, ")")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	return cmd.Run() == nil
}

// Directives returns the [Service] lines of the sandbox, without User/Group.
func (s *Sandbox) Directives() []string {
	var l []string
	l = append(l, "UMask=0077")
	if !s.Sudo {
		l = append(l, "NoNewPrivileges=yes")
	}
	if s.PrivateTmp {
		l = append(l, "PrivateTmp=yes")
	}
	l = append(l, "PrivateDevices=yes", "ProtectSystem=strict", "ProtectHome="+s.ProtectHome)
	if len(s.ReadOnly) > 0 {
		l = append(l, "ReadOnlyPaths="+joinPaths(s.ReadOnly))
	}
	rw := s.ReadWrite
	if s.Sudo {
		rw = append(append([]string{}, rw...), "-/run/sudo")
	}
	l = append(l, "ReadWritePaths="+joinPaths(rw))
	l = append(l,
		"ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
		"ProtectControlGroups=yes", "ProtectClock=yes", "ProtectHostname=yes",
		"RestrictSUIDSGID=yes", "RestrictRealtime=yes", "RestrictNamespaces=yes",
		"LockPersonality=yes", "MemoryDenyWriteExecute=yes")
	if s.Sudo {
		l = append(l, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK")
	} else {
		l = append(l, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6")
	}
	l = append(l, "SystemCallArchitectures=native", "SystemCallFilter=@system-service")
	if !s.Sudo {
		l = append(l, "CapabilityBoundingSet=", "AmbientCapabilities=")
	}
	return l
}

// comments explains the sandbox in the unit itself.
func (s *Sandbox) comments() string {
	var b strings.Builder
	b.WriteString("# Sandbox derived from the config: the service reads the config directory and each\n" +
		"# instance's dhis2_home, and writes only state_dir, temp_dir, textfile_dir, a local\n" +
		"# repository and the directories holding clone targets' dhis2_home.\n")
	if s.ProtectHome == "read-only" {
		b.WriteString("# ProtectHome=read-only: a path it uses lies under /home (e.g. DHIS2_HOME=/home/dhis/config).\n")
	}
	if s.Sudo {
		b.WriteString("# A clone hook runs sudo, so NoNewPrivileges and the empty capability set are left out.\n" +
			"# Allow exactly the hooks' commands in /etc/sudoers.d/dhis2-life (visudo -f):\n")
		for _, r := range s.SudoRules {
			b.WriteString("#   " + r + "\n")
		}
	}
	return b.String()
}

// Options are what the service unit needs besides the config.
type Options struct {
	// Bin is the absolute path of the dhis2-life binary.
	Bin string
	// User runs the service ("" = DefaultUser).
	User string
}

// ServiceName is the file name of the daemon's unit.
const ServiceName = "dhis2-life.service"

// Service returns the daemon's service unit for cfg, and the sandbox it applies.
func Service(cfg *config.Config, o Options) (string, *Sandbox, error) {
	if !filepath.IsAbs(o.Bin) {
		return "", nil, fmt.Errorf("binary path %q is not absolute", o.Bin)
	}
	s, err := Plan(cfg, o.User)
	if err != nil {
		return "", nil, err
	}
	for _, p := range []string{o.Bin, cfg.Path} {
		if err := unitPath(p); err != nil {
			return "", nil, err
		}
	}
	if inHome(o.Bin) { // e.g. a build in a home directory
		s.ProtectHome = "read-only"
	}
	stop := cfg.Daemon.StopTimeout.Duration + time.Minute
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by "dhis2-life systemd unit" from %s.
# Regenerate it after changing paths in the config. Reload the config with
# "systemctl reload dhis2-life" (SIGHUP). Enable either this daemon or the timers, not both.
[Unit]
Description=dhis2-life backup scheduler for DHIS2
Documentation=man:dhis2-life(1) man:dhis2-life-daemon(1)
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=simple
User=%s
Group=%s
ExecStart=%s --config %s daemon
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
# daemon.stop_timeout lets a running job finish; systemd waits a minute longer.
TimeoutStopSec=%ds
Restart=on-failure
RestartSec=30s
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
`, cfg.Path, s.User, s.Group, esc(o.Bin), esc(cfg.Path), int(stop.Seconds()))
	if cfg.StateDir == "/var/lib/dhis2-life" {
		b.WriteString("StateDirectory=dhis2-life\nStateDirectoryMode=0750\n")
	}
	b.WriteString("\n" + s.comments())
	for _, l := range s.Directives() {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String(), s, nil
}

// sandboxKeys are the [Service] keys Harden replaces.
var sandboxKeys = map[string]bool{"User": true, "Group": true, "UMask": true, "NoNewPrivileges": true,
	"PrivateTmp": true, "PrivateDevices": true, "ProtectSystem": true, "ProtectHome": true,
	"ReadOnlyPaths": true, "ReadWritePaths": true, "ProtectKernelTunables": true,
	"ProtectKernelModules": true, "ProtectKernelLogs": true, "ProtectControlGroups": true,
	"ProtectClock": true, "ProtectHostname": true, "RestrictSUIDSGID": true, "RestrictRealtime": true,
	"RestrictNamespaces": true, "LockPersonality": true, "MemoryDenyWriteExecute": true,
	"RestrictAddressFamilies": true, "SystemCallArchitectures": true, "SystemCallFilter": true,
	"CapabilityBoundingSet": true, "AmbientCapabilities": true}

// Harden replaces the user and sandbox lines of another service unit's [Service] section
// (the timers' services of `schedule print --systemd`) with the sandbox s.
func Harden(unit string, s *Sandbox) string {
	var out []string
	section := ""
	flush := func() {
		if section != "[Service]" {
			return
		}
		for len(out) > 0 && out[len(out)-1] == "" {
			out = out[:len(out)-1]
		}
		out = append(out, "User="+s.User, "Group="+s.Group)
		out = append(out, strings.Split(strings.TrimSuffix(s.comments(), "\n"), "\n")...)
		out = append(out, s.Directives()...)
		out = append(out, "")
	}
	for _, l := range strings.Split(strings.TrimSuffix(unit, "\n"), "\n") {
		if strings.HasPrefix(l, "[") {
			flush()
			section = strings.TrimSpace(l)
		}
		if k, _, ok := strings.Cut(l, "="); ok && section == "[Service]" && sandboxKeys[strings.TrimSpace(k)] {
			continue
		}
		out = append(out, l)
	}
	flush()
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

// localRepository returns the directory of a local restic repository URL.
func localRepository(url string) (string, bool) {
	if p, ok := strings.CutPrefix(url, "local:"); ok {
		return p, filepath.IsAbs(p)
	}
	if strings.Contains(url, ":") || url == "" {
		return "", false
	}
	return url, true
}

// unitPath refuses paths systemd would misread in a unit file.
func unitPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if strings.ContainsAny(p, " \t\n\"'\\;") {
		return fmt.Errorf("path %q has a space, quote, backslash or semicolon, which a systemd unit cannot name safely: rename it", p)
	}
	return nil
}

// esc escapes systemd specifiers (%).
func esc(p string) string { return strings.ReplaceAll(p, "%", "%%") }

func joinPaths(ps []string) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = esc(p)
	}
	return strings.Join(out, " ")
}

func dedupe(ps []string) []string {
	var out []string
	for _, p := range ps {
		p = filepath.Clean(p)
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// nest drops paths that lie below another path of the list.
func nest(ps []string) []string {
	var out []string
	for i, p := range ps {
		inside := false
		for j, q := range ps {
			if i != j && p != q && under(p, []string{q}) {
				inside = true
			}
		}
		if !inside {
			out = append(out, p)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// under reports whether p is one of dirs or lies below one of them.
func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

func inHome(p string) bool { return under(p, []string{"/home", "/root", "/run/user"}) }

// lookPath finds an executable as systemd would run it: absolute, or on unitPATH.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		st, err := os.Stat(name)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s is not executable", name)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(unitPATH) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}
