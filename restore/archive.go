package restore

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// copyFrom copies the stream opened by open into w (Options.DBStream).
func copyFrom(ctx context.Context, open func(context.Context) (io.ReadCloser, error), w io.Writer) error {
	rc, err := open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// extractFiles extracts the tar stream of Options.FilesFrom into FilesTo. Entries that would
// land outside FilesTo are refused.
func extractFiles(ctx context.Context, o *Options) error {
	rc, err := o.FilesFrom(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	root, err := filepath.Abs(o.FilesTo)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", root, err)
	}
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the files tarball: %w", err)
		}
		name := filepath.Clean(filepath.FromSlash(strings.TrimPrefix(h.Name, "/")))
		if name == "." {
			continue
		}
		if name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("files tarball entry %q points outside %s", h.Name, root)
		}
		dst := filepath.Join(root, name)
		// A symlink restored earlier must not carry a later entry outside root
		// ("link -> /etc", then "link/passwd"), nor may writing a file follow one.
		if err := noSymlinkBelow(root, name); err != nil {
			return fmt.Errorf("files tarball entry %q: %w", h.Name, err)
		}
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
				return err
			}
			if fi, err := os.Lstat(dst); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				if err := os.Remove(dst); err != nil {
					return fmt.Errorf("restoring %s: %w", dst, err)
				}
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o600)
			if err != nil {
				return fmt.Errorf("restoring %s: %w", dst, err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return fmt.Errorf("restoring %s: %w", dst, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
			_ = os.Chtimes(dst, h.ModTime, h.ModTime)
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
				return err
			}
			_ = os.Remove(dst)
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return fmt.Errorf("restoring %s: %w", dst, err)
			}
		default:
			o.Log.Debug("skipping tar entry", "name", h.Name, "type", h.Typeflag)
		}
	}
}

// noSymlinkBelow fails when a directory on the way from root to root/name is a symlink.
func noSymlinkBelow(root, name string) error {
	dir := root
	parts := strings.Split(name, string(filepath.Separator))
	for _, p := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, p)
		fi, err := os.Lstat(dir)
		if err != nil {
			return nil // not there yet: created as a directory
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("its directory %s is a symlink; refusing to write through it", dir)
		}
	}
	return nil
}
