package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Probes are the reachability checks Check runs after the file checks. A nil probe is skipped.
type Probes struct {
	// Repository checks that the restic repository opens with the configured password.
	Repository func(ctx context.Context) error
	// Database checks that an instance's database accepts a connection.
	Database func(ctx context.Context, in *Instance) error
	// UIDs returns those of uids that name no tracked entity attribute or data element in an
	// instance's database (the targets' pii_keep_attributes and pii_extra_attributes).
	UIDs func(ctx context.Context, in *Instance, uids []string) (missing []string, err error)
}

// maxSecretSize bounds secret files: anything larger is not a password, token or env file.
const maxSecretSize = 1 << 20

// SecretFileError is a problem with a file holding a secret (password, token, credentials).
type SecretFileError struct {
	Kind    string // "password file", "env file", "token file", ...
	Path    string
	Problem string // e.g. "is mode 0644"
	Fix     string // e.g. "run chmod 600 /etc/dhis2-life/repository.pass"
}

func (e *SecretFileError) Error() string {
	return fmt.Sprintf("%s %s %s: %s", e.Kind, e.Path, e.Problem, e.Fix)
}

// CheckSecretFile checks a file holding a secret: it exists, is a regular file (symlinks are
// followed), can be read, is not empty and is not readable or writable by group or others
// (mode 0600 or stricter). Errors are *SecretFileError, e.g.
// "password file /x is mode 0644: run chmod 600 /x".
func CheckSecretFile(path string) error {
	return checkSecret("password file", path)
}

func checkSecret(kind, path string) error {
	fail := func(problem, fix string) error {
		return &SecretFileError{Kind: kind, Path: path, Problem: problem, Fix: fix}
	}
	if path == "" {
		return fail("is not set", "name the file that holds the secret")
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fail("does not exist", fmt.Sprintf("create it holding the secret, then run chmod 600 %s", path))
	case err != nil:
		return fail(fmt.Sprintf("cannot be inspected (%v)", unwrapPathErr(err)),
			fmt.Sprintf("run dhis2-life as a user that can read it (this is uid %d)", os.Getuid()))
	case fi.IsDir():
		return fail("is a directory", "point the setting at the file holding the secret")
	case !fi.Mode().IsRegular():
		return fail(fmt.Sprintf("is not a regular file (%s)", fi.Mode().Type()), "point the setting at a regular file holding the secret")
	case fi.Mode().Perm()&0o077 != 0:
		return fail(fmt.Sprintf("is mode %04o", fi.Mode().Perm()), fmt.Sprintf("run chmod 600 %s", path))
	case fi.Size() == 0:
		return fail("is empty", "write the secret into it")
	case fi.Size() > maxSecretSize:
		return fail(fmt.Sprintf("is %d bytes, too large for a secret", fi.Size()), "point the setting at the file holding the secret")
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(fmt.Sprintf("cannot be read (%v)", unwrapPathErr(err)),
			fmt.Sprintf("run dhis2-life as the file's owner or chown it to uid %d", os.Getuid()))
	}
	f.Close()
	return nil
}

// ReadSecretFile checks path with CheckSecretFile and returns its contents without the
// trailing newline(s).
func ReadSecretFile(path string) (string, error) {
	if err := CheckSecretFile(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading password file %s: %w", path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", &SecretFileError{Kind: "password file", Path: path, Problem: "holds only a newline", Fix: "write the secret into it"}
	}
	return s, nil
}

// Check validates the environment the configuration refers to and returns every problem
// found (nil when there is none), each naming the file, line, key and a fix:
//   - state_dir (and tuning.temp_dir outside it) is a writable directory or can be created;
//   - every secret file (repository password and env file, database and admin password files,
//     keep_password_file, SMTP password, Telegram token, webhook URL files) passes
//     CheckSecretFile; archive.recipients_file exists and is not empty;
//   - each instance's dhis2_home exists and holds dhis.conf (warnings);
//   - the restic binary is found;
//   - then the probes: the repository (skipped when its password or env file or restic is
//     unusable, as those are already reported) and each instance's database (skipped when its
//     password file is unusable).
func (c *Config) Check(ctx context.Context, p Probes) []*Error {
	ck := &checker{c: c, bad: map[string]bool{}}
	ck.dirs()
	ck.secrets()
	ck.archive()
	ck.restic()
	ck.probes(ctx, p)
	return ck.errs
}

// checker collects the problems of one Check.
type checker struct {
	c    *Config
	errs []*Error
	bad  map[string]bool // keys already reported
}

// dirs checks state_dir, and tuning.temp_dir when it is not below it.
func (ck *checker) dirs() {
	c := ck.c
	if e := c.checkDir("state_dir", c.StateDir); e != nil {
		ck.errs = append(ck.errs, e)
	}
	if rel, err := filepath.Rel(c.StateDir, c.Tuning.TempDir); err != nil || strings.HasPrefix(rel, "..") {
		if e := c.checkDir("tuning.temp_dir", c.Tuning.TempDir); e != nil {
			ck.errs = append(ck.errs, e)
		}
	}
}

// secret checks one secret file (when configured).
func (ck *checker) secret(key, kind, path string) {
	if path == "" {
		return
	}
	if err := checkSecret(kind, path); err != nil {
		var se *SecretFileError
		if errors.As(err, &se) {
			ck.errs = append(ck.errs, ck.c.errAt(key, fmt.Sprintf("%s %s %s", kind, path, se.Problem), se.Fix))
		} else {
			ck.errs = append(ck.errs, ck.c.errAt(key, err.Error(), ""))
		}
		ck.bad[key] = true
	}
}

// secrets checks every secret file, and each instance's DHIS2_HOME.
func (ck *checker) secrets() {
	c := ck.c
	if c.Repository.PasswordFile == "" {
		ck.errs = append(ck.errs, c.errAt("repository.password_file", "missing", "point it at a 0600 file holding the repository password"))
		ck.bad["repository.password_file"] = true
	}
	ck.secret("repository.password_file", "password file", c.Repository.PasswordFile)
	ck.secret("repository.env_file", "env file", c.Repository.EnvFile)
	for _, name := range c.InstanceNames() {
		in, k := c.Instances[name], "instances."+name
		ck.secret(k+".database_password_file", "password file", in.DatabasePasswordFile)
		ck.secret(k+".admin_password_file", "password file", in.AdminPasswordFile)
		if e := c.checkDHIS2Home(k+".dhis2_home", in.DHIS2Home); e != nil {
			ck.errs = append(ck.errs, e)
		}
	}
	for _, name := range sortedKeys(c.Targets) {
		ck.secret("targets."+name+".keep_password_file", "password file", c.Targets[name].KeepPasswordFile)
		ck.secret("targets."+name+".database_password_file", "password file", c.Targets[name].DatabasePasswordFile)
	}
	if s := c.Notify.SMTP; s != nil {
		ck.secret("notify.smtp.password_file", "password file", s.PasswordFile)
	}
	if t := c.Notify.Telegram; t != nil {
		ck.secret("notify.telegram.token_file", "token file", t.TokenFile)
	}
	if w := c.Notify.Webhook; w != nil {
		ck.secret("notify.webhook.url_file", "URL file", w.URLFile)
	}
	if w := c.Notify.Slack; w != nil {
		ck.secret("notify.slack.url_file", "URL file", w.URLFile)
	}
}

// archive checks the archive recipients, and warns about archive classes without [archive].
func (ck *checker) archive() {
	c := ck.c
	if a := c.Archive; a != nil && a.RecipientsFile != "" {
		if fi, err := os.Stat(a.RecipientsFile); err != nil {
			ck.errs = append(ck.errs, c.errAt("archive.recipients_file", fmt.Sprintf("cannot read %s: %v", a.RecipientsFile, unwrapPathErr(err)), "create it with one age public key (age1...) a line"))
		} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
			ck.errs = append(ck.errs, c.errAt("archive.recipients_file", fmt.Sprintf("%s is empty or not a regular file", a.RecipientsFile), "write one age public key (age1...) a line into it"))
		}
	}
	if c.Archive != nil {
		return
	}
	pols := []struct {
		key string
		r   *Retention
	}{{"retention", c.Retention}}
	for _, name := range c.InstanceNames() {
		pols = append(pols, struct {
			key string
			r   *Retention
		}{"instances." + name + ".retention", c.Instances[name].Retention})
	}
	for _, pol := range pols {
		if pol.r != nil && len(pol.r.Archive) > 0 {
			ck.errs = append(ck.errs, c.warnAt(pol.key+".archive", fmt.Sprintf("classes %s are to be archived but no [archive] is configured, so such sets are never forgotten", strings.Join(pol.r.Archive, ", ")),
				"configure [archive] or remove the archive list"))
		}
	}
}

// restic checks that the restic binary is there.
func (ck *checker) restic() {
	c := ck.c
	if _, err := exec.LookPath(c.Repository.Restic); err != nil {
		ck.errs = append(ck.errs, c.errAt("repository.restic", fmt.Sprintf("restic binary %q not found: %v", c.Repository.Restic, unwrapExecErr(err)),
			"install restic >= "+MinRestic+" with scripts/deps.sh (it builds "+ResticVersion+"; Debian's restic package is too old, it lacks --stdin-from-command) or set repository.restic to its full path"))
		ck.bad["repository.restic"] = true
	}
}

// probes runs the repository and database probes whose inputs passed the checks above.
func (ck *checker) probes(ctx context.Context, p Probes) {
	c, bad := ck.c, ck.bad
	if p.Repository != nil && !bad["repository.password_file"] && !bad["repository.env_file"] && !bad["repository.restic"] && ctx.Err() == nil {
		if err := p.Repository(ctx); err != nil {
			ck.errs = append(ck.errs, probeError(c, "repository.url", "repository check failed", err,
				"check the URL, the password file, S3 credentials (env_file or environment) and that the repository exists (dhis2-life init creates it)"))
		}
	}
	if p.Database == nil {
		return
	}
	for _, name := range c.InstanceNames() {
		if ctx.Err() != nil {
			ck.errs = append(ck.errs, c.errAt("instances."+name+".database", "not checked: "+ctx.Err().Error(), "run the check again"))
			continue
		}
		k := "instances." + name
		if bad[k+".database_password_file"] {
			continue
		}
		if err := p.Database(ctx, c.Instances[name]); err != nil {
			ck.errs = append(ck.errs, probeError(c, k+".database", "database check failed", err,
				"check the DSN, that PostgreSQL is running and accepts this user, and that the password is in database_password_file, ~/.pgpass or PGPASSFILE"))
			bad[k+".database"] = true
		}
	}
	ck.errs = append(ck.errs, c.checkPIIUIDs(ctx, p, bad)...)
}

// probeError wraps a probe's error; a probe returning an *Error supplies its own message and fix.
func probeError(c *Config, key, what string, err error, fix string) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		e := c.errAt(key, what+": "+ce.Msg, ce.Fix)
		e.Severity = ce.Severity
		if e.Fix == "" {
			e.Fix = fix
		}
		return e
	}
	return c.errAt(key, fmt.Sprintf("%s: %v", what, err), fix)
}

// checkDir reports whether dir is a writable directory, or can be created.
func (c *Config) checkDir(key, dir string) *Error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return c.errAt(key, dir+" is not a directory", "remove it or choose another directory")
	case err == nil:
		f, err := os.CreateTemp(dir, ".dhis2-life-check-*")
		if err != nil {
			return c.errAt(key, fmt.Sprintf("%s is not writable: %v", dir, unwrapPathErr(err)),
				fmt.Sprintf("run chown to the user dhis2-life runs as (uid %d), or choose another directory", os.Getuid()))
		}
		f.Close()
		os.Remove(f.Name())
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return c.errAt(key, fmt.Sprintf("cannot inspect %s: %v", dir, unwrapPathErr(err)), "choose a directory dhis2-life can reach")
	}
	// Missing: the nearest existing ancestor must be a writable directory.
	for parent := filepath.Dir(dir); ; parent = filepath.Dir(parent) {
		fi, err := os.Stat(parent)
		if err == nil {
			if !fi.IsDir() {
				return c.errAt(key, fmt.Sprintf("%s cannot be created: %s is not a directory", dir, parent), "choose another directory")
			}
			if syscall.Access(parent, 0x2|0x1) != nil { // W_OK|X_OK
				return c.errAt(key, fmt.Sprintf("%s does not exist and cannot be created (%s is not writable)", dir, parent),
					fmt.Sprintf("create it as root: install -d -m 0700 -o $(id -un %d) %s", os.Getuid(), dir))
			}
			return nil
		}
		if parent == filepath.Dir(parent) {
			return c.errAt(key, fmt.Sprintf("%s cannot be created: %v", dir, unwrapPathErr(err)), "choose another directory")
		}
	}
}

// checkDHIS2Home warns when home does not look like a DHIS2_HOME.
func (c *Config) checkDHIS2Home(key, home string) *Error {
	fi, err := os.Stat(home)
	switch {
	case err != nil:
		return c.warnAt(key, fmt.Sprintf("%s: %v", home, unwrapPathErr(err)), "set dhis2_home to the DHIS2_HOME directory (the one holding dhis.conf); without it snapshots hold no file store")
	case !fi.IsDir():
		return c.warnAt(key, home+" is not a directory", "set dhis2_home to the DHIS2_HOME directory (the one holding dhis.conf)")
	}
	if _, err := os.Stat(filepath.Join(home, "dhis.conf")); err != nil {
		return c.warnAt(key, fmt.Sprintf("%s holds no dhis.conf (%v)", home, unwrapPathErr(err)), "set dhis2_home to the DHIS2_HOME directory (the one holding dhis.conf)")
	}
	return nil
}

func unwrapExecErr(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}
