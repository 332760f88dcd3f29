package lifecycle

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/restore"
)

// ExportRequest is one `dhis2-life export`: the set m written as a standard dump.
type ExportRequest struct {
	Format string
	// Output is a file path, or "-" for Stdout.
	Output string
	Stdout io.Writer
}

// Export turns a set's database stream into a plain SQL script or a custom archive (see
// restore.Export). A file output is written through a 0600 temporary file beside it that is
// renamed into place only on success, so a failed export never leaves a dump that looks
// complete.
func (r *Runner) Export(ctx context.Context, m *manifest.Manifest, q ExportRequest) (*restore.ExportResult, error) {
	if q.Format != restore.FormatPlain && q.Format != restore.FormatCustom {
		return nil, usage("export format %q: use plain or custom", q.Format)
	}
	in, err := r.instance(m.Instance)
	if err != nil {
		return nil, err
	}
	a := r.App
	if err := a.Preflight(ctx); err != nil {
		return nil, err
	}
	out, commit, err := exportOutput(q.Output, q.Stdout)
	if err != nil {
		return nil, err
	}
	res, err := restore.Export(ctx, restore.ExportOptions{
		Restore: restore.Options{Config: a.Config, Repo: a.Repo, Log: a.Log, Manifest: m, Admin: app.AdminConn(in), Jobs: r.restoreJobs(0)},
		Format:  q.Format, PGBinDir: in.PGBinDir, Out: out,
	})
	if err = commit(err); err != nil {
		return nil, err
	}
	return res, nil
}

// exportOutput opens the dump's destination: stdout for "-", else a 0600 temporary file
// beside path that commit renames into place on success and removes on failure.
func exportOutput(path string, stdout io.Writer) (io.Writer, func(error) error, error) {
	if path == "-" || path == "" {
		return stdout, func(err error) error { return err }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, nil, fmt.Errorf("creating the output file: %w", err)
	}
	commit := func(err error) error {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", path, cerr)
		}
		if err == nil {
			if rerr := os.Rename(f.Name(), path); rerr != nil {
				err = fmt.Errorf("renaming the dump into place: %w", rerr)
			}
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return err
	}
	return f, commit, nil
}
