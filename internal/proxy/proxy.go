package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Switcher points the proxy at one app slot.
type Switcher interface {
	// Switch makes the proxy send users to upstream (host:port), the slot named slot.
	Switch(ctx context.Context, slot, upstream string) error
	// Current returns the upstream the proxy is configured for ("" when unknown).
	Current() (string, error)
}

// Nginx rewrites an upstream include file and reloads nginx.
type Nginx struct {
	// UpstreamFile is included in the site's `upstream NAME { … }` block.
	UpstreamFile string
	// Command is nginx with its options, e.g. "nginx -p /srv/nginx -c /srv/nginx/nginx.conf"
	// (split on spaces; default "nginx").
	Command string
}

// Hook runs a command (sh -c) with DHIS2_LIFE_SLOT and DHIS2_LIFE_UPSTREAM set.
type Hook struct {
	Command string
	// StateFile remembers the last upstream switched to (for Current).
	StateFile string
}

// Upstream returns host:port of a base URL (default ports 80/443).
func Upstream(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL with a host", base)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	if u.Scheme == "https" {
		return u.Host + ":443", nil
	}
	return u.Host + ":80", nil
}

// PrevSuffix names the copy of the upstream file before the last switch.
const PrevSuffix = ".dhis2life-prev"

func (n *Nginx) argv(extra ...string) []string {
	f := strings.Fields(n.Command)
	if len(f) == 0 {
		f = []string{"nginx"}
	}
	return append(f, extra...)
}

func (n *Nginx) nginx(ctx context.Context, extra ...string) error {
	a := n.argv(extra...)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, a[0], a[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(a, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Content is the upstream file's text for a slot.
func Content(slot, upstream string) string {
	return fmt.Sprintf("# written by dhis2-life: slot %s\nserver %s;\n", slot, upstream)
}

// Current returns the upstream in the file.
func (n *Nginx) Current() (string, error) {
	b, err := os.ReadFile(n.UpstreamFile)
	if err != nil {
		return "", fmt.Errorf("reading the nginx upstream file: %w", err)
	}
	return parseServer(b), nil
}

func parseServer(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(l), ";"))
		if len(f) >= 2 && f[0] == "server" {
			return strings.TrimSuffix(f[1], ";")
		}
	}
	return ""
}

// Switch writes the new upstream file atomically (the old one kept as FILE.dhis2life-prev),
// checks the configuration with nginx -t (putting the old file back when it fails) and
// reloads nginx.
func (n *Nginx) Switch(ctx context.Context, slot, upstream string) error {
	if n.UpstreamFile == "" {
		return errors.New("no nginx upstream file: set [instances.NAME.app] upstream_file")
	}
	old, err := os.ReadFile(n.UpstreamFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the nginx upstream file: %w", err)
	}
	want := []byte(Content(slot, upstream))
	if bytes.Equal(old, want) {
		// Already written (a resumed switch): reload anyway, it is harmless.
		return n.nginx(ctx, "-s", "reload")
	}
	if old != nil {
		if err := writeAtomic(n.UpstreamFile+PrevSuffix, old); err != nil {
			return fmt.Errorf("keeping the previous nginx upstream file: %w", err)
		}
	}
	if err := writeAtomic(n.UpstreamFile, want); err != nil {
		return fmt.Errorf("writing the nginx upstream file: %w", err)
	}
	if err := n.nginx(ctx, "-t"); err != nil {
		if old != nil {
			if rerr := writeAtomic(n.UpstreamFile, old); rerr != nil {
				return fmt.Errorf("nginx -t refused the new upstream (%v) and putting the old file back failed: %w", err, rerr)
			}
		}
		return fmt.Errorf("nginx -t refused the new upstream file (the old one is back in place): %w", err)
	}
	if err := n.nginx(ctx, "-s", "reload"); err != nil {
		return fmt.Errorf("reloading nginx: %w", err)
	}
	return nil
}

// writeAtomic writes data to a temporary file in path's directory, syncs it and renames it
// over path, keeping path's mode when it exists.
func writeAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Switch runs the hook.
func (h *Hook) Switch(ctx context.Context, slot, upstream string) error {
	if strings.TrimSpace(h.Command) == "" {
		return errors.New("no proxy hook: set [instances.NAME.app] proxy_hook")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "sh", "-c", h.Command)
	cmd.Env = append(os.Environ(), "DHIS2_LIFE_SLOT="+slot, "DHIS2_LIFE_UPSTREAM="+upstream)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.TrimSpace(string(out))
		if len(s) > 300 {
			s = s[len(s)-300:]
		}
		return fmt.Errorf("proxy hook %q: %w: %s", h.Command, err, s)
	}
	if h.StateFile != "" {
		if err := writeAtomic(h.StateFile, []byte(Content(slot, upstream))); err != nil {
			return fmt.Errorf("recording the proxy's upstream: %w", err)
		}
	}
	return nil
}

// Current returns the upstream of the last hook switch ("" when none).
func (h *Hook) Current() (string, error) {
	if h.StateFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(h.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return parseServer(b), nil
}
